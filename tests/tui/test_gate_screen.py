"""The gate screen over a real project and the tiny model: empty state, a run in the background, the stored
result on reopen, drill-down and its modal, keys, errors and cancel."""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Label, ProgressBar, Static
from textual.worker import WorkerFailed

import engine.gate.run
from engine.gate.run import run_gate
from engine.project import open_project
from engine.store import runs
from tests.projects import make_project
from tests.tui.charts import plain
from tui.app import EmbtuneApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.gate.drilldown import short_arm
from tui.screens.gate.query import QueryScreen
from tui.screens.gate.screen import GateScreen
from tui.screens.gate.widgets import QueryTable
from tui.screens.help import HelpScreen
from tui.screens.home import HomeScreen, StagesPanel
from tui.widgets.gate_chart import ArmChart

SIZE = (120, 40)


@pytest.fixture
def fresh_root(tmp_path: Path, tiny_embedder_path: Path) -> Path:
    project = make_project(tmp_path, tiny_embedder_path)
    project.close()
    return project.root


@pytest.fixture(scope="module")
def gated_template(tmp_path_factory: pytest.TempPathFactory, tiny_embedder_path: Path) -> Path:
    """A project whose gate already ran once (built once per module; tests get copies)."""
    project = make_project(tmp_path_factory.mktemp("gated"), tiny_embedder_path)
    run_gate(project)
    project.close()
    return project.root


@pytest.fixture
def gated_root(gated_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(gated_template, tmp_path / "gated"))


def stored(root: Path) -> tuple[int, dict[str, Any], list[dict[str, Any]], list[int]]:
    project = open_project(root)
    try:
        latest = runs.latest_result(project.db, "gate")
        assert latest is not None
        return latest[0], latest[1], runs.query_results(project.db, latest[0]), runs.run_ids(project.db, "gate")
    finally:
        project.close()


def gate_run_ids(root: Path) -> list[int]:
    project = open_project(root)
    try:
        return runs.run_ids(project.db, "gate")
    finally:
        project.close()


def text_of(widget: Static) -> str:
    return str(widget.render())


async def settle(pilot: Pilot[Any]) -> None:
    with contextlib.suppress(WorkerFailed):  # a failed or cancelled gate: the tests check what the screen says
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_gate(pilot: Pilot[Any]) -> GateScreen:
    await settle(pilot)
    await pilot.press("g")
    await settle(pilot)
    assert isinstance(pilot.app.screen, GateScreen)
    return pilot.app.screen


def cell(table: QueryTable, row: str, column: str) -> str:
    return table.get_cell(row, column).plain


# --- the flow -------------------------------------------------------------------------------------------


async def test_empty_state_then_r_runs_the_gate_and_shows_the_stored_result(
    fresh_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured, release = threading.Event(), threading.Event()
    original = engine.gate.run._report

    def held_report(*args: Any, **kwargs: Any) -> Any:
        # hold the gate after its last arm, so the test sees it running (the tiny gate takes under a second)
        measured.set()
        release.wait(timeout=30)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine.gate.run, "_report", held_report)
    app = EmbtuneApp(fresh_root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        stages = "\n".join(text_of(label) for label in app.screen.query_one(StagesPanel).query(Label))
        assert "Gate verdict: not run yet" in stages
        screen = await open_gate(pilot)
        message = text_of(screen.query_one("#gate-message", Static))
        assert "No gate result yet" in message
        assert "Press r to run the gate" in message
        assert not screen.query_one("#gate-tabs").display
        await pilot.press("r")
        assert measured.wait(timeout=30)
        await pilot.pause()
        assert screen.job.running
        assert screen.query_one("#gate-progress").display
        stage = str(screen.query_one("#gate-stage", Label).render())
        assert re.fullmatch(r"arm hybrid 1/1 · stage \d+ · 0:\d\d elapsed", stage), stage
        bar = screen.query_one(ProgressBar)
        assert (bar.progress, bar.total) == (1, 1)
        release.set()
        await settle(pilot)
        assert not screen.job.running
        assert not screen.query_one("#gate-progress").display

        run_id, report, rows, _ = stored(fresh_root)
        assert screen.result is not None
        assert screen.result.run_id == run_id
        banner = text_of(screen.query_one("#verdict", Static))
        assert report["verdict"] in banner
        assert screen.query_one("#verdict").has_class(f"-{report['verdict'].lower().replace('_', '-')}")
        reasons = text_of(screen.query_one("#reasons", Static))
        assert all(reason[:40] in reasons.replace("\n", " ") for reason in report["reasons"])
        # no re-ranker in this project: the screen says so and how to get one
        skipped = text_of(screen.query_one("#skipped", Static))
        assert "rerank" in skipped
        assert "embtune reranker train" in skipped

        chart = screen.query_one(ArmChart)
        lines = [plain(line) for line in chart.lines(chart.content_size.width)]
        names = [arm["name"] for arm in report["arms"]]
        arm_rows = [line for line in lines if line.split(" ")[0] in names]
        assert [row.split(" ")[0] for row in arm_rows] == names
        for arm, row in zip(report["arms"], arm_rows, strict=True):
            assert f"{arm['recall@5']:.3f}" in row

        table = screen.query_one(QueryTable)
        assert table.row_count == 12
        for row in rows:
            expected = "—" if row["first_rank"] is None else str(row["first_rank"])
            assert cell(table, row["query_id"], row["arm"]).split(" ")[0] == expected


async def test_reopening_shows_the_stored_result_without_running(gated_root: Path) -> None:
    run_id, report, _, before = stored(gated_root)
    app = EmbtuneApp(gated_root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        stages = "\n".join(text_of(label) for label in app.screen.query_one(StagesPanel).query(Label))
        assert f"Gate verdict: {report['verdict']} (run {run_id})" in stages
        screen = await open_gate(pilot)
        assert not screen.job.running
        assert report["verdict"] in text_of(screen.query_one("#verdict", Static))
        assert f"run {run_id}" in str(screen.query_one("#gate-title", Label).render())
        assert not screen.query_one("#gate-message").display
        assert screen.query_one(QueryTable).row_count == 12
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
    assert gate_run_ids(gated_root) == before


async def test_enter_opens_the_query_with_its_expected_document(gated_root: Path) -> None:
    app = EmbtuneApp(gated_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_gate(pilot)
        await pilot.press("d")
        table = screen.query_one(QueryTable)
        assert table.has_focus
        first = table.cursor_row_key()
        assert first == "ga-d00"  # sorted by id
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, QueryScreen)
        modal = app.screen
        assert text_of(modal.query_one("#query-text", Static)) == "when do we use subrogation"
        assert "Subrogation" in str(modal.query_one("#doc-title-0", Label).render())
        assert "The subrogation rule." in text_of(modal.query_one("#doc-text-0", Static))
        ranks = text_of(modal.query_one("#query-ranks", Static))
        outcome = next(q for q in screen.result.queries if q.id == "ga-d00")
        for arm, rank in outcome.ranks.items():
            line = next(line for line in ranks.splitlines() if line.split()[0] == arm)
            assert line.split()[1] == ("—" if rank is None else str(rank))
        await pilot.press("escape")
        assert app.screen is screen


async def test_sorting_by_key_and_by_header(gated_root: Path) -> None:
    app = EmbtuneApp(gated_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_gate(pilot)
        await pilot.press("d")
        table = screen.query_one(QueryTable)

        def order() -> list[str]:
            return [str(row.key.value) for row in table.ordered_rows]

        assert order() == sorted(order())
        await pilot.press("S")
        assert order() == sorted(order(), reverse=True)
        await pilot.press("s", "s", "s")  # id → query → expected → base
        assert screen.sort_column == "base"
        outcomes = {q.id: q for q in screen.result.queries}
        ranks = [outcomes[q].ranks["base"] for q in order()]
        found = [r for r in ranks if r is not None]
        assert found == sorted(found)
        assert ranks[: len(found)] == found  # not found (—) last
        table.post_message(table.HeaderSelected(table, table.columns["hybrid"].key, 0, table.columns["hybrid"].label))
        await pilot.pause()
        assert screen.sort_column == "hybrid"
        assert "↓" in str(table.columns["hybrid"].label)
        assert short_arm("chunking:paragraph") in str(table.columns["chunking:paragraph"].label)


async def test_help_lists_the_gate_keys(gated_root: Path) -> None:
    app = EmbtuneApp(gated_root)
    async with app.run_test(size=SIZE) as pilot:
        await open_gate(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(text_of(label) for label in app.screen.query(Label))
        for binding in GateScreen.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.description in text, binding
        assert "Gate" in text


def test_every_gate_binding_has_a_description_a_tooltip_and_an_id() -> None:
    from tui.screens.confirm import ConfirmScreen

    for cls in (GateScreen, QueryScreen, ConfirmScreen, HomeScreen):
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.description, binding
            assert binding.tooltip, binding
            assert binding.id, binding


async def test_a_gate_that_cannot_run_says_why(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path, n_gate=0)
    project.close()
    app = EmbtuneApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_gate(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, GateScreen)
        message = screen.query_one("#gate-message", Static)
        assert message.has_class("-error")
        assert "The gate cannot run: the project has no gate queries" in text_of(message)
        assert not screen.job.running
    assert gate_run_ids(project.root) == []


async def test_cancel_asks_first_and_records_the_run_as_cancelled(
    fresh_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate_started = threading.Event()
    original = engine.gate.run.open_encoder

    def slow_open_encoder(*args: Any, **kwargs: Any) -> Any:
        # hold the gate at its start until the test has cancelled, so the cancel never races the finish
        gate_started.set()
        screen.job.cancel_requested.wait(timeout=30)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine.gate.run, "open_encoder", slow_open_encoder)
    app = EmbtuneApp(fresh_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_gate(pilot)
        await pilot.press("r")
        assert gate_started.wait(timeout=30)
        await pilot.pause()
        assert screen.job.running
        assert screen.query_one("#gate-progress").display
        assert "loading the model" in str(screen.query_one("#gate-stage", Label).render())
        await pilot.press("escape")  # while running, escape asks to cancel instead of leaving
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.screen is screen
        assert screen.job.running
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert app.screen is screen
        assert not screen.job.running
        message = text_of(screen.query_one("#gate-message", Static))
        assert "Gate cancelled" in message
        assert screen.result is None
    project = open_project(fresh_root)
    try:
        (run_id,) = runs.run_ids(project.db, "gate")
        assert runs.get_run(project.db, run_id)["status"] == "cancelled"
        assert runs.latest_result(project.db, "gate") is None
    finally:
        project.close()
