"""The Index screen's plan (#19): `p` measures index types and compressions on the live table in the background,
the panel shows every option with the pick starred and options below min_recall dimmed, the verdict under it; the
stored plan shows again when the screen reopens; the key waits for a live index; a cancelled plan stores nothing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import Label, Static
from textual.widgets._footer import FooterKey

import engine.index.plan
from engine.index.ann import latest_plan
from engine.index.build import build_index, connect
from engine.index.plan import label, plan_view
from engine.project import open_project
from tests.projects import make_project
from tests.tui.test_index_screens import open_index, settle, text_of
from tui.app import EmbtuneApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.index_plan import NO_PLAN, PlanPanel, PlanTable
from tui.widgets.footer import KeyFooter

SIZE = (140, 45)


@pytest.fixture
def root(tmp_path: Path, tiny_embedder_path: Path) -> Path:
    project = make_project(tmp_path, tiny_embedder_path)
    project.close()
    return project.root


@pytest.fixture
def built(root: Path) -> Path:
    project = open_project(root)
    try:
        build_index(project)
    finally:
        project.close()
    return root


def stored_plan(root: Path) -> dict[str, Any] | None:
    project = open_project(root)
    try:
        return latest_plan(project.db)
    finally:
        project.close()


def table_rows(table: PlanTable) -> dict[str, list[Text]]:
    return {str(key.value): table.get_row(key) for key in table.rows}


def footer_actions(screen: Any) -> set[str]:
    return {key.action for key in screen.query_one(KeyFooter).query(FooterKey)}


async def test_plan_key_measures_in_the_background_and_the_table_shows_it_again_on_reopen(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached, release = threading.Event(), threading.Event()
    original = engine.index.plan.plan_index

    def held(*args: Any, **kwargs: Any) -> Any:
        reached.set()  # hold the plan before it measures: 40 rows finish before the key press returns
        release.wait(timeout=30)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine.index.plan, "plan_index", held)
    app = EmbtuneApp(built)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_index(pilot)
        assert text_of(screen.query_one("#plan-title", Label)) == NO_PLAN
        assert not screen.query_one(PlanTable).display
        assert screen.check_action("plan", ()) is True
        assert "plan" in footer_actions(screen)
        await pilot.press("p")
        assert reached.wait(timeout=30)
        await pilot.pause()
        assert screen.plan_job.running
        assert screen.check_action("build", ()) is None  # one job at a time
        assert screen.check_action("cancel_build", ()) is True
        release.set()
        await settle(pilot)
        assert not screen.plan_job.running
        plan = stored_plan(built)
        assert plan is not None
        rows = table_rows(screen.query_one(PlanTable))
        assert list(rows) == [o["name"] for o in plan["options"]]
        assert {"exact", "int8+rescore", "binary+rescore"} <= set(
            rows
        )  # 40 rows: too few for IVF, exact + compressions
        starred = [name for name, cells in rows.items() if cells[0].plain == "★"]
        assert starred == [plan["pick"]]
        for option in plan["options"]:
            cells = rows[option["name"]]
            assert cells[1].plain == label(option["name"])
            assert cells[3].plain == f"{option['recall_at_10']:.3f}"
            below = option["recall_at_10"] < plan["min_recall"]
            assert (cells[1].style == "dim") == below  # options below min_recall are dimmed, the others not
        verdict = text_of(screen.query_one("#plan-verdict", Label))
        assert verdict.startswith(label(plan["pick"]) if plan["pick"] != "exact" else "Only exact search")
        headline = text_of(screen.query_one("#plan-title", Label))
        assert plan["table"] in headline
        assert f"{plan['rows']:,} rows" in headline
        assert "not the live table" not in headline

        await pilot.press("escape")
        await settle(pilot)
        screen = await open_index(pilot)  # a fresh screen: the plan comes back from the stored run
        assert list(table_rows(screen.query_one(PlanTable))) == [o["name"] for o in plan["options"]]
        assert text_of(screen.query_one("#plan-verdict", Label)) == verdict

        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "Plan" in " ".join(str(w.render()) for w in app.screen.query(Static))


async def test_plan_key_waits_for_a_live_index(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_index(pilot)
        assert screen.check_action("plan", ()) is None
        assert "plan" not in footer_actions(screen)  # a key that does nothing now stays out of the footer
        await pilot.press("p")
        await pilot.pause()
        assert not screen.plan_job.running
        assert not screen.query_one(PlanPanel).display  # nothing to measure: the empty-state note says build one
    assert stored_plan(root) is None


async def test_cancelled_plan_stores_nothing(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reached, release = threading.Event(), threading.Event()
    original = engine.index.plan.exact_top_k

    def held(*args: Any, **kwargs: Any) -> Any:
        reached.set()  # hold the plan inside its exact search, so the test sees it running
        release.wait(timeout=30)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine.index.plan, "exact_top_k", held)
    app = EmbtuneApp(built)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_index(pilot)
        await pilot.press("p")
        assert reached.wait(timeout=30)
        await pilot.pause()
        assert "exact search" in text_of(screen.query_one("#index-stage", Label))
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        release.set()
        await settle(pilot)
        assert not screen.plan_job.running
        assert "Plan cancelled" in text_of(screen.query_one("#index-message", Static))
        assert text_of(screen.query_one("#plan-title", Label)) == NO_PLAN
    project = open_project(built)
    try:
        assert plan_view(project) is None
        assert not any("plan_scratch" in t for t in connect(project).list_tables().tables)
    finally:
        project.close()
