"""The Train screen at 80×24 (an SSH window) and 140×45, in a fixed state: a finished run whose dev slice chose a
step, and an older cancelled run whose held-out queries were only watched, both made without training through the
engine's store functions (tests/tui/train_runs.py). A layout regression changes the SVG and fails here; after a
deliberate change, review the new pictures and run `pytest --snapshot-update` on this file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from engine.project import init_project
from tests.tui.train_runs import stored_run
from tui.app import EmbtuneApp
from tui.screens.train.screen import TrainScreen

STARTED = "2026-12-01T09:00:00.000Z"
FINISHED = "2026-12-01T09:07:30.000Z"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = init_project(tmp_path / "project")
    try:
        stored_run(project, status="cancelled", role="watch", logged=8, scale=1.3, checkpoint=5)
        stored_run(project, status="finished", role="select", steps=15)
        # Times as a run would have them, fixed so the picture is: the store stamps them with the clock.
        project.db.execute(
            "UPDATE runs SET created_at = ?, started_at = ?, finished_at = ?", [STARTED, STARTED, FINISHED]
        )
        project.db.execute("UPDATE job_events SET ts = ?", [STARTED])
        project.db.conn.commit()
    finally:
        project.close()
    return project.root


async def open_train(pilot: Pilot[Any]) -> None:
    await pilot.press("t")
    for _ in range(3):  # the pick, the first listing and the selected run's curves
        await pilot.pause(0.6)
        while any(w.is_running for w in pilot.app.workers):
            await pilot.pause(0.05)
    assert isinstance(pilot.app.screen, TrainScreen)


@pytest.mark.parametrize("size", [(80, 24), (140, 45)], ids=["80x24", "140x45"])
def test_train_screen(snap_compare: Any, root: Path, size: tuple[int, int]) -> None:
    assert snap_compare(EmbtuneApp(root), terminal_size=size, run_before=open_train)
