"""`m`: the training data before training — the data checks, and hard-negative mining as a background job."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Label, Static
from textual.worker import Worker, WorkerState, get_current_worker

from engine.data.checks import CheckReport, run_checks
from engine.project import Project, open_project
from engine.store import runs
from tui.job_progress import JobLine, JobProgress
from tui.screens.confirm import ConfirmScreen
from tui.session import Session

MARKS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "error": ("✗", "bold red")}


@dataclass
class DataView:
    checks: CheckReport
    mining: str  # the last mining run's summary, or how to get one


def load_view(project: Project) -> DataView:
    latest = runs.latest_result(project.db, "mine")
    if latest is None:
        mining = (
            "No hard negatives mined yet. Press r to mine them with the base model (settings: mining: in project.yaml)."
        )
    else:
        from engine.data.mining import render_summary  # numpy: only once there is a summary to show

        mining = render_summary(latest[1])
    return DataView(run_checks(project), mining)


def checks_text(report: CheckReport) -> Text:
    text = Text()
    for finding in report.findings:
        mark, style = MARKS[finding.severity]
        text.append(f" {mark} ", style=style)
        text.append(f"{finding.title}: ", style="bold")
        text.append(f"{finding.message}\n")
    return text


def mine_in_own_connection(root: Path, progress: Any, cancelled: Any) -> dict[str, Any]:
    """Mine on a connection of its own, so the screens keep reading the store meanwhile."""
    from engine.data.mining import mine_negatives  # the model libraries load only when mining runs

    project = open_project(root)
    try:
        return mine_negatives(project, progress, cancelled)
    finally:
        project.close()


class DataScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Training data"
    DEFAULT_CSS = """
    DataScreen #data-title { text-style: bold; padding: 0 1; background: $boost; width: 100%; }
    DataScreen .data-heading { text-style: bold; padding: 1 1 0 1; }
    DataScreen #data-checks, DataScreen #data-mining { padding: 0 1; height: auto; }
    DataScreen #data-progress { height: 1; padding: 0 1; display: none; }
    DataScreen #data-stage { width: 1fr; }
    DataScreen #data-bar { width: 40; }
    DataScreen #data-message { padding: 0 1; height: auto; display: none; }
    DataScreen #data-message.-error { color: $text-error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "r",
            "mine",
            "Mine negatives",
            tooltip="Mine hard negatives for the train pairs (background)",
            id="data-mine",
        ),
        Binding("c", "cancel", "Cancel", tooltip="Stop the running mining (asks first)", id="data-cancel"),
        Binding("k", "recheck", "Re-check", tooltip="Run the data checks again", id="data-recheck"),
        Binding("escape", "back", "Back", tooltip="Back to home (while mining: cancel it first)", id="data-back"),
    ]
    running: reactive[bool] = reactive(False, bindings=True)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        yield Label("Training data · checking…", id="data-title", markup=False)
        with VerticalScroll():
            yield Label("Checks before training", classes="data-heading")
            yield Static("", id="data-checks")
            yield Label("Hard negatives", classes="data-heading")
            yield Static("", id="data-mining", markup=False)
        yield Static("", id="data-message", markup=False)
        yield JobLine(id="data-progress", stage_id="data-stage")
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="data-load", exit_on_error=False)
    def _load(self) -> DataView:
        return self.session.call(load_view)

    def _show(self, view: DataView) -> None:
        report = view.checks
        verdict = {"ok": "ready", "warn": "usable, with warnings", "error": "NOT ready: fix the errors"}
        self.query_one("#data-title", Label).update(f"Training data · {verdict[report.severity]}")
        self.query_one("#data-checks", Static).update(checks_text(report))
        self.query_one("#data-mining", Static).update(view.mining)

    def _say(self, text: str, error: bool = False) -> None:
        message = self.query_one("#data-message", Static)
        message.update(text)
        message.display = bool(text)
        message.set_class(error, "-error")

    # --- mining -----------------------------------------------------------------------------------------

    def action_mine(self) -> None:
        if self.running:
            return
        self._cancel.clear()
        self.running = True
        self._say("")
        self.query_one(JobLine).start("starting: loading the model…")
        self._mine()

    @work(thread=True, exclusive=True, group="data-mine", exit_on_error=False)
    def _mine(self) -> dict[str, Any]:
        worker = get_current_worker()

        def progress(stage: str, done: int, total: int) -> None:
            self.post_message(JobProgress(stage, done, total))

        def cancelled() -> bool:
            return self._cancel.is_set() or worker.is_cancelled

        return mine_in_own_connection(self.session.project.root, progress, cancelled)

    def on_job_progress(self, message: JobProgress) -> None:
        if self.running:
            self.query_one(JobLine).show(message)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        state = event.state
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if event.worker.group == "data-load":
            if state == WorkerState.SUCCESS:
                self._show(event.worker.result)
            elif state == WorkerState.ERROR:
                self._say(f"Could not read the training data: {event.worker.error}", error=True)
            return
        if event.worker.group != "data-mine":
            return
        self.running = False
        self.query_one(JobLine).stop()
        if state == WorkerState.SUCCESS:
            summary = event.worker.result
            self.notify(
                f"{summary['negatives_added']:,} negatives added, {summary['short']:,} queries short",
                title="Mining finished",
            )
        elif isinstance(event.worker.error, InterruptedError):
            self._say("Mining cancelled: nothing was stored; the run is recorded as cancelled.")
        elif state == WorkerState.ERROR:
            self._say(f"Mining failed: {event.worker.error}", error=True)
        self._load()

    def action_cancel(self) -> None:
        if self.running:
            self.app.push_screen(
                ConfirmScreen("Cancel the running mining?", "Nothing it found is kept."), callback=self._confirmed
            )

    def _confirmed(self, yes: bool | None) -> None:
        if yes and self.running:
            self._cancel.set()
            self.query_one(JobLine).say("cancelling at the next step…")

    def action_recheck(self) -> None:
        self._load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "mine":
            return None if self.running else True
        if action == "cancel":
            return True if self.running else None
        return True

    def action_back(self) -> None:
        if self.running:
            self.action_cancel()
        else:
            self.dismiss(None)
