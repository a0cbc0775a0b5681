"""The Index and Search screens over a real project and the tiny models: build in the background with progress and
cancel, make live / rollback with confirmation, help from bindings; search hits and base vs tuned side by side."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Label, Static
from textual.worker import WorkerFailed

import engine.index.build
from engine.index.build import build_index
from engine.project import open_project
from engine.store import indexes
from tests.projects import make_project, register_model, set_index_config
from tui.app import EmbtuneApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.index import BuildDialog, IndexScreen, IndexTable
from tui.screens.search import HitsTable, SearchScreen, moved_text
from tui.widgets.job_progress import rate_text

SIZE = (130, 40)


@pytest.fixture
def root(tmp_path: Path, tiny_embedder_path: Path) -> Path:
    project = make_project(tmp_path, tiny_embedder_path)
    project.close()
    return project.root


def live_table(root: Path) -> str | None:
    project = open_project(root)
    try:
        row = indexes.live(project.db)
        return row["table_name"] if row else None
    finally:
        project.close()


async def settle(pilot: Pilot[Any]) -> None:
    with contextlib.suppress(WorkerFailed):
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def text_of(widget: Static | Label) -> str:
    return str(widget.render())


async def open_index(pilot: Pilot[Any]) -> IndexScreen:
    await settle(pilot)
    await pilot.press("x")
    await settle(pilot)
    assert isinstance(pilot.app.screen, IndexScreen)
    return pilot.app.screen


def test_rate_and_moved_texts() -> None:
    assert rate_text(0, 100, 0.0) == "0/100"
    assert rate_text(50, 100, 10.0) == "50/100 · 5.0/s · ETA 0:10"
    assert [moved_text(m, True) for m in (3, -2, 0, None)] == ["▲3", "▼2", "=", "new"]
    assert moved_text(3, False) == ""


async def test_build_in_background_with_progress_then_cancel_keeps_nothing_live(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached, release = threading.Event(), threading.Event()
    original = engine.index.build.copy_cached

    def held(*args: Any, **kwargs: Any) -> Any:
        reached.set()  # hold the build before its first batch, so the test sees it running
        release.wait(timeout=30)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine.index.build, "copy_cached", held)
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_index(pilot)
        assert "No index yet" in text_of(screen.query_one("#index-message", Static))
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, BuildDialog)
        assert app.screen.query_one(Input).value == "base"
        await pilot.press("enter")
        assert reached.wait(timeout=30)
        await pilot.pause()
        assert screen.job.running
        assert screen.query_one("#index-progress").display
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        release.set()
        await settle(pilot)
        assert not screen.job.running
        assert "Build cancelled" in text_of(screen.query_one("#index-message", Static))
        assert [r["status"] for r in screen.tables] == ["incomplete"]
    assert live_table(root) is None


async def test_follows_a_build_started_elsewhere_until_it_is_live(root: Path) -> None:
    """A build by another process (here a thread with its own connection, as `embtune index` detached would be):
    the screen shows its progress from the store and the new live table when it completes."""

    set_index_config(open_project(root), batch_size=8).close()
    first_batch, release = threading.Event(), threading.Event()

    def held(stage: str, done: int, total: int) -> None:
        if stage == "embed" and done == 8:
            first_batch.set()
            release.wait(timeout=30)

    def build_elsewhere() -> None:
        project = open_project(root)
        try:
            build_index(project, progress=held)
        finally:
            project.close()

    builder = threading.Thread(target=build_elsewhere)
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_index(pilot)
        builder.start()
        assert first_batch.wait(timeout=60)
        await pilot.pause(2.5)  # one follow tick
        await settle(pilot)
        assert not screen.job.running  # not this screen's build
        assert [r["status"] for r in screen.tables] == ["building"]
        assert "building 8/40" in str(screen.query_one(IndexTable).get_row_at(0))
        release.set()
        builder.join(timeout=60)
        await pilot.pause(2.5)
        await settle(pilot)
        assert [(r["status"], r["live"]) for r in screen.tables] == [("ready", True)]
        assert "live:" in text_of(screen.query_one("#index-title", Label))


async def test_build_then_make_live_and_rollback_with_confirmation(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_index(pilot)
        for _ in range(2):
            await pilot.press("b")
            await settle(pilot)
            await pilot.press("enter")
            await settle(pilot)
        assert "it is live now" in text_of(screen.query_one("#index-message", Static))
        newest, oldest = screen.tables[0]["table"], screen.tables[1]["table"]
        assert [r["live"] for r in screen.tables] == [True, False]
        assert live_table(root) == newest
        table = screen.query_one(IndexTable)
        table.focus()
        await pilot.press("down")
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # No leaves things as they are
        await settle(pilot)
        assert live_table(root) == newest
        await pilot.press("l", "y")
        await settle(pilot)
        assert live_table(root) == oldest
        assert [r["live"] for r in screen.tables] == [False, True]
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        help_text = " ".join(str(w.render()) for w in app.screen.query(Static))
        for key in ("Build", "Cancel", "Make live", "Rollback"):
            assert key in help_text


async def test_rollback_key_switches_back(root: Path) -> None:
    project = open_project(root)
    first = build_index(project)
    second = build_index(project)
    project.close()
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_index(pilot)
        assert "live: " + second.table in text_of(screen.query_one("#index-title", Label))
        await pilot.press("u", "y")
        await settle(pilot)
        assert live_table(root) == first.table
        assert "live: " + first.table in text_of(screen.query_one("#index-title", Label))


async def test_search_shows_hits_then_base_vs_tuned_side_by_side(root: Path, tuned_model: Path) -> None:
    project = open_project(root)
    build_index(project)
    run_id = register_model(project, tuned_model)
    build_index(project, str(run_id))
    project.close()
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        await pilot.press(*"when do we use subrogation", "enter")
        await settle(pilot)
        live = screen.query_one("#search-live", HitsTable)
        assert live.row_count == 10
        assert f"run {run_id}" in str(live.border_title)
        assert not screen.query_one("#search-base").display
        await pilot.press("ctrl+t")
        await settle(pilot)
        base = screen.query_one("#search-base", HitsTable)
        assert base.display
        assert base.row_count == 10
        assert "base" in str(base.border_title)
        moves = [str(live.get_row_at(i)[1]) for i in range(live.row_count)]
        assert all(m == "new" or m == "=" or m[0] in "▲▼" for m in moves)
        assert screen.results is not None
        assert screen.results.compare is not None


async def test_search_without_an_index_says_how_to_build_one(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await settle(pilot)
        await pilot.press(*"premium", "enter")
        await settle(pilot)
        message = text_of(app.screen.query_one("#search-message", Static))
        assert "no live index" in message
        assert "embtune index" in message


def test_bindings_have_descriptions_tooltips_and_ids() -> None:
    from textual.binding import Binding

    for cls in (IndexScreen, BuildDialog, SearchScreen):
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding)
            assert all((binding.description, binding.tooltip, binding.id)), binding
