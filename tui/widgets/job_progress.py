"""A background job's progress on a screen: the message its worker thread posts, and the line that shows it."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Label, ProgressBar


class JobProgress(Message):
    """A step of a running job, posted from its worker thread (thread-safe, unlike touching widgets there).
    A newer one replaces an undelivered older one, so a fast job never floods the event loop."""

    def __init__(self, stage: str, done: int, total: int) -> None:
        super().__init__()
        self.stage, self.done, self.total = stage, done, total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobProgress)


class JobLine(Horizontal):
    """The job's stage with the time since it started, and a progress bar. The clock ticks every second: one stage
    can take minutes on a CPU (a block of passages), and a line that stands still looks like a hung job."""

    DEFAULT_CSS = """
    JobLine { height: 1; padding: 0 1; display: none; }
    JobLine > .job-stage { width: 1fr; color: $text-muted; }
    JobLine > ProgressBar { width: auto; }
    """

    def __init__(self, *, id: str, stage_id: str) -> None:
        super().__init__(id=id)
        self._stage_id = stage_id
        self._stage = ""
        self._started = 0.0
        self._ticker: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Label("", id=self._stage_id, classes="job-stage", markup=False)
        yield ProgressBar(show_eta=False)

    def start(self, stage: str) -> None:
        self.display = True
        self.query_one(ProgressBar).update(total=None, progress=0)
        self._started = time.monotonic()
        self.say(stage)
        self._ticker = self.set_interval(1, self._tick)

    def say(self, stage: str) -> None:
        self._stage = stage
        self._tick()

    def show(self, message: JobProgress) -> None:
        self.say(f"{message.stage} {message.done:,}/{message.total:,}")
        self.query_one(ProgressBar).update(total=max(message.total, 1), progress=message.done)

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self.display = False

    def _tick(self) -> None:
        seconds = int(time.monotonic() - self._started)
        self.query_one(f"#{self._stage_id}", Label).update(f"{self._stage} · {seconds // 60}:{seconds % 60:02d}")


def rate_text(done: int, total: int, seconds: float) -> str:
    """'1,024/5,183 · 27.3/s · ETA 2:32' (no rate before the first items)."""
    text = f"{done:,}/{total:,}"
    if done and seconds > 0:
        rate = done / seconds
        left = int((total - done) / rate) if rate else 0
        text += f" · {rate:,.1f}/s · ETA {left // 60}:{left % 60:02d}"
    return text


class RateLine(JobLine):
    """A JobLine with the stage's rate and ETA instead of a clock: an index build's stages are long runs of like
    batches, where items per second say more than the time spent."""

    def start(self, stage: str) -> None:
        self.display = True
        self.query_one(ProgressBar).update(total=None, progress=0)
        self.say(stage)

    def say(self, stage: str) -> None:
        self._show(stage, 0, 0)

    def show(self, message: JobProgress) -> None:
        self._show(message.stage, message.done, message.total)
        self.query_one(ProgressBar).update(total=max(message.total, 1), progress=message.done)

    def stop(self) -> None:
        super().stop()
        self._stage = ""  # the next start times its first stage afresh

    def _show(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self._stage, self._started = stage, time.monotonic()
        counts = rate_text(done, total, time.monotonic() - self._started) if total > 1 else ""
        self.query_one(f"#{self._stage_id}", Label).update(f"{stage} {counts}".strip())
