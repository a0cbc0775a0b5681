"""The Train screen over real projects: the settings form with its live pre-flight, the runs table with any run's
curves and a second run overlaid, following runs started elsewhere, cancel feedback, resume only where a checkpoint
exists (and Home's hint by the same rule), and evaluation shown as watched where it never chooses. Runs are made
without training (tests/tui/train_runs.py) and the detached worker is never started here (tests/engine/test_jobs.py
runs it for real)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Label, RichLog, Select, Static

import engine.jobs.launcher
from engine.errors import EmbtuneError
from engine.pipeline_state import pipeline_state
from engine.project import Project, init_project, open_project
from engine.store import jobs as store
from engine.train import view
from engine.train.run import TrainingError, resume_training
from tests.projects import cli, make_project
from tests.tui.charts import plain
from tests.tui.train_runs import stored_run
from tui.app import EmbtuneApp
from tui.readiness import training_stage
from tui.screens.confirm import ConfirmScreen
from tui.screens.train.form import TrainForm
from tui.screens.train.screen import TrainScreen
from tui.screens.train.widgets import RunsTable
from tui.widgets.notice import Notice
from tui.widgets.train_chart import TrainChart

SIZE = (120, 40)


@pytest.fixture
def root(tmp_path: Path, tiny_embedder_path: Path) -> Path:
    """A project with data: the form's pre-flight plans real rows."""
    project = make_project(tmp_path, tiny_embedder_path, train_per_doc=3)
    project.close()
    with (project.root / "project.yaml").open("a") as f:
        f.write("training:\n  batch_size: 8\n  max_steps: 6\n  dev_min_queries: 10\n")
    return project.root


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[Project]:
    """A project without data, for stored runs: the screen only reads the store."""
    project = init_project(tmp_path / "bare")
    yield project
    project.close()


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs the screen asked to launch; the worker is not started (its pid: this test process)."""
    calls: list[int] = []

    def fake_launch(project: Any, run_id: int, launcher: Any = None) -> int:
        calls.append(run_id)
        store.set_pid(project.db, run_id, os.getpid())
        return os.getpid()

    monkeypatch.setattr(engine.jobs.launcher, "launch", fake_launch)
    return calls


async def open_train(pilot: Pilot[Any]) -> TrainScreen:
    await pilot.press("t")
    await settle(pilot, 2)
    screen = pilot.app.screen
    assert isinstance(screen, TrainScreen)
    return screen


async def settle(pilot: Pilot[Any], rounds: int = 3) -> None:
    for _ in range(rounds):
        await pilot.pause(0.6)  # a poll tick
        await idle(pilot)


async def idle(pilot: Pilot[Any]) -> None:
    """Until no worker runs (a worker that failed is the screen's to show, not the test's to raise)."""
    while any(w.is_running for w in pilot.app.workers):
        await pilot.pause(0.05)


async def until(pilot: Pilot[Any], condition: Callable[[], bool], seconds: float = 15.0) -> None:
    """Pause until `condition` holds (a debounced pre-flight lands later on a loaded machine); the caller's assert
    then says what did not happen."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await pilot.pause(0.1)
        await idle(pilot)


def label(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Label).render())


def static(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def chart_text(screen: TrainScreen, width: int = 100) -> str:
    return "\n".join(plain(line) for line in screen.query_one(TrainChart).lines(width))


def table_rows(screen: TrainScreen) -> dict[int, list[str]]:
    table = screen.query_one(RunsTable)
    return {int(str(key.value)): [str(c) for c in table.get_row(key)] for key in table.rows}


async def set_field(pilot: Pilot[Any], form: TrainForm, name: str, value: str) -> None:
    field = form.query_one(f"#f-{name}", Input)
    field.value = value
    await pilot.pause(0.5)  # the pre-flight waits for the typing to stop
    await idle(pilot)
    await pilot.pause(0.1)


# --- 1: the settings form -----------------------------------------------------------------------------------


async def test_the_form_is_prefilled_its_preflight_follows_the_values_and_start_uses_them(
    root: Path, launched: list[int]
) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        assert "No training run yet" in screen.query_one(Notice).text
        await pilot.press("s")
        await settle(pilot, 1)
        form = app.screen
        assert isinstance(form, TrainForm)
        values = form.values()
        assert (values["batch_size"], values["max_steps"], values["loss"]) == ("8", "6", "mnrl")  # project.yaml
        assert values["base_model"] == open_project(root).config.base_model
        assert values["hard_negatives"] is open_project(root).config.training.hard_negatives
        assert values["max_seq_length"] == ""
        assert "steps: 6 " in static(form, "#form-plan")
        assert "dev slice" in static(form, "#form-plan")

        await set_field(pilot, form, "max_steps", "9")
        assert "steps: 9 " in static(form, "#form-plan")  # the pre-flight follows the values
        await set_field(pilot, form, "epochs", "two")
        assert "epochs: expected a whole number, got 'two'" in form.query_one(Notice).text
        assert form.check_action("start", ()) is None  # an invalid form cannot start
        await set_field(pilot, form, "epochs", "1")
        await set_field(pilot, form, "batch_size", "5000")
        assert "fewer than one batch of 5000" in form.query_one(Notice).text  # the engine's own message
        await set_field(pilot, form, "batch_size", "4")
        await set_field(pilot, form, "learning_rate", "3e-5")
        form.query_one("#f-loss", Select).value = "cached_mnrl"
        await until(pilot, lambda: "cached_mnrl · batch 4" in static(form, "#form-plan"))
        assert form.query_one(Notice).text == ""
        assert "cached_mnrl · batch 4" in static(form, "#form-plan")
        await pilot.press("ctrl+s")
        await settle(pilot, 3)
        assert len(launched) == 1
        assert app.screen is screen
        assert screen.run_id == launched[0]
        project = open_project(root)
        try:
            settings = store.train_run(project.db, launched[0])["config"]["settings"]
        finally:
            project.close()
        assert (settings["max_steps"], settings["batch_size"], settings["loss"]) == (9, 4, "cached_mnrl")
        assert settings["learning_rate"] == pytest.approx(3e-5)


async def test_the_form_names_a_base_model_it_cannot_find(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await open_train(pilot)
        await pilot.press("s")
        await settle(pilot, 1)
        form = app.screen
        assert isinstance(form, TrainForm)
        await set_field(pilot, form, "base_model", str(root / "no-such-model"))
        assert "no-such-model" in form.query_one(Notice).text
        assert form.check_action("start", ()) is None


def test_form_settings_parse_text_and_keep_the_engine_checks(root: Path) -> None:
    project = open_project(root)
    try:
        values = view.form_values(project)
        s = view.form_settings(project, {**values, "max_steps": "", "max_seq_length": "64", "hard_negatives": False})
        assert (s.max_steps, s.max_seq_length, s.hard_negatives) == (None, 64, False)  # empty: epochs decide
        for field, value, message in [
            ("learning_rate", "2", "--lr must be between 0 and 1"),
            ("max_seq_length", "4", "sequence length must be at least 8"),
            ("max_steps", "1.5", "max steps: expected a whole number (or empty)"),
            ("loss", "triplet", "--loss must be one of"),
        ]:
            with pytest.raises(EmbtuneError, match=message.replace("(", r"\(").replace(")", r"\)")):
                view.form_settings(project, {**values, field: value})
    finally:
        project.close()


# --- 2 and 6: the runs table, curves, overlay, watched evaluation -------------------------------------------


async def test_runs_table_selects_any_run_and_overlays_a_second(bare: Project) -> None:
    first = stored_run(bare, steps=15, role="select")
    second = stored_run(bare, steps=15, role="watch", scale=1.3, status="cancelled", logged=8)
    app = EmbtuneApp(bare.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        assert screen.run_id == second  # the newest, on open
        rows = table_rows(screen)
        listed = json.loads(cli("runs", bare.root, "--json")[1])["runs"]
        for run in listed:  # the same step count as `embtune runs`
            assert rows[run["run_id"]][3] == f"{run['step']}/{run['max_steps']}"
        assert rows[first][4] == "best 0.5200"
        assert rows[second][4] == f"watched {0.47 * 1.3:.4f}"  # its last evaluation (step 5)
        assert rows[second][2] == "cancelled"
        assert rows[second][0] == "▶"

        # 6: watched held-out queries never choose: no "dev nDCG", no ★
        assert "watched" in chart_text(screen)
        assert "dev nDCG" not in chart_text(screen)
        assert "★" not in chart_text(screen)
        assert "★" not in static(screen, "#train-evals")
        assert "step 8/15" in label(screen, "#train-status")

        await pilot.press("down", "enter")
        await settle(pilot, 1)
        assert screen.run_id == first
        chart = screen.query_one(TrainChart)
        assert chart.points("loss")[-1] == (15, pytest.approx(2.4 / (1 + 0.25 * 15), abs=1e-4))
        assert "dev nDCG" in chart_text(screen)
        assert "★ 0.5200@10" in chart_text(screen)
        assert "★" in static(screen, "#train-evals")

        await pilot.press("up", "o")  # the highlighted run drawn over the selected one
        await settle(pilot, 1)
        assert chart.overlay is not None
        assert chart.overlay.run_id == second
        text = chart_text(screen)
        assert "•" in text
        assert f"run {first}" in text
        assert f"run {second}" in text
        assert f"lr {first}" in text
        assert f"watched {second}" in text
        assert table_rows(screen)[second][0] == "•"
        await pilot.press("o")  # again on the overlaid run: cleared
        await pilot.pause(0.2)
        assert chart.overlay is None
        assert "•" not in chart_text(screen)


# --- 3: following runs started elsewhere --------------------------------------------------------------------


async def test_a_run_started_elsewhere_appears_and_is_followed_within_a_second(bare: Project) -> None:
    old = stored_run(bare)
    app = EmbtuneApp(bare.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        assert screen.run_id == old
        new = stored_run(bare, status="running", logged=3, steps=20)  # e.g. `embtune train` in another shell
        await settle(pilot, 2)  # two poll ticks
        assert new in table_rows(screen)
        assert screen.run_id == new
        assert "running" in label(screen, "#train-title")
        store.flush(
            bare.db,
            new,
            [("loss", "train", 4, 0.5)],
            [("progress", {"step": 4, "max_steps": 20, "steps_per_s": 2.0, "eta_s": 8.0, "elapsed_s": 2.0})],
        )
        await settle(pilot, 2)
        assert screen.query_one(TrainChart).points("loss")[-1] == (4, 0.5)
        status = label(screen, "#train-status")
        assert "step 4/20" in status
        assert "2.00 steps/s" in status
        assert table_rows(screen)[new][3] == "4/20"
        log = [str(line.text) for line in screen.query_one("#train-log", RichLog).lines]
        assert len(log) == len(set(log))  # each event once, though two reads overlapped


async def test_idle_polling_reads_nothing_but_the_activity_token(bare: Project) -> None:
    stored_run(bare)
    app = EmbtuneApp(bare.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        token = screen.token
        table = screen.query_one(RunsTable)
        shown = table.shown
        await settle(pilot, 3)
        assert screen.token == token
        assert table.shown is shown


# --- 4: cancel -----------------------------------------------------------------------------------------------


async def test_cancel_asks_then_says_cancelling_at_once(bare: Project) -> None:
    run_id = stored_run(bare, status="running", logged=3)
    app = EmbtuneApp(bare.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        await pilot.press("c")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot, 1)
        assert not store.cancel_requested(bare.db, run_id)
        await pilot.press("c")
        await pilot.pause(0.2)
        await pilot.press("y")
        await pilot.pause(0.05)  # no poll yet
        assert "cancelling…" in label(screen, "#train-title")
        assert "cancelling…" in label(screen, "#train-status")
        await settle(pilot, 1)
        assert store.cancel_requested(bare.db, run_id)
        assert table_rows(screen)[run_id][2] == "cancelling…"
        assert screen.check_action("cancel", ()) is None  # asked once
        store.end_run(bare.db, run_id, "cancelled", {"steps": 3})  # the worker honours it
        await settle(pilot, 2)
        assert "cancelled" in label(screen, "#train-title")
        assert "cancelling" not in label(screen, "#train-title")


async def test_a_cancel_from_another_shell_shows_as_cancelling(bare: Project) -> None:
    run_id = stored_run(bare, status="running", logged=3)
    app = EmbtuneApp(bare.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        engine.jobs.launcher.cancel(bare, run_id)  # `embtune cancel`
        await settle(pilot, 2)
        assert "cancelling…" in label(screen, "#train-title")


# --- 5: resume only from a checkpoint, and Home says the same -----------------------------------------------


async def test_resume_is_offered_only_for_a_run_with_a_checkpoint(bare: Project, launched: list[int]) -> None:
    with_checkpoint = stored_run(bare, status="cancelled", logged=10, checkpoint=10)
    without = stored_run(bare, status="cancelled", logged=2)
    assert training_stage(pipeline_state(bare).train).hint == (
        "it stopped before its first checkpoint, so there is nothing to resume from: press t, then s, to start a "
        "new run"
    )
    app = EmbtuneApp(bare.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        assert screen.run_id == without
        assert screen.check_action("resume", ()) is None
        assert "cannot be resumed (it stopped before its first checkpoint" in screen.query_one(Notice).text
        await pilot.press("r")
        await settle(pilot, 1)
        assert launched == []
        await pilot.press("down", "enter")
        await settle(pilot, 1)
        assert screen.run_id == with_checkpoint
        assert screen.check_action("resume", ()) is True
        assert "Press r to resume it" in screen.query_one(Notice).text
        await pilot.press("r")
        await settle(pilot, 3)
        assert len(launched) == 1
        child = store.train_run(bare.db, launched[0])
        assert child["parent_id"] == with_checkpoint
        assert screen.run_id == launched[0]  # the child is followed


def test_the_resume_rule_agrees_with_resume_training(bare: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """view.resume_blocker (the screen's r and Home's hint) is None exactly where resume_training works."""
    cases = [
        stored_run(bare, status="finished", checkpoint=5),
        stored_run(bare, status="cancelled", logged=2),
        stored_run(bare, status="failed", logged=7, checkpoint=5),
        stored_run(bare, status="cancelled", logged=7, checkpoint=5),
    ]
    gone = stored_run(bare, status="cancelled", logged=7, checkpoint=5)
    (bare.root / store.train_run(bare.db, gone)["checkpoint_path"]).rmdir()  # the folder was deleted
    for run_id in [*cases, gone]:
        blocker = view.resume_blocker(bare, store.train_run(bare.db, run_id))
        try:
            child = resume_training(bare, run_id, launch=False)
        except TrainingError:
            assert blocker is not None, run_id
        else:
            assert blocker is None, (run_id, blocker)
            store.end_run(bare.db, child, "failed", {})  # one run at a time: free the project for the next case
    assert view.resume_blocker(bare, store.train_run(bare.db, cases[3])) is None  # its child failed: resumable
    home = training_stage(pipeline_state(bare).train)  # the newest: a child that failed before any checkpoint
    assert "press t, then r" not in home.hint


async def test_a_dead_worker_shows_as_interrupted(bare: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = stored_run(bare, status="running", logged=3)
    monkeypatch.setattr(engine.jobs.launcher, "owner_gone", lambda pid, start, detached: "gone")
    app = EmbtuneApp(bare.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        assert screen.run_id == run_id
        assert "interrupted" in label(screen, "#train-title")
        assert "interrupted" in screen.query_one(Notice).text
        assert screen.check_action("resume", ()) is None  # no checkpoint was saved: nothing to resume from
