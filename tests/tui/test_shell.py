"""The app shell across screens: one quit key everywhere (q, or ctrl+q while typing), a confirmation only when a
job of this window would die with it, and help that says so."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input
from textual.worker import WorkerFailed

import tui.screens.data
from engine.ingest import importing
from engine.project import init_project
from tests.projects import write_beir
from tests.tui.screen_text import screen_text, words_shown
from tui.app import EmbtuneApp, QuitScreen
from tui.keys import key_groups
from tui.screens.data import DataScreen
from tui.screens.help import help_line

SIZE = (100, 30)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = init_project(tmp_path / "project")
    importing.import_beir(project, write_beir(tmp_path / "beir", n_docs=6, n_gate=3))
    project.close()
    return project.root


async def settle(pilot: Pilot[Any]) -> None:
    with contextlib.suppress(WorkerFailed):
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("keys", ["", "g", "m", "x", "v", "question_mark", "m question_mark"])
async def test_q_quits_from_every_screen(root: Path, keys: str) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key in keys.split():
            await pilot.press(key)
            await settle(pilot)
        opened = type(app.screen).__name__
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running, f"q did not quit from {opened}"
        assert app.return_code == 0


async def test_q_types_in_a_text_field_and_ctrl_q_quits(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")  # Search opens with its query field focused
        await settle(pilot)
        await pilot.press("q")
        assert app.is_running
        assert app.screen.query_one("#search-input", Input).value == "q"
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running


async def test_help_names_both_quit_keys_on_every_screen(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key in ("g", "m", "x"):
            await pilot.press(key)
            await settle(pilot)
            lines = [help_line(c) for group in key_groups(app.screen) for c in group.commands]
            quit_line = next(line for line in lines if " Quit" in line)
            assert set(quit_line.partition(" Quit")[0].strip().split(", ")) == {"q", "^q"}, quit_line
            assert "ctrl+q while typing" in quit_line
            await pilot.press("escape")
            await settle(pilot)


async def test_quit_while_a_job_runs_in_the_window_asks_first(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started, stopped = threading.Event(), threading.Event()

    def long_mining(project: Any, progress: Any, cancelled: Any) -> dict[str, Any]:
        started.set()
        while not cancelled():  # a job that runs until its cancel flag turns
            threading.Event().wait(0.02)
        stopped.set()
        raise InterruptedError("mining cancelled")

    monkeypatch.setattr(tui.screens.data, "mine", long_mining)
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("r")
        assert started.wait(10)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        assert "stop the running mining" in str(app.screen.question)
        await pilot.press("escape")  # stay: the job goes on
        await pilot.pause()
        assert isinstance(app.screen, DataScreen)
        assert app.screen.job.running
        await pilot.press("q", "q")  # q asks, q again confirms
        await pilot.pause()
        assert not app.is_running
    assert stopped.wait(10)  # quitting cancelled the worker; it stopped at its next check


# --- dialogs wrap their text --------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 140])
async def test_dialogs_wrap_their_text_instead_of_cutting_it(root: Path, width: int) -> None:
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.data import JOB as MINING
    from tui.screens.index import BuildDialog

    question = "Make chunks_1d612e317fc3_11 (run 11 · /home/someone/models/claims-minilm-tuned) live?"
    detail = "Search uses it from now on; the current table stays for rollback, and u switches back to it."
    app = EmbtuneApp(root)
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(pilot)
        for dialog, texts in (
            (ConfirmScreen(question, detail), (question, detail)),
            (ConfirmScreen(MINING.question, MINING.detail), (MINING.question, MINING.detail)),
            (QuitScreen(["gate"]), ("Quit embtune and stop the running gate?",)),
            (BuildDialog("base"), ("base, a training run (7 or run-7) or a model folder",)),
        ):
            await app.push_screen(dialog)
            await pilot.pause()
            for text in texts:
                assert words_shown(text, app), f"{text!r} is cut in {type(dialog).__name__}:\n{screen_text(app)}"
            app.pop_screen()
            await pilot.pause()
