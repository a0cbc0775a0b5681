"""Messages that describe a state are replaced or cleared when that state changes (#18 item 8): the Index banner
after a rollback or a later switch, a mining cancel that came too late, the import dialog's old error, an undo's
account of what it restored."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Select, TextArea
from textual.worker import WorkerFailed

import tui.screens.data
from engine import overview
from engine.data.mining import mine_negatives
from engine.index.build import build_index, make_live
from engine.project import open_project
from tests.mining_data import OPEN_WINDOW, with_mining
from tests.projects import make_project, register_model
from tests.review_data import review_project
from tui.app import EmbtuneApp
from tui.screens.data import DataScreen
from tui.screens.import_data import ImportScreen
from tui.screens.index import IndexScreen
from tui.screens.review.dialogs import EditScreen
from tui.screens.review.screen import ReviewScreen
from tui.widgets.notice import Notice

SIZE = (120, 36)


async def settle(pilot: Pilot[Any]) -> None:
    with contextlib.suppress(WorkerFailed):
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def notice(pilot: Pilot[Any]) -> str:
    return pilot.app.screen.query_one(Notice).text


# --- Index: the banner follows the live table --------------------------------------------------------------


@pytest.fixture
def index_root(tmp_path: Path, tiny_embedder_path: Path, tuned_model: Path) -> tuple[Path, str]:
    """A project whose only table (the tuned model's) is live; the TUI then builds base."""
    project = make_project(tmp_path, tiny_embedder_path)
    run = register_model(project, tuned_model)
    tuned = build_index(project, str(run), None, lambda: False).table
    project.close()
    return project.root, tuned


async def test_index_banner_is_replaced_after_rollback_and_cleared_after_a_switch_elsewhere(
    index_root: tuple[Path, str],
) -> None:
    root, tuned = index_root
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(pilot.app.screen, IndexScreen)
        await pilot.press("b")
        await settle(pilot)
        pilot.app.screen.query_one("#build-model").value = "base"
        await pilot.press("enter")
        await settle(pilot)
        built = notice(pilot)
        assert built.startswith("Built ")
        assert "it is live now" in built
        await pilot.press("u", "y")  # roll back: the tuned table is live again
        await settle(pilot)
        assert notice(pilot).startswith(f"Live index: {tuned}")
        assert "Built" not in notice(pilot)
        await pilot.press("u", "y")  # the tuned table was the first live one: nothing to roll back to
        await settle(pilot)
        assert notice(pilot).startswith("Not switched:")
        assert "nothing to roll back to" in notice(pilot)
        screen = pilot.app.screen
        base_id = next(r["id"] for r in screen.tables if r["model"] == "base")
        project = open_project(root)
        make_live(project, base_id)  # another window (or `embtune index use`) switches
        project.close()
        await pilot.press("r")
        await settle(pilot)
        assert notice(pilot) == ""  # "Not switched" described a state that is gone
        assert not screen.query_one(Notice).display


# --- mining: a cancel either keeps nothing or says what was kept -------------------------------------------


@pytest.fixture
def mining_root(tmp_path: Path, tiny_embedder_path: Path) -> Path:
    project = with_mining(make_project(tmp_path, tiny_embedder_path), **OPEN_WINDOW)
    project.close()
    return project.root


def negatives(root: Path) -> int:
    project = open_project(root)
    try:
        return int(overview.counts(project)["negatives"])
    finally:
        project.close()


@pytest.mark.parametrize("cancel_at", [0, 1])  # the store step's start (in time) and its end (too late)
async def test_mining_cancelled_at_the_store_step_keeps_nothing_or_says_what_it_kept(
    mining_root: Path, monkeypatch: pytest.MonkeyPatch, cancel_at: int
) -> None:
    app = EmbtuneApp(mining_root)

    def mine(project: Any, progress: Any, cancelled: Any) -> dict[str, Any]:
        def reported(stage: str, done: int, total: int) -> None:
            if stage == "store" and done == cancel_at:  # the user's confirmed cancel lands right here
                screen = app.screen
                assert isinstance(screen, DataScreen)
                screen.job.cancel_requested.set()
            progress(stage, done, total)

        return mine_negatives(project, reported, cancelled)

    monkeypatch.setattr(tui.screens.data, "mine", mine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        toasts = [str(n.message) for n in app._notifications]
        kept = negatives(mining_root)
        if cancel_at == 0:
            assert kept == 0
            assert notice(pilot).startswith("Mining cancelled: nothing was stored")
            assert toasts == []
        else:
            assert kept > 0
            assert f"{kept:,} negatives added" in notice(pilot)
            assert "they are kept" in notice(pilot)
            assert not any("negatives added" in toast for toast in toasts)  # no "finished" toast beside it
    project = open_project(mining_root)
    status = project.db.conn.execute("SELECT status FROM runs WHERE kind = 'mine'").fetchone()[0]
    project.close()
    assert status == ("cancelled" if cancel_at == 0 else "finished")


# --- import dialog: the old error goes with the kind it was about -------------------------------------------


async def test_import_dialog_clears_its_error_when_the_kind_changes(mining_root: Path, tmp_path: Path) -> None:
    async with EmbtuneApp(mining_root).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        dialog = pilot.app.screen
        assert isinstance(dialog, ImportScreen)
        await pilot.press(*str(tmp_path / "missing"))
        await pilot.press("enter")
        await settle(pilot)
        result = dialog.query_one("#import-result")
        assert result.has_class("-error")
        assert str(result.render()).strip()
        dialog.query_one("#kind", Select).value = "pairs"
        await pilot.pause()
        assert str(result.render()).strip() == ""
        assert not result.has_class("-error")


# --- review: an undo says what it restored ------------------------------------------------------------------


async def test_undoing_an_edit_says_the_passage_is_restored_not_a_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBTUNE_REVIEWER", "tester")
    project = review_project(tmp_path, n_gate=0)
    project.close()
    app = EmbtuneApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        await pilot.press("a")  # accept the first pair, then edit the second
        await settle(pilot)
        await pilot.press("e")
        assert isinstance(app.screen, EditScreen)
        app.screen.query_one(TextArea).text = "A shorter passage about subrogation."
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        edit_undo = [str(n.message) for n in app._notifications][-1]
        await pilot.press("u")
        await settle(pilot)
        accept_undo = [str(n.message) for n in app._notifications][-1]
    assert "passage edit removed" in edit_undo
    assert "unlabeled" not in edit_undo
    assert "label back to unlabeled" in accept_undo
