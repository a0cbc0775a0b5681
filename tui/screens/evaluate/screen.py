"""`e`: evaluation. The last stored result at once; mark models, `r` evaluates them against the base in the
background; compare them side by side (baseline, deltas, best in bold) and drill into the per-query diff. `M` mixes
the base and a tuned run's weights at several α (the forgetting guard), charts domain and general nDCG@10 over α,
and `u` picks the α whose model Index and export then use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from engine.evaluate.results import Candidate, EvalResult, candidates, load_eval_result
from engine.project import Project
from tui.errors import job_error_text
from tui.jobs import Cancelled, Job, JobText, Progress
from tui.screens.evaluate.diff import FILTERS, QUERY_COLUMNS, counts, diff_rows, next_in, sort_rows
from tui.screens.evaluate.merge import MERGE_JOB, MergeTable, headline, model_name, point_model, sweep_job
from tui.screens.evaluate.query import EvalQueryScreen
from tui.screens.evaluate.widgets import DiffTable, EvalSummary, ModelsTable
from tui.session import Session
from tui.widgets.job_progress import JobLine, JobProgress
from tui.widgets.merge_chart import MergeChart
from tui.widgets.notice import Notice

EMPTY = (
    "No evaluation yet. An evaluation measures the base model and the marked trained models on the held-out "
    "queries (Recall@1/5/10/100, MRR@10, nDCG@10, MAP@100 with 95% intervals), gives each trained model a verdict "
    "against the base, checks the general queries for forgetting, and refuses to run when test queries leaked "
    "into training.\n\nMark models with space, then press r."
)
JOB = JobText(
    name="evaluation",
    group="eval-run",
    starting="starting: checking for leakage, loading the models…",
    question="Cancel the running evaluation?",
    detail="Vectors encoded so far stay cached; no result is stored.",
    cancelling="cancelling at the next block…",
)


@dataclass(frozen=True)
class View:
    rows: list[Candidate]  # every model the screen lists
    result: EvalResult | None  # the latest evaluation
    sweep: dict[str, Any] | None  # the newest merge sweep (engine.train.merge.merge_run's result)


def load_view(project: Project) -> View:
    """The candidates plus any model the latest result measured that is not one (a folder given on the CLI, a
    merge mix), the latest result and the newest merge sweep."""
    from engine.train.merge import latest_sweep

    result = load_eval_result(project)
    rows = candidates(project)
    known = {c.name for c in rows}
    if result is not None:
        rows += [
            Candidate(m["spec"], name, m["spec"]) for name, m in result.report["models"].items() if name not in known
        ]
    return View(rows, result, latest_sweep(project))


def run_and_load(project: Project, models: list[str], progress: Progress, cancelled: Cancelled) -> View:
    """The evaluation job: run, then read back the view with the new result."""
    from engine.evaluate.run import run_eval  # numpy and the model libraries load only when an evaluation runs

    run_eval(project, models, progress=progress, cancelled=cancelled)
    return load_view(project)


def merge_and_load(project: Project, run: str, progress: Progress, cancelled: Cancelled) -> View:
    """The merge job: every α mixed and evaluated (that evaluation becomes the latest result too), then the view."""
    sweep_job(project, run, progress, cancelled)
    return load_view(project)


def error_text(error: BaseException | None) -> str:
    if type(error).__name__ == "LeakageError":
        return f"The evaluation refused to run: test data leaked into training.\n{error}"
    return job_error_text(error, "evaluation")


class EvaluateScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Evaluate"
    AUTO_FOCUS = ""
    DEFAULT_CSS = """
    #eval-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    #eval-summary { height: auto; max-height: 40%; padding: 0 1; }
    #eval-message { height: auto; padding: 0 1; margin: 1 0 0 0; display: none; }
    #eval-message.-error { color: $text-error; border-left: outer $error; }
    #eval-message.-note { color: $text; border-left: outer $primary-muted; }
    #eval-progress { height: 1; padding: 0 1; margin-top: 1; }
    #eval-stage { width: 1fr; color: $text-muted; }
    #eval-tabs { height: 1fr; }
    #eval-tabs TabPane { padding: 0; }
    #eval-diff-summary { height: 1; padding: 0 1; color: $text-muted; }
    #eval-merge-summary { width: 1fr; height: auto; padding: 0 1; color: $text-muted; }
    #eval-merge-table { height: auto; max-height: 9; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "r", "run_eval", "Evaluate", tooltip="Measure the marked models against the base (minutes)", id="eval-run"
        ),
        Binding("c", "cancel_eval", "Cancel", tooltip="Stop the running evaluation (asks first)", id="eval-cancel"),
        Binding(
            "space",
            "toggle_mark",
            "Mark",
            tooltip="Mark or unmark the model under the cursor: marked models are evaluated and compared",
            id="eval-mark",
        ),
        Binding("b", "baseline", "Baseline", tooltip="Compare against the model under the cursor", id="eval-baseline"),
        Binding(
            "t",
            "toggle_deltas",
            "Deltas/absolute",
            tooltip="Show differences from the baseline, or values",
            id="eval-deltas",
        ),
        Binding("m", "show_models", "Models", tooltip="The models side by side", id="eval-models"),
        Binding(
            "d",
            "show_queries",
            "Per query",
            tooltip="Per-query diff: the first relevant rank before → after",
            id="eval-queries",
        ),
        Binding(
            "M",
            "merge_sweep",
            "Merge sweep",
            tooltip="Mix base and tuned weights at α 0–1, evaluate each mix, recommend one (minutes)",
            id="eval-merge",
        ),
        Binding("a", "show_merge", "Merge tab", tooltip="The merge sweep: chart and table over α", id="eval-merge-tab"),
        Binding(
            "u",
            "use_alpha",
            "Use this α",
            tooltip="The mix under the cursor becomes the model Index offers and export names",
            id="eval-merge-use",
        ),
        Binding("s", "sort", "Sort", tooltip="Sort the per-query diff by the next column", id="eval-sort"),
        Binding(
            "S", "reverse", "Reverse order", tooltip="Reverse the per-query diff's order", show=False, id="eval-reverse"
        ),
        Binding(
            "f",
            "filter",
            "Filter",
            tooltip="Per-query diff: all, improved, regressed or changed queries",
            id="eval-filter",
        ),
        Binding(
            "w",
            "write_report",
            "Write report",
            tooltip="Markdown report in the project's reports/ folder",
            id="eval-report",
        ),
        Binding("escape", "back", "Back", tooltip="Back to home (while evaluating: cancel it first)", id="eval-back"),
    ]
    result: reactive[EvalResult | None] = reactive(None, bindings=True, init=False, always_update=True)
    sweep: reactive[dict[str, Any] | None] = reactive(None, bindings=True, init=False, always_update=True)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.rows: list[Candidate] = []
        self.marked: set[str] = set()
        self.baseline = "base"
        self.deltas = False
        self.diff_model: str | None = None
        self.sort_column = "change"
        self.sort_reverse = False
        self.filter_by = "all"
        self.job = Job(
            self,
            session.project.root,
            JOB,
            succeeded=self._ran,
            cancelled_note=self._cancelled_note,
            error_text=error_text,
        )
        self.merge_job = Job(
            self, session.project.root, MERGE_JOB, succeeded=self._merged, cancelled_note=self._merge_cancelled_note
        )

    def compose(self) -> ComposeResult:
        yield Label("Evaluate · loading…", id="eval-title", markup=False)
        with VerticalScroll(id="eval-summary"):
            yield EvalSummary("", id="eval-verdicts", markup=False)
        yield Notice(id="eval-message")
        yield JobLine(id="eval-progress", stage_id="eval-stage")
        with TabbedContent(id="eval-tabs", initial="models"):
            with TabPane("Models", id="models"):
                yield ModelsTable(id="eval-models")
            with TabPane("Per query", id="queries"):
                yield Label("", id="eval-diff-summary", markup=False)
                yield DiffTable(id="eval-diff")
            with TabPane("Merge (α)", id="merge"):
                yield Label("", id="eval-merge-summary", markup=False)
                yield MergeChart(id="eval-merge-chart")
                yield MergeTable(id="eval-merge-table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#eval-progress").display = False
        self.query_one("#eval-summary").display = False
        self._load()

    # --- showing ----------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="eval-load", exit_on_error=False)
    def _load(self) -> View:
        return self.session.call(load_view)

    def _take(self, view: View, fresh: bool) -> None:
        self.rows, result = view.rows, view.result
        names = {c.name for c in self.rows}
        if result is not None and (fresh or not self.marked):
            self.marked = set(result.model_names)
        elif not self.marked:
            self.marked = {"base", *([self.rows[-1].name] if len(self.rows) > 1 else [])}
        self.marked &= names
        measured = result.model_names if result else []
        if self.baseline not in measured:
            self.baseline = "base"
        if self.diff_model not in measured or self.diff_model == self.baseline:
            self.diff_model = next((n for n in measured if n != self.baseline), None)
        self.result = result
        self.sweep = view.sweep

    def watch_result(self, result: EvalResult | None) -> None:
        self._show_summary()
        if result is None:
            self.query_one("#eval-title", Label).update("Evaluate · no result yet")
        else:
            when = result.finished_at[:16].replace("T", " ")
            report = result.report
            self.query_one("#eval-title", Label).update(
                f"Evaluate · run {result.run_id} · {report['n_queries']} {report['split']} queries · "
                f"finished {when} UTC · verdicts by {report['settings']['metric']}"
            )
            self.query_one(EvalSummary).show(result)
        self._show_models()
        self._show_queries()

    def watch_sweep(self, sweep: dict[str, Any] | None) -> None:
        self.query_one("#eval-merge-summary", Label).update(headline(sweep))
        self.query_one(MergeChart).show(sweep)
        self.query_one(MergeTable).show(sweep)

    def _show_summary(self) -> None:
        # the merge tab has its own headline, and the chart needs the rows on a small terminal
        self.query_one("#eval-summary").display = self.result is not None and self._tab() != "merge"

    def _show_models(self) -> None:
        self.query_one(ModelsTable).show(self.rows, self.marked, self.baseline, self.deltas, self.result)

    def _show_queries(self) -> None:
        result, model = self.result, self.diff_model
        label = self.query_one("#eval-diff-summary", Label)
        table = self.query_one(DiffTable)
        if result is None or model is None:
            label.update("Evaluate at least one model besides the baseline to see what changed per query.")
            table.clear(columns=True)
            return
        every = diff_rows(result.queries, self.baseline, model)
        c = counts(every)
        shown = sort_rows(
            diff_rows(result.queries, self.baseline, model, self.filter_by), self.sort_column, self.sort_reverse
        )
        label.update(
            f"{model} against {self.baseline}: {c['improved']} improved · {c['regressed']} regressed · "
            f"{c['unchanged']} unchanged · showing {self.filter_by} ({len(shown)}) · enter: the query in full"
        )
        table.show(shown, self.baseline, model, self.sort_column, self.sort_reverse)

    def _say(self, text: str, kind: str = "") -> None:
        self.query_one(Notice).say(text, kind)

    # --- running ----------------------------------------------------------------------------------------

    def action_run_eval(self) -> None:
        refs = [c.ref for c in self.rows if c.name in self.marked]
        self.job.start(run_and_load, refs or ["base"])

    def on_job_progress(self, message: JobProgress) -> None:
        self.job.show(message)

    def _ran(self, view: View) -> None:
        self._take(view, fresh=True)
        verdicts = self.result.report["verdict"] if self.result else {}
        self.notify(
            ", ".join(f"{n}: {v}" for n, v in verdicts.items()) or "base measured",
            title="Evaluation finished",
            markup=False,
        )

    def _cancelled_note(self) -> str:
        kept = " The last finished result is shown." if self.result else ""
        return f"Evaluation cancelled: the run is recorded as cancelled.{kept}"

    def action_merge_sweep(self) -> None:
        run = self._merge_target()
        if run is None:
            self.notify("Train a model first: a merge mixes a tuned run with the base.", severity="warning")
            return
        self.merge_job.start(merge_and_load, run)
        self.action_show_merge()

    def _merge_target(self) -> str | None:
        """The trained run under the Models cursor, else the newest trained run (merge mixes are not merged again)."""
        trained = [c for c in self.rows if c.ref.isdigit()]
        under = self.query_one(ModelsTable).cursor_key()
        chosen = next((c for c in trained if c.name == under), trained[-1] if trained else None)
        return chosen.ref if chosen else None

    def _merged(self, view: View) -> None:
        self._take(view, fresh=True)
        sweep = self.sweep
        if sweep is not None:
            rec = sweep["recommended"]
            text = "no α keeps the general queries" if rec is None else f"recommended α {rec:g}"
            self.notify(f"run {sweep['run']}: {text}", title="Merge finished", markup=False)

    def _merge_cancelled_note(self) -> str:
        return "Merge cancelled: the mixes written so far are kept as models; no merge result was stored."

    def action_use_alpha(self) -> None:
        alpha = self.query_one(MergeTable).cursor_alpha()
        if alpha is not None and self.sweep is not None:
            self._choose(alpha)

    @work(thread=True, exclusive=True, group="eval-choose", exit_on_error=False)
    def _choose(self, alpha: float) -> dict[str, Any]:
        from engine.train.merge import choose_alpha

        return self.session.call(choose_alpha, alpha)

    def _chosen(self, sweep: dict[str, Any]) -> None:
        self.sweep = sweep
        model = point_model(sweep, sweep["chosen"])
        self.notify(
            f"α {sweep['chosen']:g} ({model_name(model)}) is now the model Index offers for the next build.",
            title="Merge",
            markup=False,
        )

    def _active_job(self) -> Job | None:
        return next((job for job in (self.job, self.merge_job) if job.running), None)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if self.job.finished(event) or self.merge_job.finished(event):
            return
        if event.worker.group == "eval-choose":
            if event.state == WorkerState.SUCCESS:
                self._chosen(event.worker.result)
            elif event.state == WorkerState.ERROR:
                self._say(f"Could not record the chosen α: {event.worker.error}", "-error")
            return
        if event.worker.group != "eval-load":
            return
        if event.state == WorkerState.SUCCESS:
            self._take(event.worker.result, fresh=False)
            if self.result is None and self._active_job() is None:
                self._say(EMPTY, "-note")
        elif event.state == WorkerState.ERROR:
            self._say(f"Could not read the stored evaluation: {event.worker.error}", "-error")

    def action_cancel_eval(self) -> None:
        job = self._active_job()
        if job is not None:
            job.ask_cancel()

    # --- keys -------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("run_eval", "merge_sweep"):
            return None if self._active_job() else True
        if action == "cancel_eval":
            return True if self._active_job() else None
        if action == "use_alpha":
            return True if self.sweep is not None and self._tab() == "merge" and not self.merge_job.running else None
        if action in ("toggle_mark", "baseline", "toggle_deltas"):
            return True if self.rows and self._tab() == "models" else None
        if action in ("sort", "reverse", "filter"):
            return True if self.diff_model is not None and self._tab() == "queries" else None
        if action in ("show_queries", "write_report"):
            return True if self.result is not None else None
        return True

    def _tab(self) -> str:
        tabs = self.query(TabbedContent)  # bindings may be checked before the tabs are mounted
        return tabs.first().active if tabs else ""

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self._show_summary()
        self.refresh_bindings()

    def action_back(self) -> None:
        (self._active_job() or self.job).back()

    def action_toggle_mark(self) -> None:
        name = self.query_one(ModelsTable).cursor_key()
        if name is None:
            return
        if name == "base" and name in self.marked:
            self.notify("The base model is always evaluated: verdicts are against it.", markup=False)
            return
        self.marked ^= {name}
        self._show_models()

    def action_baseline(self) -> None:
        name = self.query_one(ModelsTable).cursor_key()
        measured = self.result.model_names if self.result else []
        if name not in measured:
            self.notify(f"{name} has no result yet: mark it and press r first.", severity="warning", markup=False)
            return
        self.baseline = name
        if self.diff_model == name:
            self.diff_model = next((n for n in measured if n != name), None)
        self._show_models()
        self._show_queries()

    def action_toggle_deltas(self) -> None:
        self.deltas = not self.deltas
        self._show_models()

    def action_show_models(self) -> None:
        self.query_one(TabbedContent).active = "models"
        self.query_one(ModelsTable).focus()

    def action_show_merge(self) -> None:
        self.query_one(TabbedContent).active = "merge"
        self.query_one(MergeTable).focus()

    def action_show_queries(self) -> None:
        self.query_one(TabbedContent).active = "queries"
        self.query_one(DiffTable).focus()

    def action_sort(self) -> None:
        self.sort_column, self.sort_reverse = next_in(QUERY_COLUMNS, self.sort_column), False
        self._show_queries()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._show_queries()

    def action_filter(self) -> None:
        self.filter_by = next_in(FILTERS, self.filter_by)
        self._show_queries()

    def action_write_report(self) -> None:
        from engine.evaluate.report import write_report

        result = self.result
        if result is None:
            return
        path = self.session.project.root / "reports" / f"eval-{result.run_id}.md"
        try:
            write_report(path, result.report, result.changed(self.baseline))
        except OSError as e:
            self._say(f"Could not write the report: {e}", "-error")
            return
        self.notify(f"Report written to {path}", title="Report", markup=False)

    @on(DataTable.HeaderSelected, "#eval-diff")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        self.sort_reverse = not self.sort_reverse if column == self.sort_column else False
        self.sort_column = column
        self._show_queries()

    @on(DataTable.RowSelected, "#eval-models")
    def _model_selected(self, event: DataTable.RowSelected) -> None:
        name = str(event.row_key.value)
        measured = self.result.model_names if self.result else []
        if name in measured and name != self.baseline:
            self.diff_model = name
            self._show_queries()
            self.action_show_queries()
        else:
            self.notify(
                f"{name} is the baseline or has no result: pick another model for the per-query diff.", markup=False
            )

    @on(DataTable.RowSelected, "#eval-merge-table")
    def _alpha_selected(self) -> None:
        self.action_use_alpha()

    @on(DataTable.RowSelected, "#eval-diff")
    def _query_selected(self, event: DataTable.RowSelected) -> None:
        result = self.result
        query = next((q for q in result.queries if q.id == str(event.row_key.value)), None) if result else None
        if result is not None and query is not None:
            self.app.push_screen(EvalQueryScreen(self.session, query, result.model_names, self.baseline))
