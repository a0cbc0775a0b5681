"""The Evaluate screen over a real project, the tiny model and a tuned copy: empty state, a run in the background,
the stored result on reopen, marks, baseline, deltas, the per-query diff and its modal, leakage, cancel, keys."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Input, Label, Static, TabbedContent
from textual.worker import WorkerFailed

import engine.evaluate.run
from engine.evaluate.run import run_eval
from engine.project import open_project
from engine.store import runs
from tests.evalmodels import N_TEST, make_eval_project, register_run, train_pairs, train_tiny
from tui.app import EmbtuneApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.evaluate.query import EvalQueryScreen
from tui.screens.evaluate.screen import EvaluateScreen
from tui.screens.evaluate.widgets import DiffTable, ModelsTable
from tui.screens.help import HelpScreen
from tui.screens.home import HomeScreen

SIZE = (140, 40)


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory: pytest.TempPathFactory, tiny_embedder_path: Path) -> Path:
    """A project with one finished training run (its model in models/run-1) and no evaluation yet."""
    tmp = tmp_path_factory.mktemp("evalscreen")
    project = make_eval_project(tmp, tiny_embedder_path)
    register_run(project, train_tiny(tiny_embedder_path, tmp / "tuned", train_pairs(project)))
    project.close()
    return project.root


@pytest.fixture(scope="module")
def evaluated_template(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(shutil.copytree(trained_template, tmp_path_factory.mktemp("evaluated") / "project"))
    project = open_project(root)
    run_eval(project, ["base", "1"])
    project.close()
    return root


@pytest.fixture
def trained_root(trained_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_template, tmp_path / "trained"))


@pytest.fixture
def evaluated_root(evaluated_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(evaluated_template, tmp_path / "evaluated"))


def latest(root: Path) -> tuple[int, dict[str, Any], list[int]]:
    project = open_project(root)
    try:
        found = runs.latest_result(project.db, "eval")
        assert found is not None
        return found[0], found[1], runs.run_ids(project.db, "eval")
    finally:
        project.close()


def eval_ids(root: Path) -> list[int]:
    project = open_project(root)
    try:
        return runs.run_ids(project.db, "eval")
    finally:
        project.close()


def text_of(widget: Static | Label) -> str:
    return str(widget.render())


async def settle(pilot: Pilot[Any]) -> None:
    with contextlib.suppress(WorkerFailed):
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_eval(pilot: Pilot[Any]) -> EvaluateScreen:
    await settle(pilot)
    await pilot.press("e")
    await settle(pilot)
    assert isinstance(pilot.app.screen, EvaluateScreen)
    return pilot.app.screen


def cell(table: Any, row: str, column: str) -> Any:
    return table.get_cell(row, column)


async def test_empty_state_then_r_evaluates_the_marked_models(trained_root: Path) -> None:
    app = EmbtuneApp(trained_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_eval(pilot)
        message = text_of(screen.query_one("#eval-message", Static))
        assert "No evaluation yet" in message
        assert "Mark models with space, then press r" in message
        table = screen.query_one(ModelsTable)
        assert [str(r.key.value) for r in table.ordered_rows] == ["base", "run 1"]
        # base and the newest trained model are marked at first
        assert screen.marked == {"base", "run 1"}
        assert cell(table, "run 1", "verdict").plain == "not measured"
        await pilot.press("r")
        await settle(pilot)
        assert not screen.job.running
        assert not screen.query_one("#eval-progress").display
        run_id, report, _ = latest(trained_root)
        assert screen.result is not None
        assert screen.result.run_id == run_id
        assert f"run {run_id}" in text_of(screen.query_one("#eval-title", Label))
        assert f"{N_TEST} test queries" in text_of(screen.query_one("#eval-title", Label))
        verdict = report["models"]["run 1"]["verdict"]
        assert f"run 1: {verdict} against base" in text_of(screen.query_one("#eval-verdicts", Static))
        assert cell(table, "run 1", "verdict").plain == verdict
        for name in ("base", "run 1"):
            assert cell(table, name, "ndcg@10").plain == f"{report['models'][name]['ndcg@10']:.4f}"
        changes = report["models"]["run 1"]["per_query"]
        assert cell(table, "run 1", "changes").plain == f"{changes['improved']}/{changes['regressed']}"


async def test_reopening_shows_the_stored_result_without_running(evaluated_root: Path) -> None:
    run_id, _report, before = latest(evaluated_root)
    app = EmbtuneApp(evaluated_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_eval(pilot)
        assert not screen.job.running
        assert screen.result is not None
        assert screen.result.run_id == run_id
        assert not screen.query_one("#eval-message").display
        assert "General queries (8)" in text_of(screen.query_one("#eval-verdicts", Static))
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
    assert eval_ids(evaluated_root) == before


async def test_compare_deltas_best_in_bold_baseline_and_marks(evaluated_root: Path) -> None:
    _, report, _ = latest(evaluated_root)
    models = report["models"]
    app = EmbtuneApp(evaluated_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_eval(pilot)
        table = screen.query_one(ModelsTable)
        for key in ("recall@1", "ndcg@10"):
            best = max(("base", "run 1"), key=lambda n: models[n][key])
            assert "bold" in str(cell(table, best, key).style)
        await pilot.press("t")  # deltas against the base
        delta = models["run 1"]["ndcg@10"] - models["base"]["ndcg@10"]
        assert cell(table, "run 1", "ndcg@10").plain == f"{delta:+.4f}"
        assert cell(table, "base", "ndcg@10").plain == f"{models['base']['ndcg@10']:.4f}"
        assert "Δ" in str(table.columns["ndcg@10"].label)
        table.move_cursor(row=table.get_row_index("run 1"))
        await pilot.press("b")  # run 1 becomes the baseline
        assert screen.baseline == "run 1"
        assert cell(table, "base", "ndcg@10").plain == f"{-delta:+.4f}"
        assert "(baseline)" in cell(table, "run 1", "model").plain
        await pilot.press("t")
        assert cell(table, "run 1", "ndcg@10").plain == f"{models['run 1']['ndcg@10']:.4f}"
        await pilot.press("space")  # unmark run 1: no longer compared, so nothing of it is bold
        assert screen.marked == {"base"}
        assert not any("bold" in str(cell(table, "run 1", k).style) for k in ("recall@1", "ndcg@10", "map@100"))
        table.move_cursor(row=table.get_row_index("base"))
        await pilot.press("space")  # the base stays marked
        assert screen.marked == {"base"}


async def test_per_query_diff_sort_filter_and_the_query_modal(evaluated_root: Path) -> None:
    _, report, _ = latest(evaluated_root)
    changes = report["models"]["run 1"]["per_query"]
    app = EmbtuneApp(evaluated_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_eval(pilot)
        table = screen.query_one(ModelsTable)
        table.focus()
        table.move_cursor(row=table.get_row_index("run 1"))
        await pilot.press("enter")  # drill into run 1 against the base
        await pilot.pause()
        diff = screen.query_one(DiffTable)
        assert diff.has_focus
        summary = text_of(screen.query_one("#eval-diff-summary", Label))
        assert (
            f"run 1 against base: {changes['improved']} improved · {changes['regressed']} regressed · "
            f"{changes['unchanged']} unchanged"
        ) in summary
        assert diff.row_count == N_TEST
        outcomes = {q.id: q for q in screen.result.queries}
        for row in diff.ordered_rows:
            q = outcomes[str(row.key.value)]
            before = diff.get_cell(row.key, "before").plain
            assert before == ("—" if q.ranks["base"] is None else str(q.ranks["base"]))
        # sorted by change: biggest improvement first, regressions last
        shifts = [
            (outcomes[str(r.key.value)].ranks["base"] or 101) - (outcomes[str(r.key.value)].ranks["run 1"] or 101)
            for r in diff.ordered_rows
        ]
        assert shifts == sorted(shifts, reverse=True)
        await pilot.press("s")  # id
        ids = [str(r.key.value) for r in diff.ordered_rows]
        assert ids == sorted(ids)
        await pilot.press("S")
        assert [str(r.key.value) for r in diff.ordered_rows] == sorted(ids, reverse=True)
        await pilot.press("f")  # improved only
        assert diff.row_count == changes["improved"]
        await pilot.press("f")
        assert diff.row_count == changes["regressed"]
        await pilot.press("f", "f")  # changed, then all
        assert diff.row_count == N_TEST
        diff.move_cursor(row=diff.get_row_index("te-03"))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EvalQueryScreen)
        modal = app.screen
        assert text_of(modal.query_one("#eval-query-text", Static)) == (
            "which stage needs the adjuster exceptions checked"
        )
        ranks = text_of(modal.query_one("#eval-query-ranks", Static))
        for name in ("base", "run 1"):
            line = next(line for line in ranks.splitlines() if line.startswith(name + " "))
            rank = outcomes["te-03"].ranks[name]
            assert line.split()[len(name.split())] == ("—" if rank is None else str(rank))
        assert "The adjuster rule." in text_of(modal.query_one("#eval-doc-0", Static))
        await pilot.press("escape")
        assert app.screen is screen


async def test_w_writes_a_markdown_report(evaluated_root: Path) -> None:
    run_id, report, _ = latest(evaluated_root)
    app = EmbtuneApp(evaluated_root)
    async with app.run_test(size=SIZE) as pilot:
        await open_eval(pilot)
        await pilot.press("w")
        await pilot.pause()
    text = (evaluated_root / "reports" / f"eval-{run_id}.md").read_text()
    assert f"{N_TEST} judged queries" in text
    assert report["models"]["run 1"]["fingerprint"] in text


async def test_leakage_refuses_to_run_and_names_the_query(trained_root: Path, tmp_path: Path) -> None:
    from engine.ingest import importing

    project = open_project(trained_root)
    path = tmp_path / "leak.jsonl"
    path.write_text(
        json.dumps({"_id": "leaky", "text": "Question 0 about subrogation handling", "relevant": ["d00"]}) + "\n"
    )
    importing.import_queries(project, path, "test")
    project.close()
    app = EmbtuneApp(trained_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_eval(pilot)
        await pilot.press("r")
        await settle(pilot)
        message = screen.query_one("#eval-message", Static)
        assert message.has_class("-error")
        assert "test data leaked into training" in text_of(message)
        assert "leaky 'Question 0 about subrogation handling' ~ train tr-d00-0" in text_of(message)
        assert screen.result is None
    assert eval_ids(trained_root) == []


async def test_cancel_asks_first_and_records_the_run_as_cancelled(
    trained_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = threading.Event()
    original = engine.evaluate.run.open_encoder

    def held_open_encoder(*args: Any, **kwargs: Any) -> Any:
        started.set()
        screen.job.cancel_requested.wait(timeout=30)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine.evaluate.run, "open_encoder", held_open_encoder)
    app = EmbtuneApp(trained_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_eval(pilot)
        await pilot.press("r")
        assert started.wait(timeout=30)
        await pilot.pause()
        assert screen.job.running
        assert screen.query_one("#eval-progress").display
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert screen.job.running
        await pilot.press("c")
        await pilot.press("y")
        await settle(pilot)
        assert not screen.job.running
        assert "Evaluation cancelled" in text_of(screen.query_one("#eval-message", Static))
    project = open_project(trained_root)
    try:
        (run_id,) = runs.run_ids(project.db, "eval")
        assert runs.get_run(project.db, run_id)["status"] == "cancelled"
    finally:
        project.close()


async def test_help_lists_the_evaluate_keys(evaluated_root: Path) -> None:
    app = EmbtuneApp(evaluated_root)
    async with app.run_test(size=SIZE) as pilot:
        await open_eval(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(text_of(label) for label in app.screen.query(Label))
        for binding in EvaluateScreen.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.description in text, binding


def test_every_evaluate_binding_has_a_description_a_tooltip_and_an_id() -> None:
    for cls in (EvaluateScreen, EvalQueryScreen):
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.description, binding
            assert binding.tooltip, binding
            assert binding.id, binding


# --- the merge slider ---------------------------------------------------------------------------------------


@pytest.fixture
def perturbed_root(tmp_path: Path, tiny_embedder_path: Path, tuned_model: Path) -> Path:
    """A project whose run 1 is the tiny embedder with perturbed weights (a different model, no training)."""
    project = make_eval_project(tmp_path, tiny_embedder_path)
    register_run(project, tuned_model)
    project.close()
    return project.root


async def until(pilot: Pilot[Any], condition: Any, seconds: float = 30) -> None:
    """Pause until `condition()` holds: a screen pushed from a worker's end lands a few event-loop turns later."""
    for _ in range(int(seconds / 0.1)):
        if condition():
            return
        await pilot.pause(0.1)
    assert condition()


def stored_sweep(root: Path) -> dict[str, Any] | None:
    from engine.train.merge import latest_sweep

    project = open_project(root)
    try:
        return latest_sweep(project)
    finally:
        project.close()


async def test_merge_sweep_charts_every_alpha_and_u_makes_the_mix_what_index_offers(perturbed_root: Path) -> None:
    from tui.screens.evaluate.merge import MergeTable
    from tui.screens.index import BuildDialog, IndexScreen
    from tui.widgets.merge_chart import MergeChart

    app = EmbtuneApp(perturbed_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_eval(pilot)
        assert "No merge yet" in text_of(screen.query_one("#eval-merge-summary", Label))
        await pilot.press("M")
        await settle(pilot)
        assert not screen.merge_job.running
        sweep = stored_sweep(perturbed_root)
        assert sweep is not None
        assert screen.sweep == sweep
        assert sweep["run"] == 1
        assert [p["alpha"] for p in sweep["points"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
        # the sweep's evaluation is the latest result: every mix is measured beside the base and run 1
        assert screen.result is not None
        assert screen.result.run_id == sweep["eval_run"]
        assert screen.query_one(TabbedContent).active == "merge"
        assert not screen.query_one("#eval-summary").display  # the merge tab has its own headline
        table = screen.query_one(MergeTable)
        assert table.row_count == 5
        for p in sweep["points"]:
            key = str(p["alpha"])
            assert table.get_cell(key, "ndcg").plain == f"{p['ndcg@10']:.4f}"
            assert table.get_cell(key, "general").plain == f"{p['general_ndcg@10']:.4f}"
            assert table.get_cell(key, "regressing").plain == ("✗ regresses" if p["general_regressing"] else "ok")
        recommended = sweep["recommended"]
        assert table.get_cell(str(recommended), "mark").plain == "★ recommended"
        assert table.cursor_alpha() == recommended  # the cursor starts on the recommendation
        chart = "\n".join("".join(t for t, _ in line) for line in screen.query_one(MergeChart).lines(120, 14))
        assert "★" in chart
        assert "●" in chart or "◉" in chart
        assert f"★ recommended α {recommended:g}" in text_of(screen.query_one("#eval-merge-summary", Label))
        # choose α 0.5, a mix of its own: Index then offers that run for the next build
        table.move_cursor(row=table.get_row_index("0.5"))
        await pilot.press("u")
        await settle(pilot)
        await until(pilot, lambda: screen.sweep is not None and screen.sweep["chosen"] == 0.5)
        chosen = stored_sweep(perturbed_root)
        assert chosen is not None
        assert chosen["chosen"] == 0.5
        model = next(p["model"] for p in chosen["points"] if p["alpha"] == 0.5)
        assert model not in ("base", "1")
        assert table.get_cell("0.5", "mark").plain == "✓ chosen"
        assert f"Index offers run {model}" in text_of(screen.query_one("#eval-merge-summary", Label))
        await pilot.press("escape")
        await settle(pilot)
        await until(pilot, lambda: isinstance(app.screen, HomeScreen))
        await pilot.press("x")
        await settle(pilot)
        await until(pilot, lambda: isinstance(app.screen, IndexScreen))
        await pilot.press("b")
        await settle(pilot)
        await until(pilot, lambda: isinstance(app.screen, BuildDialog))
        assert app.screen.query_one(Input).value == f"run-{model}"


async def test_merge_needs_a_trained_run(tmp_path: Path, tiny_embedder_path: Path) -> None:
    make_eval_project(tmp_path, tiny_embedder_path).close()
    app = EmbtuneApp(tmp_path / "project")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_eval(pilot)
        await pilot.press("M")
        await settle(pilot)
        assert not screen.merge_job.running
        assert stored_sweep(tmp_path / "project") is None
