"""Export in the TUI (#18 item 10): from the Index screen (key and palette), a dialog with the destination, the
model card before anything is written, and the result; the folder written is the CLI's export."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static
from textual.worker import WorkerFailed

from tests.projects import make_project, register_model
from tui.app import EmbtuneApp
from tui.commands import palette_commands
from tui.screens.export import ExportDialog
from tui.screens.index import IndexScreen


async def settle(pilot: Pilot[Any]) -> None:
    with contextlib.suppress(WorkerFailed):
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.fixture
def root(tmp_path: Path, tiny_embedder_path: Path, tuned_model: Path) -> Path:
    project = make_project(tmp_path, tiny_embedder_path)
    register_model(project, tuned_model)
    project.close()
    return project.root


async def test_export_from_the_index_screen_previews_the_card_then_writes_the_folder(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=(100, 36)) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, IndexScreen)
        assert "Export" in [command.title for command in palette_commands(app.screen)]
        await pilot.press("e")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        model = dialog.query_one("#export-model", Input)
        model.value = "1"  # the registered run
        model.focus()
        await pilot.press("enter")
        await settle(pilot)
        card = str(dialog.query_one("#export-card-text", Static).render())
        assert card.startswith("---")
        assert "test-project" in card
        dest = Path(dialog.query_one("#export-dest", Input).value)
        assert dest == root / "exports" / "run-1"
        assert not dest.exists()  # the preview wrote nothing
        await pilot.press("ctrl+s")
        await settle(pilot)
        result = str(dialog.query_one("#export-result", Static).render())
        assert result.startswith("Exported ")
        assert str(dest) in result
        assert (dest / "README.md").read_text().startswith("---")
        assert (dest / "config_sentence_transformers.json").exists()
        await pilot.press("ctrl+s")  # again: the folder is no longer empty, so it says so and overwrites nothing
        await settle(pilot)
        assert "not empty" in str(dialog.query_one("#export-result", Static).render())
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, IndexScreen)
