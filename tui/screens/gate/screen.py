"""`g`: the gate. Shows the latest stored result at once; `r` runs the gate again in the background."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Label, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from engine.gate.results import GateResult, load_gate_result
from engine.project import Project
from tui.jobs import Cancelled, Job, JobText, Progress
from tui.screens.gate.drilldown import Changes, next_column, sorted_outcomes
from tui.screens.gate.query import QueryScreen
from tui.screens.gate.widgets import GateSummary, MetricsTable, QueryTable
from tui.session import Session
from tui.widgets.footer import KeyFooter
from tui.widgets.gate_chart import ArmChart
from tui.widgets.job_progress import JobLine, JobProgress
from tui.widgets.notice import Notice

EMPTY = (
    "No gate result yet. The gate measures the base model against the cheaper fixes (query expansion, "
    "re-chunking, hybrid BM25, cross-encoder re-ranking) on this project's gate queries, and says whether "
    "fine-tuning is worth it.\n\nPress r to run the gate."
)


SHORT = 30  # rows below which the summary gives more of the screen to the chart and the drill-down


JOB = JobText(
    name="gate",
    group="gate-run",
    starting="starting: loading the model…",
    question="Cancel the running gate?",
    detail="What it measured so far is not kept.",
    cancelling="cancelling at the next step…",
)


def run_and_load(project: Project, progress: Progress, cancelled: Cancelled) -> GateResult | None:
    """The gate job: run, then read back the stored result."""
    from engine.gate.run import run_gate  # numpy and the model libraries load only when a gate runs

    run_gate(project, progress, cancelled=cancelled)
    return load_gate_result(project)


class GateScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Gate"
    AUTO_FOCUS = ""  # nothing focused at first, so `?` opens on the gate's own keys; tab reaches the summary
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "r", "run_gate", "Run gate", tooltip="Measure the base model and the cheaper fixes (minutes)", id="gate-run"
        ),
        Binding("c", "cancel_gate", "Cancel", tooltip="Stop the running gate (asks first)", id="gate-cancel"),
        Binding("a", "show_arms", "Arms", tooltip="The arms chart and their metrics", id="gate-arms"),
        Binding(
            "d", "show_queries", "Queries", tooltip="Per-query drill-down: the rank under each arm", id="gate-queries"
        ),
        Binding("s", "sort", "Sort", tooltip="Sort the drill-down by the next column", id="gate-sort"),
        Binding(
            "S", "reverse", "Reverse order", tooltip="Reverse the drill-down's order", show=False, id="gate-reverse"
        ),
        Binding(
            "enter",
            "open_query",
            "Query details",
            tooltip="The selected query in full, with its documents",
            show=False,
            id="gate-open-query",
        ),
        Binding(
            "escape", "back", "Back", tooltip="Back to home (while the gate runs: cancel it first)", id="gate-back"
        ),
    ]
    result: reactive[GateResult | None] = reactive(None, bindings=True, init=False, always_update=True)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.sort_column = "id"
        self.sort_reverse = False
        self.job = Job(self, session.project.root, JOB, succeeded=self._ran, cancelled_note=self._cancelled_note)

    def compose(self) -> ComposeResult:
        yield Label("Gate · loading…", id="gate-title", markup=False)
        with VerticalScroll(id="gate-summary"):
            yield GateSummary()
        yield Notice(id="gate-message")
        yield JobLine(id="gate-progress", stage_id="gate-stage")
        with TabbedContent(id="gate-tabs", initial="arms"):
            with TabPane("Arms", id="arms"), VerticalScroll():
                yield ArmChart(id="arm-chart")
                yield MetricsTable(id="gate-metrics")
            with TabPane("Queries", id="queries"):
                yield QueryTable(id="gate-queries")
        yield KeyFooter()

    def on_resize(self) -> None:
        self.set_class(self.size.height < SHORT, "-short")

    def on_mount(self) -> None:
        for part in ("#gate-summary", "#gate-progress", "#gate-tabs"):
            self.query_one(part).display = False
        self._load()

    # --- showing a result -------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="gate-load", exit_on_error=False)
    def _load(self) -> GateResult | None:
        return self.session.call(load_gate_result)

    def watch_result(self, result: GateResult | None) -> None:
        for part in ("#gate-summary", "#gate-tabs"):
            self.query_one(part).display = result is not None
        if result is None:
            self.query_one("#gate-title", Label).update("Gate · no result yet")
            return
        when = result.finished_at[:16].replace("T", " ")
        self.query_one("#gate-title", Label).update(
            f"Gate · run {result.run_id} · {result.report['n_queries']} gate queries · Recall@{result.k} · "
            f"finished {when} UTC · base {result.report['settings'].get('base_model', '?')}"
        )
        self.query_one(GateSummary).show(result)
        self.query_one(ArmChart).show(result)
        self.query_one(MetricsTable).show(result)
        self._show_queries()

    def _show_queries(self) -> None:
        result = self.result
        if result is None:
            return
        names = [arm["name"] for arm in result.arms]
        outcomes = sorted_outcomes(result.queries, self.sort_column, self.sort_reverse)
        self.query_one(QueryTable).show(
            outcomes, names, Changes.from_arms(result.arms), self.sort_column, self.sort_reverse
        )

    def _say(self, text: str, kind: str = "") -> None:
        self.query_one(Notice).say(text, kind)

    # --- running ----------------------------------------------------------------------------------------

    def action_run_gate(self) -> None:
        self.job.start(run_and_load)

    def on_job_progress(self, message: JobProgress) -> None:
        self.job.show(message)

    def _ran(self, result: GateResult | None) -> None:
        self.result = result
        self.notify(f"Gate finished: {result.verdict if result else '?'}", title="Gate")

    def _cancelled_note(self) -> str:
        kept = " The last finished result is shown." if self.result else ""
        return f"Gate cancelled: the run is recorded as cancelled.{kept}"

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if self.job.finished(event) or event.worker.group != "gate-load":
            return
        if event.state == WorkerState.SUCCESS:
            self.result = event.worker.result
            if event.worker.result is None and not self.job.running:
                self._say(EMPTY, "-note")
        elif event.state == WorkerState.ERROR:
            self._say(f"Could not read the stored gate result: {event.worker.error}", "-error")

    def action_cancel_gate(self) -> None:
        self.job.ask_cancel()

    # --- keys -------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run_gate":
            return None if self.job.running else True
        if action == "cancel_gate":
            return True if self.job.running else None
        if action in ("show_arms", "show_queries", "sort", "reverse", "open_query"):
            return True if self.result is not None else None  # disabled (help dims it, the footer drops it)
        return True

    def action_back(self) -> None:
        self.job.back()

    def action_show_arms(self) -> None:
        self.query_one(TabbedContent).active = "arms"

    def action_show_queries(self) -> None:
        self.query_one(TabbedContent).active = "queries"
        self.query_one(QueryTable).focus()

    def action_sort(self) -> None:
        if self.result is not None:
            self.sort_column = next_column(self.sort_column, [arm["name"] for arm in self.result.arms])
            self.sort_reverse = False
            self._show_queries()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._show_queries()

    @on(DataTable.HeaderSelected, "#gate-queries")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column == "±":
            return
        # clicking the sorted column again reverses it, as in a file manager
        self.sort_reverse = not self.sort_reverse if column == self.sort_column else False
        self.sort_column = column
        self._show_queries()

    @on(DataTable.RowSelected, "#gate-queries")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self._open(str(event.row_key.value))

    def action_open_query(self) -> None:
        if self.query_one(TabbedContent).active != "queries":
            self.action_show_queries()  # first show where the selection is
            return
        key = self.query_one(QueryTable).cursor_row_key()
        if key is not None:
            self._open(key)

    def _open(self, query_id: str) -> None:
        result = self.result
        if result is None:
            return
        outcome = next((q for q in result.queries if q.id == query_id), None)
        if outcome is not None:
            names = [arm["name"] for arm in result.arms]
            self.app.push_screen(QueryScreen(self.session, outcome, names, Changes.from_arms(result.arms)))
