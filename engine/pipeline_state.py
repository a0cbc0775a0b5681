"""Where a project stands after the gate: its newest training run, evaluation verdicts and live index.

One read for the home screen (and anything else that wants the whole picture) over the stores of each stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.jobs.launcher import reap_stale
from engine.project import Project
from engine.store import evals, indexes
from engine.store import jobs as train_store
from engine.train.view import resume_blocker


@dataclass(frozen=True)
class LatestTrain:
    run_id: int
    status: str  # queued | running | finished | failed | cancelled | interrupted
    model_path: str | None
    error: str | None
    resume_blocker: str | None = None  # why it cannot be resumed (None: it can), by engine.train.view's rule


@dataclass(frozen=True)
class LatestEval:
    run_id: int
    split: str
    n_queries: int
    verdicts: dict[str, str]  # tuned model → WIN | MARGINAL | REGRESSION
    deltas: dict[str, float]  # tuned model → mean gain of the verdict metric over the base
    metric: str


@dataclass(frozen=True)
class LiveIndex:
    table: str
    model: str
    rows: int


@dataclass(frozen=True)
class PipelineState:
    train: LatestTrain | None
    evaluation: LatestEval | None
    index: LiveIndex | None


def pipeline_state(project: Project) -> PipelineState:
    return PipelineState(_latest_train(project), _latest_eval(project), _live_index(project))


def _latest_train(project: Project) -> LatestTrain | None:
    reap_stale(project)  # a run whose process died reads as interrupted here, not as running forever
    found = train_store.list_runs(project.db, limit=1)
    if not found:
        return None
    run = found[0]
    blocker = resume_blocker(project, run)
    return LatestTrain(int(run["id"]), str(run["status"]), run["model_path"], run["error"], blocker)


def _latest_eval(project: Project) -> LatestEval | None:
    found = evals.eval_results(project.db, limit=1)
    if not found:
        return None
    run_id, _, result = found[0]
    models: dict[str, Any] = result.get("models", {})
    verdicts = dict(result.get("verdict", {}))
    deltas = {name: float(models[name]["delta"]) for name in verdicts if "delta" in models.get(name, {})}
    return LatestEval(
        run_id=run_id,
        split=str(result.get("split", "")),
        n_queries=int(result.get("n_queries", 0)),
        verdicts=verdicts,
        deltas=deltas,
        metric=str(result.get("settings", {}).get("metric", "")),
    )


def _live_index(project: Project) -> LiveIndex | None:
    row = indexes.live(project.db)
    return LiveIndex(row["table_name"], str(row["model"]), int(row["rows"] or 0)) if row else None
