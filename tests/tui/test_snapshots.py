"""Snapshots of every screen but Train and Evaluate (their own files) at 80x24 and 140x45, in one fixed state, so
a layout regression fails the suite (#18).

The state is a real project built by the test helpers (BEIR import, two mined negatives written as a miner
would), opened from its parent folder so paths read `project`, with every stored time set to one instant and
Home's "as of" clock frozen: the pictures depend on the layout only. Review a changed picture with
`pytest --snapshot-report` before updating it with `--snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

import tui.screens.home
from engine.store.db import write
from tests.review_data import add_negatives, review_project
from tui.app import EmbtuneApp, QuitScreen
from tui.screens.confirm import ConfirmScreen

SIZES = [(80, 24), (140, 45)]
INSTANT = "2026-11-30T09:00:00.000Z"


class FrozenClock(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> FrozenClock:  # type: ignore[override]
        return cls(2026, 11, 30, 9, 0, 0)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EMBTUNE_REVIEWER", "tester")
    monkeypatch.chdir(tmp_path)  # the header shows the project's path relative to here: `project`
    monkeypatch.setattr(tui.screens.home, "datetime", FrozenClock)
    project = review_project(tmp_path)
    add_negatives(project, [0.3, None])
    with write(project.db) as db:  # tests may write SQL: one instant for every stored time
        db.execute("UPDATE imports SET created_at = ?", [INSTANT])
    project.close()
    return project.root


async def settled(pilot: Pilot[Any]) -> None:
    for _ in range(2):  # what the loads brought is mounted, laid out and drawn (a table's header widths too)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.3)
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False  # a blinking cursor is half the time invisible
    for table in pilot.app.screen.query(DataTable):
        table.refresh(layout=True)  # a table's header can be drawn before its columns took their widths
    await pilot.pause(0.3)


def keys(*pressed: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        for key in pressed:
            await pilot.press(key)
            await settled(pilot)
        await pilot.pause(0.5)  # the footer recomposes after the refresh that follows a focus change

    return run


def dialog(make: Callable[[], Any]) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.app.push_screen(make())
        await settled(pilot)
        await pilot.pause(0.5)

    return run


SCREENS: dict[str, Callable[[Pilot[Any]], Awaitable[None]]] = {
    "home": keys(),
    "home_scrolled": keys("end"),
    "help": keys("question_mark"),
    "import": keys("i"),
    "gate_empty": keys("g"),
    "data": keys("m"),
    "review_pairs": keys("v"),
    "review_negatives": keys("v", "tab"),
    "index_empty": keys("x"),
    "search": keys("slash"),
    "confirm": dialog(
        lambda: ConfirmScreen(
            "Make chunks_1d612e317fc3_11 (run 11) live?",
            "Search uses it from now on; the current table stays for rollback.",
        )
    ),
    "quit_while_a_job_runs": dialog(lambda: QuitScreen(["gate"])),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", SCREENS)
def test_screen(snap_compare: Any, root: Path, screen: str, size: tuple[int, int]) -> None:
    assert snap_compare(EmbtuneApp(root), terminal_size=size, run_before=SCREENS[screen])
