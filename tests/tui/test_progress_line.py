"""The progress line of gate, mining and index jobs (#18): the stage, its place among the stages (k/n), the
stage's rate and ETA from its measured reports, and the time since the job started."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Label

from tui.widgets import job_progress
from tui.widgets.job_progress import JobLine, JobProgress

MINING = ("encode corpus", "encode queries", "mine", "store")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class LineApp(App[None]):
    def __init__(self, stages: tuple[str, ...]) -> None:
        super().__init__()
        self.stages = stages

    def compose(self) -> ComposeResult:
        yield JobLine(id="line", stage_id="stage", stages=self.stages)


def text(app: LineApp) -> str:
    return str(app.query_one("#stage", Label).render())


@pytest.mark.parametrize("stages", [MINING, ()])
async def test_stage_place_rate_eta_and_elapsed(monkeypatch: pytest.MonkeyPatch, stages: tuple[str, ...]) -> None:
    clock = Clock()
    monkeypatch.setattr(job_progress, "now", clock)
    app = LineApp(stages)
    async with app.run_test() as pilot:
        line = app.query_one(JobLine)
        line.start("starting: loading the model…")
        assert text(app) == "starting: loading the model… · 0:00 elapsed"
        clock.t += 5
        line.show(JobProgress("encode corpus", 0, 400))
        clock.t += 10
        line.show(JobProgress("encode corpus", 100, 400))  # 10/s over the stage's 10 s: 300 left, 30 s
        n = "1/4" if stages else "1"
        assert text(app) == f"encode corpus 100/400 · 10.0/s · ETA 0:30 · stage {n} · 0:15 elapsed"
        clock.t += 60
        line.show(JobProgress("encode queries", 0, 50))  # a new stage: its own clock for the rate
        clock.t += 2
        line.show(JobProgress("encode queries", 25, 50))
        n = "2/4" if stages else "2"
        assert text(app) == f"encode queries 25/50 · 12.5/s · ETA 0:02 · stage {n} · 1:17 elapsed"
        line.show(JobProgress("rescore", 1, 10))  # a stage the screen did not expect counts on
        assert ("stage 3/5" if stages else "stage 3") in text(app)
        line.stop()
        await pilot.pause()
        assert line._ticker is None  # nothing ticks once the job ended
