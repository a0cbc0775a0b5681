"""Stored evaluations shaped for display, and the models a project can evaluate.

Reads only the store (no numpy, no models), so the Evaluate screen shows the last result the moment it opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.evaluate.verdict import rank_change
from engine.project import Project
from engine.store import corpus, runs
from engine.store import evals as store


@dataclass(frozen=True)
class QueryRanks:
    id: str
    text: str
    expected: tuple[str, ...]  # ids of the documents judged relevant, as judged now
    titles: tuple[str, ...]
    ranks: dict[str, int | None]  # model -> 1-based rank of the first relevant document; None: not in the top 100
    metrics: dict[str, dict[str, float]]  # model -> this query's metrics


@dataclass(frozen=True)
class EvalResult:
    run_id: int
    report: dict[str, Any]  # the `embtune eval --json` object
    queries: list[QueryRanks]
    finished_at: str

    @property
    def model_names(self) -> list[str]:
        return list(self.report["models"])

    def changed(self, baseline: str = "base") -> list[dict[str, Any]]:
        """Queries whose first relevant rank differs between `baseline` and any other model, for reports."""
        return [
            {"id": q.id, "text": q.text, "ranks": q.ranks}
            for q in self.queries
            if any(rank_change(q.ranks.get(baseline), r) != "unchanged" for r in q.ranks.values())
        ]


@dataclass(frozen=True)
class Candidate:
    ref: str  # what `--models` takes: 'base' or the run id
    name: str  # as keyed in reports: 'base' or 'run N'
    detail: str


def load_eval_result(project: Project, run_id: int | None = None) -> EvalResult | None:
    """The newest finished evaluation (or run `run_id`) with its per-query ranks, or None."""
    found = (
        store.eval_results(project.db, limit=1)
        if run_id is None
        else [r for r in [store.eval_result(project.db, run_id)] if r is not None]
    )
    if not found:
        return None
    rid, finished_at, report = found[0]
    ranks: dict[str, dict[str, int | None]] = {}
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for row in runs.query_results(project.db, rid):
        ranks.setdefault(row["query_id"], {})[row["arm"]] = row["first_rank"]
        metrics.setdefault(row["query_id"], {})[row["arm"]] = row["metrics"]
    queries = corpus.queries_by_id(project.db, list(ranks))
    expected = {qid: tuple(sorted(q.relevant)) for qid, q in queries.items()}
    titles = corpus.documents_by_id(project.db, [d for docs in expected.values() for d in docs], with_text=False)
    rows = [
        QueryRanks(
            qid,
            queries[qid].text if qid in queries else "",
            expected.get(qid, ()),
            tuple(titles[d].title if d in titles else "" for d in expected.get(qid, ())),
            r,
            metrics[qid],
        )
        for qid, r in ranks.items()
    ]
    return EvalResult(rid, report, rows, finished_at)


def candidates(project: Project) -> list[Candidate]:
    """The base model and every finished training run's model, oldest run first."""
    out = [Candidate("base", "base", project.config.base_model)]
    for run in store.trained_models(project.db):
        when = run["finished_at"][:16].replace("T", " ")
        out.append(Candidate(str(run["id"]), f"run {run['id']}", f"{run['model_path']} · finished {when}"))
    return out


def expected_documents(project: Project, doc_ids: tuple[str, ...]) -> list[corpus.Document]:
    found = corpus.documents_by_id(project.db, doc_ids)
    return [found[d] for d in doc_ids if d in found]
