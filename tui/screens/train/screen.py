"""`t`: training. Re-attaches to a running run on open; `s` starts one after a pre-flight summary, `c` cancels
it (confirm), `r` resumes a stopped one. The run is a detached process: this screen only watches the store."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Label, RichLog, Static
from textual.worker import Worker, WorkerState

from engine.project import Project
from engine.train import view as train_view
from tui.screens.confirm import ConfirmScreen
from tui.screens.train.text import evals_text, plan_text, status_line
from tui.session import Session
from tui.widgets.notice import Notice
from tui.widgets.train_chart import TrainChart

POLL_SECONDS = 0.5
EMPTY = (
    "No training run yet. Press s to see the pre-flight summary (training rows, hard negatives, steps, "
    "dev slice) and start one. Runs are detached: they keep going if you quit embtune or lose SSH."
)


def start_plan(project: Project) -> dict[str, Any]:
    from engine.train.run import plan, settings_for

    return plan(project, settings_for(project))


def start_run(project: Project) -> int:
    from engine.train.run import settings_for, start_training

    return start_training(project, settings_for(project))[0]


def resume_run(project: Project, run_id: int) -> int:
    from engine.train.run import resume_training

    return resume_training(project, run_id)


def cancel_run(project: Project, run_id: int) -> str:
    from engine.jobs.launcher import cancel

    return cancel(project, run_id)


class TrainScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Train"
    AUTO_FOCUS = ""
    DEFAULT_CSS = """
    TrainScreen #train-title { text-style: bold; padding: 0 1; }
    TrainScreen #train-status { padding: 0 1; color: $text-muted; }
    TrainScreen #train-detached { padding: 0 1; color: $text-muted; text-style: italic; }
    TrainScreen #train-message { padding: 0 1; }
    TrainScreen #train-message.-error { color: $text-error; }
    TrainScreen #train-chart { padding: 0 1; border: round $primary 50%; }
    TrainScreen #train-bottom { height: 1fr; }
    TrainScreen #train-evals { width: 34; border: round $primary 50%; padding: 0 1; }
    TrainScreen #train-log { border: round $primary 50%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "s", "start", "Start", tooltip="Pre-flight summary, then start a run in the background", id="train-start"
        ),
        Binding(
            "c",
            "cancel",
            "Cancel",
            tooltip="Stop the run at its next step, saving a checkpoint (asks first)",
            id="train-cancel",
        ),
        Binding(
            "r",
            "resume",
            "Resume",
            tooltip="Continue a stopped run from its last checkpoint as a child run",
            id="train-resume",
        ),
        Binding(
            "l",
            "worker_log",
            "Worker log",
            tooltip="Show the worker's own log (warnings, tracebacks)",
            id="train-worker-log",
        ),
        Binding("escape", "back", "Back", tooltip="Back to home; a running run keeps going", id="train-back"),
    ]
    run: reactive[dict[str, Any] | None] = reactive(None, bindings=True, always_update=True, init=False)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.run_id: int | None = None
        self.last_step = -1
        self.last_event = 0
        self.progress: dict[str, Any] = {}
        self._timer: Timer | None = None
        self._settled = False  # the shown run has ended and its last update is drawn: polling can rest

    def compose(self) -> ComposeResult:
        yield Label("Train · loading…", id="train-title", markup=False)
        yield Label("", id="train-status", markup=False)
        yield Label(
            "detached: a run keeps going if you quit embtune or lose SSH; reopening re-attaches", id="train-detached"
        )
        yield Notice(id="train-message")
        yield TrainChart(id="train-chart")
        with Horizontal(id="train-bottom"):
            yield Static("", id="train-evals", markup=False)
            yield RichLog(id="train-log", markup=False, wrap=True, max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#train-chart").border_title = "loss · learning rate · dev nDCG@10"
        self.query_one("#train-evals").border_title = "dev evaluations"
        self.query_one("#train-log").border_title = "log"
        self._pick()
        self._timer = self.set_interval(POLL_SECONDS, self._tick)

    # --- following a run ----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="train-pick", exit_on_error=False)
    def _pick(self) -> int | None:
        return self.session.call(train_view.pick_run)

    def attach(self, run_id: int | None) -> None:
        self.run_id, self.last_step, self.last_event, self.progress = run_id, -1, 0, {}
        self._settled = False
        self.query_one(TrainChart).reset()
        self.query_one("#train-log", RichLog).clear()
        self.query_one("#train-evals", Static).update("")
        if run_id is None:
            self.query_one("#train-title", Label).update("Train · no runs yet")
            self._say(EMPTY)
            self.run = None
            return
        self._say("")
        self._tick()

    def _tick(self) -> None:
        if self.run_id is not None and not self._settled:
            self._poll(self.run_id, max(-1, self.last_step - 1), self.last_event)

    @work(thread=True, exclusive=True, group="train-poll", exit_on_error=False)
    def _poll(self, run_id: int, after_step: int, after_event: int) -> tuple[int, train_view.TrainUpdate]:
        return run_id, self.session.call(train_view.poll, run_id, after_step, after_event)

    def show(self, update: train_view.TrainUpdate) -> None:
        run = update.run
        if run is None:
            return
        if update.metrics:
            self.last_step = max(self.last_step, max(step for _, _, step, _ in update.metrics))
            self.query_one(TrainChart).add(update.metrics)
        for event in update.events:
            self.last_event = max(self.last_event, event["id"])
            if event["kind"] in ("progress", "train_begin"):
                self.progress = {**self.progress, **event["payload"]}
            elif event["kind"] == "preflight":
                self.progress["preflight"] = event["payload"]
        log = self.query_one("#train-log", RichLog)
        for line in update.log:
            log.write(line)
        chart = self.query_one(TrainChart)
        chart.max_steps = self.progress.get("max_steps") or (
            run["config"].get("schedule") or run["config"].get("plan") or {}
        ).get("max_steps")
        dev = chart.points("dev")
        if dev:
            self.query_one("#train-evals", Static).update(evals_text(dev))
        self._settled = run["status"] not in ("queued", "running")
        self.run = run

    def watch_run(self, run: dict[str, Any] | None) -> None:
        if run is None:
            return
        config = run["config"]
        settings = config.get("settings", {})
        parent = f" · resumes run {run['parent_id']}" if run["parent_id"] else ""
        self.query_one("#train-title", Label).update(
            f"Train · run {run['id']} · {run['status']}{parent} · {config.get('base_model', '?')} · "
            f"{settings.get('loss', '?')} · batch {settings.get('batch_size', '?')}"
        )
        chart = self.query_one(TrainChart)
        self.query_one("#train-status", Label).update(status_line(run, self.progress, chart.max_steps))
        source = (config.get("plan") or {}).get("dev_source", "train")
        watched = source in ("test", "gate")
        self.query_one("#train-evals").border_title = f"{source} queries (watch only)" if watched else "dev evaluations"
        if run["status"] in ("failed", "interrupted") and run["error"]:
            self._say(
                f"Run {run['id']} {run['status']}: {run['error']}. Press r to resume from its last "
                "checkpoint, or l for the worker log.",
                "-error",
            )

    def _say(self, text: str, kind: str = "") -> None:
        self.query_one(Notice).say(text, kind)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        group, state = event.worker.group, event.state
        if state == WorkerState.ERROR:
            self._say(f"{group}: {type(event.worker.error).__name__}: {event.worker.error}", "-error")
            return
        if state != WorkerState.SUCCESS:
            return
        result = event.worker.result
        if group == "train-pick":
            self.attach(result)
        elif group == "train-poll":
            run_id, update = result
            if run_id == self.run_id:
                self.show(update)
        elif group == "train-plan":
            self.app.push_screen(ConfirmScreen("Start a training run?", plan_text(result)), callback=self._start)
        elif group in ("train-start", "train-resume"):
            self.notify(f"Run {result} started in the background", title="Train")
            self.attach(result)
        elif group == "train-cancel":
            self.notify(f"Run {self.run_id}: {result}; it stops after the current step", title="Train")
        elif group == "train-worker-log":
            log = self.query_one("#train-log", RichLog)
            log.write("── worker log ──")
            for line in result:
                log.write(line)

    # --- actions ----------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.run is not None and self.run["status"] in ("queued", "running")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return None if self.active else True
        if action == "cancel":
            return True if self.active else None
        if action == "resume":
            stopped = self.run is not None and self.run["status"] in ("cancelled", "failed", "interrupted")
            return True if stopped and self.run and self.run["checkpoint_path"] else None
        if action == "worker_log":
            return True if self.run is not None else None
        return True

    def action_start(self) -> None:
        if not self.active:
            self._plan()

    @work(thread=True, exclusive=True, group="train-plan", exit_on_error=False)
    def _plan(self) -> dict[str, Any]:
        return self.session.call(start_plan)

    def _start(self, yes: bool | None) -> None:
        if yes:
            self._launch()

    @work(thread=True, exclusive=True, group="train-start", exit_on_error=False)
    def _launch(self) -> int:
        return self.session.call(start_run)

    def action_cancel(self) -> None:
        if not self.active or self.run_id is None:
            return
        self.app.push_screen(
            ConfirmScreen(
                f"Cancel run {self.run_id}?", "It saves a checkpoint at its next step; r resumes from there."
            ),
            callback=self._cancel_confirmed,
        )

    def _cancel_confirmed(self, yes: bool | None) -> None:
        if yes and self.run_id is not None:
            self._cancel(self.run_id)

    @work(thread=True, exclusive=True, group="train-cancel", exit_on_error=False)
    def _cancel(self, run_id: int) -> str:
        return self.session.call(cancel_run, run_id)

    def action_resume(self) -> None:
        if self.run_id is not None and self.check_action("resume", ()):
            self._resume(self.run_id)

    @work(thread=True, exclusive=True, group="train-resume", exit_on_error=False)
    def _resume(self, run_id: int) -> int:
        return self.session.call(resume_run, run_id)

    def action_worker_log(self) -> None:
        if self.run_id is not None:
            self._worker_log(self.run_id)

    @work(thread=True, exclusive=True, group="train-worker-log", exit_on_error=False)
    def _worker_log(self, run_id: int) -> list[str]:
        return self.session.call(train_view.worker_log, run_id)

    def action_back(self) -> None:
        self.dismiss(None)
