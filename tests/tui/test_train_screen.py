"""The Train screen over a real project: empty state, `s` with its pre-flight summary, re-attaching to a running
run and following it live from the store (as the detached worker writes it), cancel with confirm, a dead worker
shown as interrupted. The worker itself is not started here (tests/engine/test_jobs.py runs it for real)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Label, RichLog, Static

import engine.jobs.launcher
from engine.project import open_project
from engine.store import jobs as store
from engine.train.run import settings_for, start_training
from tests.projects import make_project
from tests.tui.charts import plain
from tui.app import EmbtuneApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.train.screen import TrainScreen
from tui.widgets.train_chart import TrainChart

SIZE = (120, 40)


@pytest.fixture
def root(tmp_path: Path, tiny_embedder_path: Path) -> Path:
    project = make_project(tmp_path, tiny_embedder_path, train_per_doc=3)
    project.close()
    with (project.root / "project.yaml").open("a") as f:
        f.write("training:\n  dev_min_queries: 10\n")  # the tiny project's 36 train queries get a dev slice
    return project.root


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs the screen asked to launch; the worker is not started (its pid: this test process)."""
    calls: list[int] = []

    def fake_launch(project: Any, run_id: int, launcher: Any = None) -> int:
        calls.append(run_id)
        store.set_pid(project.db, run_id, os.getpid())
        return os.getpid()

    monkeypatch.setattr(engine.jobs.launcher, "launch", fake_launch)
    monkeypatch.setattr(engine.jobs.launcher, "pid_alive", lambda pid: pid == os.getpid())
    return calls


def running_run(root: Path) -> int:
    project = open_project(root)
    try:
        run_id, _ = start_training(project, settings_for(project, batch_size=8, max_steps=20), launch=False)
        store.mark_running(project.db, run_id, os.getpid())
        return run_id
    finally:
        project.close()


async def open_train(pilot: Pilot[Any]) -> TrainScreen:
    await pilot.press("t")
    await pilot.pause(0.3)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.1)
    screen = pilot.app.screen
    assert isinstance(screen, TrainScreen)
    return screen


async def settle(pilot: Pilot[Any], rounds: int = 3) -> None:
    for _ in range(rounds):
        await pilot.pause(0.6)  # a poll tick
        await pilot.app.workers.wait_for_complete()


def text(screen: TrainScreen, selector: str) -> str:
    return str(screen.query_one(selector, Label if selector in ("#train-title", "#train-status") else Static).render())


async def test_empty_then_s_shows_the_preflight_and_starts_a_run(root: Path, launched: list[int]) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        assert "No training run yet" in text(screen, "#train-message")
        assert screen.check_action("cancel", ()) is None  # nothing to cancel
        await pilot.press("s")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "training rows from 120 reviewed pairs" in confirm.detail
        assert "no-duplicates sampler" in confirm.detail
        await pilot.press("y")
        await settle(pilot)
        assert len(launched) == 1
        assert screen.run_id == launched[0]
        assert f"run {launched[0]}" in text(screen, "#train-title")


async def test_reattaches_and_follows_a_running_run_live(root: Path, launched: list[int]) -> None:
    run_id = running_run(root)
    project = open_project(root)
    app = EmbtuneApp(root)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_train(pilot)
            assert screen.run_id == run_id  # re-attached on open
            assert "running" in text(screen, "#train-title")
            store.flush(
                project.db,
                run_id,
                [("loss", "train", s, 3.0 - 0.1 * s) for s in range(1, 8)]
                + [("lr", "train", s, 1e-5) for s in range(1, 8)]
                + [("ndcg@10", "dev", 5, 0.42)],
                [
                    ("train_begin", {"step": 0, "max_steps": 20}),
                    ("eval", {"step": 5, "ndcg@10": 0.42}),
                    ("progress", {"step": 7, "max_steps": 20, "steps_per_s": 2.0, "eta_s": 6.5, "elapsed_s": 3.5}),
                ],
            )
            await settle(pilot)
            chart = screen.query_one(TrainChart)
            assert chart.points("loss")[-1] == (7, pytest.approx(2.3))
            lines = [plain(line) for line in chart.lines(100)]
            assert any("█" in line for line in lines)  # the curve is drawn
            assert any(line.strip().startswith("lr") for line in lines)
            status = text(screen, "#train-status")
            assert "step 7/20" in status
            assert "2.00 steps/s" in status
            assert "ETA 0:06" in status
            assert "0.4200" in text(screen, "#train-evals")
            log = screen.query_one("#train-log", RichLog)
            assert any("held-out nDCG@10 0.4200" in str(line.text) for line in log.lines)
            store.flush(project.db, run_id, [("loss", "train", 8, 1.0)], [])
            await settle(pilot)
            assert chart.points("loss")[-1] == (8, 1.0)  # new points keep arriving
    finally:
        project.close()


async def test_cancel_asks_first_and_then_requests_the_stop(root: Path, launched: list[int]) -> None:
    run_id = running_run(root)
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        await settle(pilot, 1)
        await pilot.press("c")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot, 1)
        project = open_project(root)
        try:
            assert not store.cancel_requested(project.db, run_id)
            await pilot.press("c")
            await pilot.pause(0.2)
            await pilot.press("y")
            await settle(pilot, 1)
            assert store.cancel_requested(project.db, run_id)
        finally:
            project.close()
        assert screen.run_id == run_id


async def test_a_dead_worker_shows_as_interrupted(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = running_run(root)
    monkeypatch.setattr(engine.jobs.launcher, "owner_gone", lambda pid, start, detached: "gone")
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        await settle(pilot, 1)
        assert screen.run_id == run_id
        assert "interrupted" in text(screen, "#train-title")
        assert "interrupted" in text(screen, "#train-message")
        assert screen.check_action("resume", ()) is None  # no checkpoint was saved: nothing to resume from
