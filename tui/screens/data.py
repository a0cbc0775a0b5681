"""`m`: the training data before training — the data checks, and hard-negative mining as a background job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, Static
from textual.worker import Worker, WorkerState

from engine import overview
from engine.data.checks import CheckReport, run_checks
from engine.project import Project
from tui.jobs import Cancelled, Job, JobText, Progress
from tui.session import Session
from tui.widgets.footer import KeyFooter
from tui.widgets.job_progress import JobLine, JobProgress
from tui.widgets.notice import Notice

MINING_STAGES = ("encode corpus", "encode queries", "mine", "store")  # + "rescore" with a cross-encoder
MARKS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "error": ("✗", "bold red")}
JOB = JobText(
    name="mining",
    group="data-mine",
    starting="starting: loading the model…",
    question="Cancel the running mining?",
    detail="Nothing it found is kept. (Should it be storing its result already, it finishes and says so.)",
    cancelling="cancelling at the next step…",
)


@dataclass
class DataView:
    checks: CheckReport
    mining: str  # the last mining run's summary, or how to get one


def load_view(project: Project) -> DataView:
    latest = overview.last_summary(project, "mine")
    if latest is None:
        mining = (
            "No hard negatives mined yet. Press r to mine them with the base model (settings: mining: in project.yaml)."
        )
    else:
        from engine.data.mining import render_summary  # numpy: only once there is a summary to show

        mining = render_summary(latest)
    return DataView(run_checks(project), mining)


def checks_text(report: CheckReport) -> Text:
    text = Text()
    for finding in report.findings:
        mark, style = MARKS[finding.severity]
        text.append(f" {mark} ", style=style)
        text.append(f"{finding.title}: ", style="bold")
        text.append(f"{finding.message}\n")
    return text


def mine(project: Project, progress: Progress, cancelled: Cancelled) -> dict[str, Any]:
    from engine.data.mining import mine_negatives  # the model libraries load only when mining runs

    return mine_negatives(project, progress, cancelled)


class DataScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Training data"
    DEFAULT_CSS = """
    DataScreen #data-title { text-style: bold; padding: 0 1; background: $boost; width: 100%; }
    DataScreen .data-heading { text-style: bold; padding: 1 1 0 1; }
    DataScreen #data-checks, DataScreen #data-mining { padding: 0 1; height: auto; }
    DataScreen #data-progress { height: 1; padding: 0 1; display: none; }
    DataScreen #data-stage { width: 1fr; }
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

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.job = Job(
            self,
            session.project.root,
            JOB,
            succeeded=self._mined,
            cancelled_note=lambda: "Mining cancelled: nothing was stored; the run is recorded as cancelled.",
            error_text=lambda error: f"Mining failed: {error}",
        )

    def compose(self) -> ComposeResult:
        yield Label("Training data · checking…", id="data-title", markup=False)
        with VerticalScroll():
            yield Label("Checks before training", classes="data-heading")
            yield Static("", id="data-checks")
            yield Label("Hard negatives", classes="data-heading")
            yield Static("", id="data-mining", markup=False)
        yield Notice(id="data-message")
        yield JobLine(id="data-progress", stage_id="data-stage", stages=MINING_STAGES)
        yield KeyFooter()

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

    # --- mining -----------------------------------------------------------------------------------------

    def action_mine(self) -> None:
        self.job.start(mine)

    def on_job_progress(self, message: JobProgress) -> None:
        self.job.show(message)

    def _mined(self, summary: dict[str, Any]) -> None:
        added = f"{summary['negatives_added']:,} negatives added, {summary['short']:,} queries short"
        if self.job.cancel_requested.is_set():  # the cancel came after the engine's last check: say what is kept
            self.query_one(Notice).say(
                f"Mining had already stored its result when the cancel came, so it finished: {added}; "
                "they are kept (reject them in Review, v, tab).",
                "-note",
            )
        else:
            self.notify(added, title="Mining finished")

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if self.job.finished(event):
            self._load()  # the checks and the mining summary change with the negatives
        elif event.worker.group == "data-load" and event.state == WorkerState.SUCCESS:
            self._show(event.worker.result)
        elif event.worker.group == "data-load" and event.state == WorkerState.ERROR:
            self.query_one(Notice).say(f"Could not read the training data: {event.worker.error}", "-error")

    def action_cancel(self) -> None:
        self.job.ask_cancel()

    def action_recheck(self) -> None:
        self._load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "mine":
            return None if self.job.running else True
        if action == "cancel":
            return True if self.job.running else None
        return True

    def action_back(self) -> None:
        self.job.back()
