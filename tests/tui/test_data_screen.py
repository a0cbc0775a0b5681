"""The training-data screen over a real project and the tiny model: checks on open, mining in the background
with its summary, and cancelling a run."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Label, Static
from textual.worker import WorkerFailed

import engine.data.mining
from engine.project import open_project
from engine.store import runs
from engine.store.negatives import all_negatives
from tests.projects import make_project
from tui.app import EmbtuneApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.data import DataScreen

SIZE = (120, 40)


@pytest.fixture
def root(tmp_path: Path, tiny_embedder_path: Path) -> Path:
    project = make_project(tmp_path, tiny_embedder_path)
    # a wide rank window: the tiny corpus is too small for the default ranks 10-50
    with (project.root / "project.yaml").open("a") as f:
        f.write("mining:\n  range_min: 0\n  range_max: 20\n  relative_margin: null\n  rescore: never\n")
    project.close()
    return project.root


async def settle(pilot: Pilot[Any]) -> None:
    with contextlib.suppress(WorkerFailed):
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_data(pilot: Pilot[Any]) -> DataScreen:
    await settle(pilot)
    await pilot.press("m")
    await settle(pilot)
    assert isinstance(pilot.app.screen, DataScreen)
    return pilot.app.screen


def text(screen: DataScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def stored(root: Path) -> tuple[int, list[dict[str, Any]]]:
    project = open_project(root)
    try:
        ids = runs.run_ids(project.db, "mine")
        status = runs.get_run(project.db, ids[-1])["status"] if ids else ""
        return len(all_negatives(project.db)), [{"status": status}]
    finally:
        project.close()


async def test_checks_show_on_open_and_r_mines_then_shows_the_summary(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_data(pilot)
        checks = text(screen, "#data-checks")
        assert "Training pairs:" in checks  # the 1,000 / 5,000 rule against this project's few pairs
        assert "below the guide's minimum of 1,000" in checks
        assert "Hard negatives: none of the" in checks
        assert "No hard negatives mined yet" in text(screen, "#data-mining")
        await pilot.press("r")
        await settle(pilot)
        await settle(pilot)  # the reload after mining
        negatives, (run,) = stored(root)
        assert negatives > 0
        assert run["status"] == "finished"
        assert "Mined hard negatives for" in text(screen, "#data-mining")
        assert f"added      {negatives:,} new negatives" in text(screen, "#data-mining")
        assert "Hard negatives: none of the" not in text(screen, "#data-checks")


async def test_cancel_asks_then_stops_mining_and_keeps_nothing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    original = engine.data.mining._mine

    def held(encoder: Any, pairs: Any, chunk_texts: Any, config: Any, report: Any) -> Any:
        started.set()
        release.wait(timeout=30)
        report("held", 0, 1)  # the first progress call after the cancel raises InterruptedError
        return original(encoder, pairs, chunk_texts, config, report)

    monkeypatch.setattr(engine.data.mining, "_mine", held)
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_data(pilot)
        await pilot.press("r")
        for _ in range(100):
            if started.is_set():
                break
            await pilot.pause(0.05)
        assert started.is_set()
        assert screen.job.running
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        release.set()
        await settle(pilot)
        assert not screen.job.running
        assert "Mining cancelled" in text(screen, "#data-message")
        negatives, (run,) = stored(root)
        assert (negatives, run["status"]) == (0, "cancelled")
        assert "Training data" in str(screen.query_one("#data-title", Label).render())
