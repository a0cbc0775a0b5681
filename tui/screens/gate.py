"""`g`: the gate. Shows the latest stored result at once; `r` runs the gate again in the background."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from engine.gate.results import GateResult, load_gate_result
from engine.project import open_project
from tui.errors import job_error_text
from tui.gate_queries import Changes, next_column, sorted_outcomes
from tui.job_progress import JobLine, JobProgress
from tui.notice import Notice
from tui.screens.confirm import ConfirmScreen
from tui.screens.gate_query import QueryScreen
from tui.screens.gate_widgets import ArmChart, GateSummary, MetricsTable, QueryTable
from tui.session import Session

EMPTY = (
    "No gate result yet. The gate measures the base model against the cheaper fixes (query expansion, "
    "re-chunking, hybrid BM25, cross-encoder re-ranking) on this project's gate queries, and says whether "
    "fine-tuning is worth it.\n\nPress r to run the gate."
)


SHORT = 30  # rows below which the summary gives more of the screen to the chart and the drill-down


def run_and_load(
    root: Path, progress: Callable[[str, int, int], None], cancelled: Callable[[], bool]
) -> GateResult | None:
    """Run the gate on a connection of its own: the session's one stays free for the screens meanwhile."""
    from engine.gate.run import run_gate  # numpy and the model libraries load only when a gate runs

    project = open_project(root)
    try:
        run_gate(project, progress, cancelled=cancelled)
        return load_gate_result(project)
    finally:
        project.close()


def error_text(error: BaseException | None) -> str:
    return job_error_text(error, "gate")


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
    running: reactive[bool] = reactive(False, bindings=True)
    result: reactive[GateResult | None] = reactive(None, bindings=True, init=False, always_update=True)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.sort_column = "id"
        self.sort_reverse = False
        self._cancel = threading.Event()

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
        yield Footer()

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
        if self.running:
            return
        self._cancel.clear()
        self.running = True
        self._say("")
        self.query_one(JobLine).start("starting: loading the model…")
        self._run()

    @work(thread=True, exclusive=True, group="gate-run", exit_on_error=False)
    def _run(self) -> GateResult | None:
        worker = get_current_worker()

        def progress(stage: str, done: int, total: int) -> None:
            self.post_message(JobProgress(stage, done, total))  # thread-safe; touching widgets here is not

        def cancelled() -> bool:
            # the cancel key, or Textual cancelling the worker (app quitting)
            return self._cancel.is_set() or worker.is_cancelled

        return run_and_load(self.session.project.root, progress, cancelled)

    def on_job_progress(self, message: JobProgress) -> None:
        if not self.running:
            return
        self.query_one(JobLine).show(message)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        group, state = event.worker.group, event.state
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if group == "gate-load":
            if state == WorkerState.SUCCESS:
                self.result = event.worker.result
                if event.worker.result is None and not self.running:
                    self._say(EMPTY, "-note")
            elif state == WorkerState.ERROR:
                self._say(f"Could not read the stored gate result: {event.worker.error}", "-error")
        elif group == "gate-run":
            self.running = False
            self.query_one(JobLine).stop()
            if state == WorkerState.SUCCESS:
                self.result = event.worker.result
                self.notify(f"Gate finished: {self.result.verdict if self.result else '?'}", title="Gate")
            elif isinstance(event.worker.error, InterruptedError):
                kept = " The last finished result is shown." if self.result else ""
                self._say(f"Gate cancelled: the run is recorded as cancelled.{kept}", "-note")
            elif state == WorkerState.ERROR:
                self._say(error_text(event.worker.error), "-error")

    def action_cancel_gate(self) -> None:
        if not self.running:
            return
        self.app.push_screen(
            ConfirmScreen("Cancel the running gate?", "What it measured so far is not kept."), callback=self._confirmed
        )

    def _confirmed(self, yes: bool | None) -> None:
        if yes and self.running:
            self._cancel.set()
            self.query_one(JobLine).say("cancelling at the next step…")

    # --- keys -------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run_gate":
            return None if self.running else True
        if action == "cancel_gate":
            return True if self.running else None
        if action in ("show_arms", "show_queries", "sort", "reverse", "open_query"):
            return True if self.result is not None else None
        return True

    def action_back(self) -> None:
        if self.running:
            self.action_cancel_gate()
        else:
            self.dismiss(None)

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
