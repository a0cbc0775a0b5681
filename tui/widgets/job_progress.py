"""A background job's progress on a screen: the message its worker thread posts, and the line that shows it."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Label, ProgressBar


def now() -> float:
    """The clock of every progress line (one name, so a test can set it)."""
    return time.monotonic()


class JobProgress(Message):
    """A step of a running job, posted from its worker thread (thread-safe, unlike touching widgets there).
    A newer one replaces an undelivered older one, so a fast job never floods the event loop."""

    def __init__(self, stage: str, done: int, total: int) -> None:
        super().__init__()
        self.stage, self.done, self.total = stage, done, total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobProgress)


class JobLine(Horizontal):
    """The job's stage, its place among the stages (k/n where the screen knows the stages, else k), the stage's
    rate and ETA measured from its own reports, the time since the job started, and a progress bar. The clock
    ticks every second while the job runs (a stage can take minutes on a CPU, and a line that stands still looks
    like a hung job); nothing ticks once it ends."""

    DEFAULT_CSS = """
    JobLine { height: 1; padding: 0 1; display: none; }
    JobLine > .job-stage { width: 1fr; color: $text-muted; }
    JobLine > ProgressBar { width: auto; }
    """

    def __init__(self, *, id: str, stage_id: str, stages: tuple[str, ...] = ()) -> None:
        super().__init__(id=id)
        self._stage_id = stage_id
        self._expected = stages  # the job's stages in order, when known: "stage 2/4"
        self._seen: list[str] = []
        self._text = ""  # what the line says before the clock
        self._stage = ""
        self._started = self._stage_started = 0.0
        self._ticker: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Label("", id=self._stage_id, classes="job-stage", markup=False)
        yield ProgressBar(show_eta=False)

    def start(self, stage: str) -> None:
        self.display = True
        self.query_one(ProgressBar).update(total=None, progress=0)
        self._started = now()
        self._seen, self._stage = [], ""
        self.say(stage)
        if self._ticker is None:
            self._ticker = self.set_interval(1, self._tick)

    def say(self, text: str) -> None:
        self._text = text
        self._tick()

    def show(self, message: JobProgress) -> None:
        at = now()
        if message.stage != self._stage:
            self._stage, self._stage_started = message.stage, at
            if message.stage not in self._seen:
                self._seen.append(message.stage)
        seconds = at - self._stage_started
        counts = (
            rate_text(message.done, message.total, seconds) if message.total > 1 else f"{message.done}/{message.total}"
        )
        self.say(" · ".join(part for part in (f"{message.stage} {counts}".strip(), self._place()) if part))
        self.query_one(ProgressBar).update(total=max(message.total, 1), progress=message.done)

    def _place(self) -> str:
        """'stage 2/4' (the known stages plus any the job added), or 'stage 3' when the screen cannot know them."""
        k = len(self._seen)
        if not self._expected:
            return f"stage {k}"
        extra = [s for s in self._seen if s not in self._expected]
        at = self._expected.index(self._stage) + 1 if self._stage in self._expected else k
        return f"stage {at}/{len(self._expected) + len(extra)}"

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self.display = False

    def _tick(self) -> None:
        seconds = int(now() - self._started)
        self.query_one(f"#{self._stage_id}", Label).update(f"{self._text} · {clock(seconds)} elapsed")


def clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def rate_text(done: int, total: int, seconds: float) -> str:
    """'1,024/5,183 · 27.3/s · ETA 2:32' (no rate before the first items)."""
    text = f"{done:,}/{total:,}"
    if done and seconds > 0:
        rate = done / seconds
        left = int((total - done) / rate) if rate else 0
        text += f" · {rate:,.1f}/s · ETA {clock(left)}"
    return text


class RateLine(JobLine):
    """An index build's line: the same, named for the screen that shows rates (its stages are long runs of like
    batches, where items per second say the most)."""
