"""Snapshots of the Evaluate screen at 80x24 and 140x45 in one fixed state (a stored evaluation of the base, a tuned
run and three merge mixes), without and with a merge sweep, on the Models and the Merge tabs.

The screen reads its state through `load_view`; here that returns fixed data, so the pictures depend on the layout
only (no clock, no temporary paths, no model). Review a changed picture with `pytest --snapshot-report` before
updating it with `--snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

import tui.screens.evaluate.screen as evaluate_screen
from engine.config import EVAL_METRICS
from engine.evaluate.results import Candidate, EvalResult, QueryRanks
from engine.project import init_project
from tui.app import EmbtuneApp

SIZES = [(80, 24), (140, 45)]
# nDCG@10 on the held-out and the general queries per alpha: the tuned run gains on its domain and forgets a little
MIXES = [(0.0, "base", 0.652, 0.780), (0.25, "3", 0.684, 0.781), (0.5, "4", 0.705, 0.772),
         (0.75, "5", 0.716, 0.751), (1.0, "1", 0.722, 0.712)]  # fmt: skip


def metrics(ndcg: float) -> dict[str, Any]:
    values = {key: round(min(1.0, ndcg + 0.05 * i - 0.1), 4) for i, key in enumerate(EVAL_METRICS)}
    values["ndcg@10"] = ndcg
    return values | {f"{key}_ci": [values[key] - 0.03, values[key] + 0.03] for key in EVAL_METRICS}


def report() -> dict[str, Any]:
    models: dict[str, Any] = {}
    general: dict[str, Any] = {}
    for alpha, model, ndcg, general_ndcg in MIXES:
        name = "base" if model == "base" else f"run {model}"
        m = metrics(ndcg) | {"spec": f"models/run-{model}" if model != "base" else "all-MiniLM-L6-v2"}
        if model != "base":
            improved = round(90 * alpha)
            m |= {
                "verdict": "WIN" if ndcg - 0.652 >= 0.03 else "MARGINAL",
                "reasons": [f"nDCG@10 {ndcg - 0.652:+.3f} over the base"],
                "per_query": {"improved": improved, "regressed": 30 - improved // 5, "unchanged": 258 - improved},
                "p_value": 0.001,
            }
        models[name] = m
        regressing = general_ndcg < 0.74
        general[name] = {"ndcg@10": general_ndcg, "regressing": regressing} | (
            {"delta_ci": [general_ndcg - 0.780 - 0.02, general_ndcg - 0.780 + 0.02]} if model != "base" else {}
        )
    return {
        "run_id": 6,
        "split": "test",
        "n_queries": 288,
        "models": models,
        "verdict": {n: m["verdict"] for n, m in models.items() if "verdict" in m},
        "general": {"n_queries": 45, "metric": "ndcg@10", "max_drop": 0.02, "models": general},
        "leakage": {"document_overlap": {"documents": 0, "queries": 0}, "queries": 0, "pairs": 0},
        "settings": {"metric": "ndcg@10"},
    }


def sweep() -> dict[str, Any]:
    points = [
        {"alpha": a, "ndcg@10": n, "general_ndcg@10": g, "general_regressing": g < 0.74, "model": m}
        for a, m, n, g in MIXES
    ]
    return {"run": 1, "points": points, "recommended": 0.75, "eval_run": 6, "split": "test", "n_general": 45,
            "sweep_run": 2, "chosen": 0.5}  # fmt: skip


def fixed_view(with_sweep: bool) -> evaluate_screen.View:
    queries = [
        QueryRanks(f"te-{i:03d}", f"held-out question {i} about claims handling", (f"a{i:03d}",), ("",),
                   {"base": 1 + i % 7, "run 1": 1 + i % 3}, {})
        for i in range(12)
    ]  # fmt: skip
    result = EvalResult(6, report(), queries, "2026-12-01T09:30:00.000Z")
    rows = [
        Candidate("base", "base", "all-MiniLM-L6-v2"),
        Candidate("1", "run 1", "models/run-1 · finished 2026-12-01 09:12"),
        *(Candidate(f"models/run-{m}", f"run {m}", f"models/run-{m}") for _, m, _, _ in MIXES[1:4]),
    ]
    return evaluate_screen.View(rows, result, sweep() if with_sweep else None)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = init_project(tmp_path_factory.mktemp("snapshots") / "project")
    project.close()
    return project.root


def opened(tab: str | None) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.press("e")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if tab:
            await pilot.press(tab)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    ("with_sweep", "tab"),
    [(False, None), (False, "a"), (True, "a")],
    ids=["models", "merge-empty", "merge"],
)
def test_evaluate_screen(
    snap_compare: Any,
    monkeypatch: pytest.MonkeyPatch,
    root: Path,
    size: tuple[int, int],
    with_sweep: bool,
    tab: str | None,
) -> None:
    monkeypatch.setattr(evaluate_screen, "load_view", lambda project: fixed_view(with_sweep))
    assert snap_compare(EmbtuneApp(root), terminal_size=size, run_before=opened(tab))
