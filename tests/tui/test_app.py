"""The TUI shell: home counts and readiness match the store, keys, help from bindings, palette, import modal,
and a first frame that never pays for torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Label, Select, Static

from engine.ingest import importing
from engine.pipeline_state import LatestEval, LatestTrain, LiveIndex
from engine.project import init_project, open_project
from engine.store.queries import status_counts
from tui.app import EmbtuneApp, run_app
from tui.commands import palette_commands
from tui.readiness import State, evaluation_stage, index_stage, readiness, training_stage
from tui.screens.help import HelpScreen
from tui.screens.home import CountsPanel, HomeScreen, ImportsTable, StagesPanel
from tui.screens.import_data import ImportScreen

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sentence_transformers", "transformers", "lancedb")
SIZE = (120, 40)


def write_beir(folder: Path, docs: int = 4, prefix: str = "") -> Path:
    """A BEIR folder with `docs` documents, one query per document; the last one each for test and gate."""
    (folder / "qrels").mkdir(parents=True)
    ids = [f"{prefix}d{i}" for i in range(docs)]
    corpus = [{"_id": d, "title": f"Title {d}", "text": f"Passage number {d} about claims."} for d in ids]
    queries = [{"_id": f"q{d}", "text": f"question about {d}"} for d in ids]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    splits = {"train": ids[:-2], "test": ids[-2:-1], "gate": ids[-1:]}
    for split, chosen in splits.items():
        rows = "".join(f"q{d}\t{d}\t1\n" for d in chosen)
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = init_project(tmp_path / "proj")
    importing.import_beir(project, write_beir(tmp_path / "beir"))
    project.close()
    return project.root


def counts_of(root: Path) -> dict[str, Any]:
    project = open_project(root)
    try:
        return status_counts(project.db)
    finally:
        project.close()


def text_of(widget: Static) -> str:
    return str(widget.render())


def labels_text(screen: Any) -> str:
    return "\n".join(text_of(label) for label in screen.query(Label))


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def count_in(panel_text: str, name: str) -> int:
    line = next(line for line in panel_text.splitlines() if line.startswith(name))
    return int(line.split()[-1].replace(",", ""))


# --- home ---------------------------------------------------------------------------------------------------


async def test_home_shows_the_stores_counts_stages_and_imports(root: Path) -> None:
    expected = counts_of(root)
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        counts = text_of(app.screen.query_one(CountsPanel))
        for name in ("documents", "chunks", "pairs", "negatives", "runs"):
            assert count_in(counts, name) == expected[name], name
        assert count_in(counts, "queries") == sum(expected["queries"].values())
        assert "train 2 · test 1 · gate 1 · general 0" in counts
        stages = labels_text(app.screen.query_one(StagesPanel))
        assert "Corpus: 4 chunks from 4 documents" in stages
        assert "Gate queries: 1 (< 30)" in stages
        assert "Training pairs: 2 (< 1,000)" in stages
        assert "Training: no run yet" in stages
        assert "Evaluation: not run yet" in stages
        assert "Live index: none" in stages
        assert app.screen.query_one(ImportsTable).row_count == 1
        header = labels_text(app.screen.query_one("ProjectHeader"))
        assert "proj" in header
        assert str(root) in header
        assert "all-MiniLM-L6-v2" in header


async def test_r_shows_counts_of_an_import_made_meanwhile(root: Path, tmp_path: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert count_in(text_of(app.screen.query_one(CountsPanel)), "documents") == 4
        other = open_project(root)  # another process (the CLI) imports while the TUI is open
        importing.import_beir(other, write_beir(tmp_path / "more", docs=3, prefix="x"))
        other.close()
        await pilot.press("r")
        await settle(pilot)
        counts = text_of(app.screen.query_one(CountsPanel))
        assert count_in(counts, "documents") == 7
        assert count_in(counts, "queries") == 7
        assert app.screen.query_one(ImportsTable).row_count == 2


def test_run_app_on_a_folder_that_is_no_project_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_app(tmp_path)
    assert exit_info.value.code == 2
    assert "is not an embtune project" in capsys.readouterr().err


async def test_q_quits(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0
        assert not app.is_running


# --- keys: help and palette from the bindings ---------------------------------------------------------------


def declared_bindings() -> list[Any]:
    from textual.binding import Binding

    classes = (EmbtuneApp, HomeScreen, HelpScreen, ImportScreen)
    return [b for cls in classes for b in cls.BINDINGS if isinstance(b, Binding) and not b.system]


def test_every_binding_has_a_description_a_tooltip_and_an_id() -> None:
    for binding in declared_bindings():
        assert binding.description, binding
        assert binding.tooltip, binding
        assert binding.id, binding


async def test_help_lists_every_active_binding_and_closes(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = labels_text(app.screen)
        for binding in (*EmbtuneApp.BINDINGS, *HomeScreen.BINDINGS):
            if not binding.system:
                assert binding.description in text, binding
        assert "Refresh counts" in text
        assert "Quit" in text
        assert "Home" in text
        assert "Global" in text
        assert "?, f1" in text  # keys of one action are merged
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)
        for close in ("escape", "question_mark"):
            await pilot.press("f1")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press(close)
            assert isinstance(app.screen, HomeScreen)
        assert app.is_running
        await pilot.press("f1", "q")  # q quits from help too: one quit key on every screen
        await pilot.pause()
        assert not app.is_running


async def test_palette_offers_the_screens_actions_once_each(root: Path) -> None:
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [command.title for command in palette_commands(app.screen)]
        assert sorted(titles) == [
            "Evaluate",
            "Gate",
            "Help",
            "Import data",
            "Index",
            "Mine & check",
            "Quit",
            "Refresh counts",
            "Review pairs",
            "Search",
            "Train",
        ]
        await pilot.press("ctrl+p")
        await pilot.press(*"help")
        await pilot.pause(0.3)  # the palette searches its providers in the background
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


# --- import modal -------------------------------------------------------------------------------------------


async def test_import_modal_imports_and_refreshes_home(root: Path, tmp_path: Path) -> None:
    queries = tmp_path / "general.jsonl"
    queries.write_text(json.dumps({"text": "what is a deductible", "relevant": ["d0"]}) + "\n")
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("i")
        assert isinstance(app.screen, ImportScreen)
        app.screen.query_one("#kind", Select).value = "queries"
        await pilot.pause()
        app.screen.query_one("#option", Select).value = "general"
        app.screen.query_one("#path", Input).value = str(queries)  # typing it key by key costs ~60 ms a key
        await pilot.press("enter")
        await settle(pilot)
        await settle(pilot)  # the home screen's recount after the modal closed
        assert isinstance(app.screen, HomeScreen)
        assert "General queries (regression check): 1" in labels_text(app.screen.query_one(StagesPanel))
    assert counts_of(root)["queries"]["general"] == 1


async def test_import_modal_shows_file_line_problems_and_stays_open(root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"query": "a", "positive": "b"}\n{"query": "broken"\n')
    before = counts_of(root)
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("i")
        app.screen.query_one("#kind", Select).value = "pairs"
        await pilot.pause()
        app.screen.query_one("#path", Input).value = str(bad)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ImportScreen)
        message = text_of(app.screen.query_one("#import-result", Static))
        assert f"{bad}:2" in message
        assert "nothing was imported" in message
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)
    assert counts_of(root) == before


# --- readiness rules (pure) ---------------------------------------------------------------------------------

GATE = SimpleNamespace(min_queries=30, min_pairs=1000, reliable_pairs=5000)


def counts(
    *,
    chunks: int = 10,
    gate: int = 0,
    judged_gate: int = 0,
    train_pairs: int = 0,
    test: int = 0,
    general: int = 0,
) -> dict[str, Any]:
    splits = dict.fromkeys(("train", "dev", "test", "gate", "general"), 0)
    return {
        "documents": chunks, "chunks": chunks, "pairs": train_pairs, "negatives": 0, "runs": 0,
        "queries": {**splits, "gate": gate, "test": test, "general": general},
        "pairs_by_split": {**splits, "train": train_pairs},
        "judged_queries": {**splits, "gate": judged_gate, "test": test, "general": general},
    }  # fmt: skip


def by_name(stages: list[Any]) -> dict[str, Any]:
    return {stage.name.split(" (")[0].split(" with")[0]: stage for stage in stages}


def test_readiness_when_every_threshold_is_met() -> None:
    stages = by_name(readiness(counts(gate=40, judged_gate=40, train_pairs=1280, test=300, general=50), GATE))
    assert all(stage.state is State.OK for stage in stages.values())
    assert stages["Gate queries"].detail == "40 (≥ 30)"
    assert stages["Training pairs"].detail == "1,280 (≥ 1,000 · reliable at 5,000)"
    assert stages["Test queries"].detail == "300 (≥ 30)"
    assert all(not stage.hint for stage in stages.values())
    reliable = by_name(readiness(counts(train_pairs=6000), GATE))["Training pairs"]
    assert (reliable.state, reliable.detail) == (State.OK, "6,000 (≥ 5,000: reliable)")


def test_readiness_when_thresholds_are_not_met() -> None:
    stages = by_name(readiness(counts(chunks=0, gate=12, judged_gate=12, train_pairs=999, test=5), GATE))
    assert stages["Corpus"].state is State.MISSING
    assert (stages["Gate queries"].state, stages["Gate queries"].detail) == (State.WARN, "12 (< 30)")
    assert (stages["Training pairs"].state, stages["Training pairs"].detail) == (
        State.MISSING,
        "999 (< 1,000)",
    )
    assert stages["Test queries"].state is State.WARN
    assert stages["General queries"].state is State.WARN  # optional: a warning, never a blocker
    assert all(stage.hint for stage in stages.values())


def test_readiness_names_gate_queries_that_lack_judgments() -> None:
    gate = by_name(readiness(counts(gate=40, judged_gate=0), GATE))["Gate queries"]
    assert gate.state is State.MISSING
    assert "40 gate queries need judgments" in gate.hint
    partly = by_name(readiness(counts(gate=45, judged_gate=35), GATE))["Gate queries"]
    assert (partly.state, partly.detail) == (State.OK, "35 (≥ 30) · 10 without judgments")


def test_later_stages_say_what_happened_and_what_to_do_next() -> None:
    assert training_stage(None).state is State.WARN
    done = training_stage(LatestTrain(4, "finished", "models/run-4", None))
    assert (done.state, done.detail, done.hint) == (State.OK, "run 4 finished: models/run-4", "")
    stopped = training_stage(LatestTrain(5, "interrupted", None, "interrupted: worker gone"))
    assert (stopped.state, stopped.detail) == (State.WARN, "run 5 interrupted")
    assert "resume" in stopped.hint

    def evaluated(**verdicts: str) -> LatestEval:
        return LatestEval(9, "test", 160, verdicts, dict.fromkeys(verdicts, 0.1078), "ndcg@10")

    win = evaluation_stage(evaluated(**{"run 4": "WIN"}))
    assert (win.state, win.detail) == (State.OK, "run 4 WIN (+0.108 ndcg@10) · 160 test queries")
    marginal = evaluation_stage(evaluated(**{"run 4": "MARGINAL", "run 5": "REGRESSION"}))
    assert marginal.state is State.WARN
    assert "run 4 MARGINAL" in marginal.detail
    assert "run 5 REGRESSION" in marginal.detail
    assert "do not ship" in marginal.hint
    assert evaluation_stage(None).hint == "press e, then r, to measure base vs tuned"

    assert index_stage(None).state is State.WARN
    live = index_stage(LiveIndex("chunks_ab12_7", "run 4", 5183))
    assert (live.state, live.detail) == (State.OK, "run 4 · 5,183 rows")


# --- startup: no ML imports on the way to the first frame ---------------------------------------------------

FIRST_FRAME = """
import asyncio, sys
from pathlib import Path
import engine.cli.main
from tui.app import EmbtuneApp, run_app
from tui.screens.home import CountsPanel

async def main():
    app = EmbtuneApp(Path(sys.argv[1]))
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        print(str(app.screen.query_one(CountsPanel).render()).splitlines()[0])
    print("heavy:" + ",".join(m for m in {heavy!r} if m in sys.modules))

asyncio.run(main())
"""


def test_tui_first_frame_imports_no_ml_library(root: Path) -> None:
    code = FIRST_FRAME.format(heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, cwd=ROOT,
                         timeout=60, check=True).stdout  # fmt: skip
    assert "documents" in out  # the app really drew its counts
    assert out.strip().splitlines()[-1] == "heavy:"


def test_embtune_help_imports_no_ml_library() -> None:
    script = shutil.which("embtune", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([sys.executable, "-X", "importtime", script, "--help"], capture_output=True,
                            text=True, timeout=60, check=True)  # fmt: skip
    assert "Usage:" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines()}
    assert imported.isdisjoint(HEAVY), imported & set(HEAVY)
