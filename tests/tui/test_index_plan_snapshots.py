"""The Index screen with a plan (#19) at 80×24 and 140×45: a real live table built with the tiny model, and a plan
stored through the engine's own store_plan with fixed figures (measured timings vary from run to run, so a
measured plan would never give the same picture). The figures are those of a table big enough for every index
type: IVF_PQ is the smallest option meeting recall@10 0.95, IVF_RQ and binary fall below it (dimmed).
After a deliberate layout change, review the new pictures and run `pytest --snapshot-update` on this file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from engine.index.build import build_index, connect
from engine.index.plan import IndexPlan, Option, store_plan
from tests.projects import make_project
from tui.app import EmbtuneApp
from tui.screens.index import IndexScreen

INSTANT = "2026-12-01T09:00:00.000Z"


def fixed_plan(table: str, rows: int, dim: int) -> IndexPlan:
    """Every kind of option, with the figures fixed; byte sizes follow engine.index.ann.code_bytes for `dim`."""
    options = [
        Option("exact", "exact", 1.0, 4.0 * dim, 2.41, 3.02, note="flat float32 scan"),
        Option("ivf_flat", "index", 0.981, 4.0 * dim, 0.62, 0.91, 1.8, {"nprobes": 20}),
        Option("ivf_pq", "index", 0.962, dim / 4, 0.48, 0.7, 6.4, {"nprobes": 50, "refine_factor": 20}),
        Option("ivf_hnsw_sq", "index", 0.957, dim + 160.0, 0.35, 0.52, 12.9, {"nprobes": 20}),
        Option("ivf_rq", "index", 0.912, dim / 8 + 8, 0.41, 0.66, 3.1, {"nprobes": 200, "refine_factor": 20}),
        Option("int8+rescore", "compression", 0.991, float(dim), 1.12, 1.4, None, {"rescore_multiplier": 4}),
        Option("binary+rescore", "compression", 0.874, dim / 8, 0.57, 0.8, None, {"rescore_multiplier": 4}),
    ]
    return IndexPlan(table, rows, dim, 40, 0.95, options, "ivf_pq", "ivf_pq")


@pytest.fixture
def root(tmp_path: Path, tiny_embedder_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the header shows the project's path relative to here: `project`
    project = make_project(tmp_path, tiny_embedder_path)
    try:
        built = build_index(project)
        dim = connect(project).open_table(built.table).schema.field("vector").type.list_size
        store_plan(project, fixed_plan(built.table, built.rows, dim))
        # Times as a build and a plan would have them, fixed so the picture is: the store stamps them with the clock.
        project.db.execute("UPDATE runs SET created_at = ?, started_at = ?, finished_at = ?", [INSTANT] * 3)
        project.db.execute("UPDATE indexes SET created_at = ?", [INSTANT])
        project.db.conn.commit()
    finally:
        project.close()
    return project.root


async def open_index(pilot: Pilot[Any]) -> None:
    await pilot.press("x")
    for _ in range(3):  # the listing with the plan, then the tables' widths
        await pilot.pause(0.6)
        while any(w.is_running for w in pilot.app.workers):
            await pilot.pause(0.05)
    assert isinstance(pilot.app.screen, IndexScreen)


@pytest.mark.parametrize("size", [(80, 24), (140, 45)], ids=["80x24", "140x45"])
def test_index_screen_with_a_plan(snap_compare: Any, root: Path, size: tuple[int, int]) -> None:
    assert snap_compare(EmbtuneApp(root), terminal_size=size, run_before=open_index)
