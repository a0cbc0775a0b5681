"""Layouts from 80x24 up (#18 item 9): Home scrolls to what lies below the fold, every footer keeps `?` help and
`q` quit in view, the gate chart keeps both threshold labels on a narrow track, and the gate table's text column
wraps instead of being cut."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.worker import WorkerFailed

from engine.gate.run import run_gate
from tests.projects import make_project
from tests.review_data import review_project
from tests.tui.charts import plain
from tests.tui.screen_text import screen_lines, screen_text
from tui.app import EmbtuneApp
from tui.screens.gate.screen import GateScreen
from tui.widgets.gate_chart import FINETUNE, STOP, ChartArm, chart

SMALL = (80, 24)


async def settle(pilot: Pilot[Any]) -> None:
    with contextlib.suppress(WorkerFailed):
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = review_project(tmp_path)
    project.close()
    return project.root


async def test_home_scrolls_to_the_live_index_and_recent_imports_at_80x24(root: Path) -> None:
    async with EmbtuneApp(root).run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.pause(0.2)  # the readiness rows mount after the counts arrive
        assert "Recent imports" not in screen_text(pilot.app)  # below the fold
        await pilot.press("end")
        await pilot.pause(0.2)
        text = screen_text(pilot.app)
        assert "Live index" in text
        assert "Recent imports" in text
        assert "beir" in text  # the import's row, not just the title


@pytest.mark.parametrize("keys", ["", "g", "m", "x", "v", "slash"])
async def test_every_footer_keeps_help_and_quit_at_80_columns(root: Path, keys: str) -> None:
    async with EmbtuneApp(root).run_test(size=SMALL) as pilot:
        await settle(pilot)
        for key in keys.split():
            await pilot.press(key)
            await settle(pilot)
        await pilot.pause(0.2)  # the footer recomposes after the refresh that follows a focus change
        footer = screen_lines(pilot.app)[-1]
        typing = keys == "slash"  # Search opens in its query field: there ? and q are letters
        assert ("f1 Help" if typing else "? Help") in footer
        assert ("^q Quit" if typing else "q Quit") in footer
        if not keys:  # Home: every step of the path fits
            for key in ("i Import", "g Gate", "v Review", "m Mine", "t Train", "e Eval", "x Index", "/ Search"):
                assert key in footer


def test_gate_chart_keeps_both_threshold_labels_on_a_narrow_track() -> None:
    arms = [ChartArm("chunking:paragraph", 0.83, 0.6, 1.0, 0, 0), ChartArm("hybrid", 1.0, 1.0, 1.0, 2, 0)]
    thresholds = {FINETUNE: 0.70, STOP: 0.80}
    for width in (76, 90):
        axis = [plain(line) for line in chart(arms, width, thresholds, 5)[len(arms) + 1 :]]
        text = "\n".join(axis)
        assert "0.70" in text
        assert "0.80" in text
        assert all(len(line) <= width for line in axis)
        # each figure stands under its marker's column
        row = plain(chart(arms, width, thresholds, 5)[1])
        for figure, mark in (("0.70", "┊"), ("0.80", "│")):
            line = next(line for line in axis if figure in line)
            assert row[line.index(figure)] in (mark, "┼", "█", "─", "├", "┤")


@pytest.fixture(scope="module")
def gate_root(tmp_path_factory: pytest.TempPathFactory, tiny_embedder_path: Path) -> Path:
    project = make_project(tmp_path_factory.mktemp("layout"), tiny_embedder_path)
    run_gate(project, None)
    project.close()
    return project.root


async def test_gate_screen_at_80x24_shows_both_thresholds_and_at_140_the_whole_descriptions(gate_root: Path) -> None:
    async with EmbtuneApp(gate_root).run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, GateScreen)
        assert screen.result is not None
        chart_text = screen_text(pilot.app)
        assert "0.70" in chart_text.split("fine-tune 0.70")[-1]  # under the track, not only in the legend
        assert "0.80" in chart_text.split("stop 0.80")[-1]
    async with EmbtuneApp(gate_root).run_test(size=(140, 45)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        screen = pilot.app.screen
        table = screen.query_one("#gate-metrics")
        table.focus()
        for arm in screen.result.arms:
            table.move_cursor(row=table.get_row_index(arm["name"]))
            await pilot.pause()
            assert squeezed(arm["description"]) in text_column(pilot.app, "what it measures"), arm["description"]


def squeezed(text: str) -> str:
    return "".join(text.split())


def text_column(app: Any, header: str) -> str:
    """A table column's text from its header's offset on every row, joined: what wrapping spread over lines."""
    lines = screen_lines(app)
    at = next(line for line in lines if header in line).index(header)
    return squeezed("".join(line[at:] for line in lines)).translate({ord(c): None for c in "▁▂▃▄▅▆▇█▕▏▎"})


# --- keys that do nothing in the current state are hidden or disabled (#18, smaller items) --------------------


async def test_gate_keys_that_need_a_result_are_disabled_and_off_the_footer_until_there_is_one(
    root: Path, gate_root: Path
) -> None:
    result_keys = {"show_arms", "show_queries", "sort"}
    for project, expected in ((root, set()), (gate_root, result_keys)):
        async with EmbtuneApp(project).run_test(size=SMALL) as pilot:
            await settle(pilot)
            await pilot.press("g")
            await settle(pilot)
            await pilot.pause(0.2)
            enabled = {b.binding.action for b in pilot.app.screen.active_bindings.values() if b.enabled}
            assert enabled & result_keys == expected
            footer = screen_lines(pilot.app)[-1]
            assert ("a Arms" in footer) == bool(expected)


async def test_review_edit_keys_are_disabled_on_the_negatives_tab(root: Path) -> None:
    from engine.project import open_project
    from tests.review_data import add_negatives

    project = open_project(root)
    add_negatives(project, [0.3])
    project.close()
    async with EmbtuneApp(root).run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        screen = pilot.app.screen
        assert screen.check_action("edit", ()) is True
        await pilot.press("tab")
        await settle(pilot)
        assert screen.check_action("edit", ()) is None
        assert screen.check_action("edit_external", ()) is None
        enabled = {b.binding.action: b.enabled for b in screen.active_bindings.values()}
        assert enabled.get("edit") is False
