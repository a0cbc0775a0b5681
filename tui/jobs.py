"""The one way a screen runs a long engine job (gate, mining, evaluation, index build) and reports on it.

The job runs in a thread worker owned by the screen (popping the screen cancels it) on a project connection of its
own, so the session's connection stays free for the screens' reads meanwhile. Progress reaches the screen as
JobProgress messages (thread-safe); cancel is cooperative: the engine polls `cancelled` at each report and raises
InterruptedError, which reads as "cancelled", not as a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from engine.jobs.progress import Progress
from engine.project import open_project
from tui.errors import job_error_text
from tui.screens.confirm import ConfirmScreen
from tui.widgets.job_progress import JobLine, JobProgress
from tui.widgets.notice import Notice

ENDED = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)
Cancelled = Callable[[], bool]
__all__ = ["Cancelled", "Job", "JobText", "Progress"]  # a job function's signature, for the screens


@dataclass(frozen=True)
class JobText:
    """What a screen says about its job."""

    name: str  # "gate": the job's name in job_error_text ("The gate cannot run: …")
    group: str  # the worker group, unique on the screen
    starting: str  # the progress line until the first report
    question: str  # the cancel confirmation's question and detail
    detail: str
    cancelling: str  # the progress line once a cancel is confirmed


class Job:
    """A screen's one background job. The screen starts it from a key, hands it its JobProgress and
    Worker.StateChanged events, and reads `running` to enable keys; the screen's Notice and JobLine show it."""

    def __init__(
        self,
        screen: Screen[Any],
        root: Path,
        text: JobText,
        *,
        succeeded: Callable[[Any], None],
        cancelled_note: Callable[[], str],
        error_text: Callable[[BaseException | None], str] | None = None,
    ) -> None:
        self.screen, self.root, self.text = screen, root, text
        self.succeeded, self.cancelled_note = succeeded, cancelled_note
        self.error_text = error_text or partial(job_error_text, job=text.name)
        self.running = False
        self.cancel_requested = threading.Event()

    def start(self, func: Callable[..., Any], *args: Any) -> None:
        """Run `func(project, *args, progress=…, cancelled=…)` in the background, unless the job already runs."""
        if self.running:
            return
        self.cancel_requested.clear()
        self._set_running(True)
        self.screen.query_one(Notice).say("")
        self.screen.query_one(JobLine).start(self.text.starting)
        work = partial(self._work, func, args)
        self.screen.run_worker(work, thread=True, exclusive=True, group=self.text.group, exit_on_error=False)

    def _work(self, func: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        worker = get_current_worker()

        def progress(stage: str, done: int, total: int) -> None:
            self.screen.post_message(JobProgress(stage, done, total))  # thread-safe; touching widgets here is not

        def cancelled() -> bool:
            # the cancel key, or Textual cancelling the worker (screen popped, app quitting)
            return self.cancel_requested.is_set() or worker.is_cancelled

        project = open_project(self.root)
        try:
            return func(project, *args, progress=progress, cancelled=cancelled)
        finally:
            project.close()

    def show(self, message: JobProgress) -> None:
        if self.running:  # a report can arrive after the job ended
            self.screen.query_one(JobLine).show(message)

    def finished(self, event: Worker.StateChanged) -> bool:
        """Report the end of this job's worker; False for any other event, which the screen handles itself."""
        worker = event.worker
        if worker.group != self.text.group or event.state not in ENDED:
            return False
        self._set_running(False)
        self.screen.query_one(JobLine).stop()
        if event.state == WorkerState.SUCCESS:
            self.succeeded(worker.result)
        elif isinstance(worker.error, InterruptedError):
            self.screen.query_one(Notice).say(self.cancelled_note(), "-note")
        elif event.state == WorkerState.ERROR:
            self.screen.query_one(Notice).say(self.error_text(worker.error), "-error")
        return True

    def ask_cancel(self) -> None:
        """Cancel after a confirmation that defaults to No: a cancelled job throws its work away."""
        if self.running:
            self.screen.app.push_screen(ConfirmScreen(self.text.question, self.text.detail), callback=self._confirmed)

    def _confirmed(self, yes: bool | None) -> None:
        if yes and self.running:
            self.cancel_requested.set()
            self.screen.query_one(JobLine).say(self.text.cancelling)

    def back(self) -> None:
        """escape: while the job runs, ask to cancel it instead of leaving the screen (which would cancel it)."""
        if self.running:
            self.ask_cancel()
        else:
            self.screen.dismiss(None)

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.screen.refresh_bindings()  # the run and cancel keys swap places
