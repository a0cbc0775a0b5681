"""`x`: the project's LanceDB tables. Build a new one in the background (progress, rate, ETA, cancel), make a
table live, or roll back to the one built before; measure index types and compressions on the live table (the
plan panel, tui.screens.index_plan)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, Label
from textual.worker import Worker, WorkerState

from engine.index.build import list_indexes, make_live, rollback, status_text, suggested_model
from engine.index.plan import plan_view
from engine.project import Project
from tui.jobs import Cancelled, Job, JobText, Progress
from tui.screens.confirm import ConfirmScreen
from tui.screens.index_plan import PLAN_CANCELLED, PLAN_JOB, PLAN_STAGES, PlanPanel, plan_job
from tui.session import Session
from tui.widgets.footer import KeyFooter
from tui.widgets.job_progress import JobProgress, RateLine
from tui.widgets.notice import Notice

FOLLOW_SECONDS = 2.0
BUILD_STAGES = ("load model", "embed")

EMPTY = (
    "No index yet. Press b to embed the corpus into a LanceDB table; it becomes the live index that search "
    "uses. Each build writes a new table, so the old one stays for rollback."
)


JOB = JobText(
    name="build",
    group="index-run",
    starting="starting: loading the model…",
    question="Cancel the running build?",
    detail="Finished batches are kept: building the same model resumes.",
    cancelling="cancelling after this batch…",
)
CANCELLED = "Build cancelled: the live index is unchanged; building the same model again resumes where it stopped."


def build(project: Project, model: str, progress: Progress, cancelled: Cancelled) -> dict[str, Any]:
    from engine.index.build import build_index  # numpy, LanceDB and the model libraries load only for a build

    return build_index(project, model, progress, cancelled).to_json()


class BuildDialog(ModalScreen[str | None]):
    """Which model to embed the corpus with: base, a run id, or a model folder."""

    BINDING_GROUP_TITLE = "Build"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", tooltip="Build nothing", id="build-cancel"),
    ]
    DEFAULT_CSS = """
    BuildDialog { align: center middle; }
    #build { width: 70; max-width: 100%; height: auto; border: round $primary; background: $surface; padding: 0 1; }
    #build-help { color: $text-muted; margin-bottom: 1; }
    """

    def __init__(self, suggestion: str) -> None:
        super().__init__()
        self.suggestion = suggestion

    def compose(self) -> ComposeResult:
        with Vertical(id="build"):
            yield Label("Build a new index with model:", markup=False)
            yield Label(
                "base, a training run (7 or run-7) or a model folder · enter builds, esc cancels",
                id="build-help",
                markup=False,
            )
            yield Input(self.suggestion, id="build-model")
        yield KeyFooter()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class IndexLine(RateLine):
    """The screen's one progress line, shared by its two jobs (one runs at a time): a build's or a plan's stages."""

    def expect(self, stages: tuple[str, ...]) -> None:
        self._expected = stages


class IndexTable(DataTable[str]):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("live", "id", "model", "rows", "status", "search", "ANN r@10", "created", "table")

    def show(self, rows: list[dict[str, Any]]) -> None:
        selected = self.cursor_row
        self.clear()
        for r in rows:
            recall = f"{r['ann_recall']:.3f}" if r["ann_recall"] is not None else "–"
            self.add_row(
                "●" if r["live"] else "",
                str(r["id"]),
                r["model"],
                f"{r['rows']:,}",
                status_text(r),
                r["search"],
                recall,
                r["created_at"][:16].replace("T", " "),
                r["table"],
                key=str(r["id"]),
            )
        if rows:
            self.move_cursor(row=min(selected, len(rows) - 1))

    def selected_id(self) -> int | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return int(key) if key is not None else None


class IndexScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Index"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "b",
            "build",
            "Build",
            tooltip="Embed the corpus with a model into a new table, then make it live",
            id="index-build",
        ),
        Binding(
            "p",
            "plan",
            "Plan",
            tooltip="Measure index types and compressions on the live table: recall@10 vs exact, bytes, latency",
            id="index-plan",
        ),
        Binding(
            "c",
            "cancel_build",
            "Cancel",
            tooltip="Stop the running build or plan, after asking (a build resumes later)",
            id="index-cancel",
        ),
        Binding(
            "l", "make_live", "Make live", tooltip="Search the selected table from now on (asks first)", id="index-live"
        ),
        Binding(
            "u",
            "rollback",
            "Rollback",
            tooltip="Switch back to the table that was live before (asks)",
            id="index-rollback",
        ),
        Binding(
            "e",
            "export",
            "Export",
            tooltip="The selected table's model as a sentence-transformers folder with a model card",
            id="index-export",
        ),
        Binding("r", "refresh", "Refresh", tooltip="Read the tables again", id="index-refresh"),
        Binding(
            "escape", "back", "Back", tooltip="Back to home (while a build runs: cancel it first)", id="index-back"
        ),
    ]
    DEFAULT_CSS = """
    #index-title { padding: 0 1; text-style: bold; }
    #index-message { height: auto; padding: 0 1; margin: 1 0 0 0; display: none; }
    #index-message.-error { color: $text-error; border-left: outer $error; }
    #index-message.-note { color: $text; border-left: outer $primary-muted; }
    #index-progress { height: 1; padding: 0 1; margin: 1 0; display: none; }
    #index-stage { width: 1fr; color: $text-muted; }
    IndexTable { height: 1fr; }
    """
    tables: reactive[list[dict[str, Any]]] = reactive(list, bindings=True, always_update=True)
    plan: reactive[dict[str, Any] | None] = reactive(None, init=False, always_update=True)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        root = session.project.root
        self.job = Job(self, root, JOB, succeeded=self._built, cancelled_note=lambda: CANCELLED)
        self.plan_job = Job(self, root, PLAN_JOB, succeeded=self._planned, cancelled_note=lambda: PLAN_CANCELLED)
        self._shown = False  # the first listing is drawn even when empty
        self._banner_live: str | None = None  # the live table the notice speaks of, if it speaks of one

    def compose(self) -> ComposeResult:
        yield Label("Index · loading…", id="index-title", markup=False)
        yield Notice(id="index-message")
        yield IndexLine(id="index-progress", stage_id="index-stage", stages=BUILD_STAGES)
        yield IndexTable(id="index-table")
        yield PlanPanel(id="index-plan")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.action_refresh()
        # a build started elsewhere (`embtune index` detached, another TUI) is followed by re-reading the list
        self.set_interval(FOLLOW_SECONDS, self._follow)

    def _follow(self) -> None:
        if not self.job.running:  # this screen's own build reports through its progress bar
            self.action_refresh()

    def _active_job(self) -> Job | None:
        return next((job for job in (self.job, self.plan_job) if job.running), None)

    # --- the list ---------------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="index-load", exit_on_error=False)
    def _load(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        return self.session.call(list_indexes), self.session.call(plan_view)

    def watch_tables(self, rows: list[dict[str, Any]]) -> None:
        self.query_one(IndexTable).show(rows)
        live = next((r for r in rows if r["live"]), None)
        if self._banner_live is not None and (live is None or live["table"] != self._banner_live):
            self._say("")
        title = (
            f"Index · live: {live['table']} ({live['model']}, {live['rows']:,} rows)"
            if live
            else ("Index · no live index")
        )
        self.query_one("#index-title", Label).update(f"{title} · {len(rows)} table(s)")
        self.query_one(PlanPanel).show(self.plan, live["table"] if live else None)  # "not the live table now"

    def watch_plan(self, view: dict[str, Any] | None) -> None:
        self.query_one(PlanPanel).show(view, self._live_table())

    def _say(self, text: str, kind: str = "", live: str | None = None) -> None:
        """A message about the live index `live`: cleared once another table goes live (a rollback, a switch
        elsewhere), since "Built X: it is live now" or "Not switched" no longer describe the project then."""
        self.query_one(Notice).say(text, kind)
        self._banner_live = live

    def _live_table(self) -> str | None:
        return next((r["table"] for r in self.tables if r["live"]), None)

    def _switched(self, r: dict[str, Any]) -> None:
        previous = r.get("previous") or self._live_table()
        before = f"; {previous} stays for rollback" if previous and previous != r["live"] else ""
        self._say(f"Live index: {r['live']} ({r['model']}, {r['rows']:,} rows){before}.", "-note", r["live"])

    # --- building ---------------------------------------------------------------------------------------

    def action_build(self) -> None:
        if self._active_job() is None:
            self._suggest()

    @work(thread=True, exclusive=True, group="index-suggest", exit_on_error=False)
    def _suggest(self) -> str:
        return self.session.call(suggested_model)

    def _start(self, model: str | None) -> None:
        if model and self._active_job() is None:
            self.query_one(IndexLine).expect(BUILD_STAGES)
            self.job.start(build, model)

    def on_job_progress(self, message: JobProgress) -> None:
        (self._active_job() or self.job).show(message)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        group, state, worker = event.worker.group, event.state, event.worker
        if self.job.finished(event) or self.plan_job.finished(event):
            self.action_refresh()
            return
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if group == "index-load":
            if state == WorkerState.SUCCESS:
                self._listed(*worker.result)
            elif state == WorkerState.ERROR:
                self._say(f"Could not read the tables: {worker.error}", "-error")
        elif group == "index-suggest" and state == WorkerState.SUCCESS:
            self.app.push_screen(BuildDialog(worker.result), callback=self._start)
        elif group == "index-switch":
            if state == WorkerState.SUCCESS:
                self._switched(worker.result)
            elif state == WorkerState.ERROR:
                self._say(f"Not switched: {worker.error}", "-error", self._live_table())
            self.action_refresh()

    def _listed(self, rows: list[dict[str, Any]], plan: dict[str, Any] | None) -> None:
        if plan != self.plan:  # a plan measured elsewhere (`embtune index plan`) shows up too
            self.plan = plan
        if rows != self.tables or not self._shown:  # the follow timer re-reads often; redraw only on change
            self.tables, self._shown = rows, True
        if not rows and not self.job.running:
            self._say(EMPTY, "-note")
        elif self.query_one(Notice).text == EMPTY:  # a build started elsewhere: the empty-state note no longer holds
            self._say("")

    def _built(self, r: dict[str, Any]) -> None:
        self._say(
            f"Built {r['table']}: {r['rows']:,} rows, {r['embedded']:,} embedded, "
            f"{r['skipped_unchanged']:,} unchanged copied, {r['resumed']:,} resumed, in {r['seconds']} s; "
            "it is live now.",
            "-note",
            r["table"],
        )

    def action_cancel_build(self) -> None:
        job = self._active_job()
        if job is not None:
            job.ask_cancel()

    # --- the plan ---------------------------------------------------------------------------------------

    def action_plan(self) -> None:
        if self._active_job() is None and self._live_table() is not None:
            self.query_one(IndexLine).expect(PLAN_STAGES)
            self.plan_job.start(plan_job)

    def _planned(self, view: dict[str, Any] | None) -> None:
        self.plan = view
        if view is not None:  # the panel shows the figures; the toast says the plan is new
            self.notify(view["verdict"], title=f"Plan measured (run {view['run_id']})", markup=False)

    # --- switching --------------------------------------------------------------------------------------

    def action_make_live(self) -> None:
        index_id = self.query_one(IndexTable).selected_id()
        row = next((r for r in self.tables if r["id"] == index_id), None)
        if row is None or row["live"]:
            return
        if row["status"] != "ready":
            self._say(f"{row['table']} is {row['status']}: only a complete table can go live.", "-error")
            return
        self.app.push_screen(
            ConfirmScreen(
                f"Make {row['table']} ({row['model']}) live?",
                "Search uses it from now on; the current table stays for rollback.",
            ),
            callback=lambda yes: self._switch(make_live, row["id"]) if yes else None,
        )

    def action_rollback(self) -> None:
        self.app.push_screen(
            ConfirmScreen("Roll back the live index?", "Search goes back to the table that was live before this one."),
            callback=lambda yes: self._switch(rollback) if yes else None,
        )

    @work(thread=True, exclusive=True, group="index-switch", exit_on_error=False)
    def _switch(self, func: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        return self.session.call(func, *args)

    # --- export ---------------------------------------------------------------------------------------------

    def action_export(self) -> None:
        from tui.screens.export import ExportDialog

        index_id = self.query_one(IndexTable).selected_id()
        row = next((r for r in self.tables if r["id"] == index_id), None)
        model = row["model"] if row is not None else "base"
        self.app.push_screen(ExportDialog(self.session, model), callback=self._exported)

    def _exported(self, result: dict[str, Any] | None) -> None:
        if result is not None:
            self.notify(f"Exported {result['model']} to {result['dest']}", title="Export", markup=False)

    # --- keys -------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "build":
            return None if self._active_job() else True
        if action == "plan":
            return True if self._active_job() is None and self._live_table() is not None else None
        if action == "cancel_build":
            return True if self._active_job() else None
        if action == "make_live":
            return True if any(r["status"] == "ready" and not r["live"] for r in self.tables) else None
        if action == "rollback":
            return True if sum(r["status"] == "ready" for r in self.tables) > 1 else None
        return True

    def action_back(self) -> None:
        (self._active_job() or self.job).back()
