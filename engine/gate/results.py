"""The latest stored gate result, shaped for display: the report, its thresholds and one row per gate query.

Reads only the store (no numpy, no models), so the TUI can show a result the moment a screen opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.project import Project
from engine.store import corpus, runs


@dataclass(frozen=True)
class QueryOutcome:
    id: str
    text: str
    expected: tuple[str, ...]  # ids of the documents judged relevant, as judged now
    titles: tuple[str, ...]  # their titles, same order ("" for a document no longer in the project)
    ranks: dict[str, int | None]  # arm -> 1-based rank of the first relevant document; None: not in the top 100


@dataclass(frozen=True)
class GateResult:
    run_id: int
    report: dict[str, Any]  # the `embtune gate --json` object
    queries: list[QueryOutcome]
    finetune_recall: float
    stop_recall: float
    finished_at: str

    @property
    def verdict(self) -> str:
        return str(self.report["verdict"])

    @property
    def k(self) -> int:
        return int(self.report["k"])

    @property
    def arms(self) -> list[dict[str, Any]]:
        return list(self.report["arms"])


def load_gate_result(project: Project) -> GateResult | None:
    """The newest finished gate run with its per-query ranks, or None when the gate never finished."""
    latest = runs.latest_result(project.db, "gate")
    if latest is None:
        return None
    run_id, report = latest
    ranks: dict[str, dict[str, int | None]] = {}
    for row in runs.query_results(project.db, run_id):
        ranks.setdefault(row["query_id"], {})[row["arm"]] = row["first_rank"]
    queries = corpus.queries_by_id(project.db, list(ranks))
    expected = {qid: tuple(sorted(q.relevant)) for qid, q in queries.items()}
    titles = corpus.documents_by_id(project.db, [d for docs in expected.values() for d in docs], with_text=False)
    outcomes = [
        QueryOutcome(
            qid,
            queries[qid].text if qid in queries else "",
            expected.get(qid, ()),
            tuple(titles[d].title if d in titles else "" for d in expected.get(qid, ())),
            arm_ranks,
        )
        for qid, arm_ranks in ranks.items()
    ]
    # Thresholds as the run applied them; results stored before they were recorded fall back to project.yaml.
    settings, gate = report.get("settings", {}), project.config.gate
    info = runs.get_run(project.db, run_id) or {}
    return GateResult(
        run_id,
        report,
        outcomes,
        float(settings.get("finetune_recall", gate.finetune_recall)),
        float(settings.get("stop_recall", gate.stop_recall)),
        str(info.get("finished_at") or ""),
    )


def latest_verdict(project: Project) -> tuple[int, str] | None:
    """(run id, verdict) of the newest finished gate run: the one line the home screen shows."""
    latest = runs.latest_result(project.db, "gate")
    return (latest[0], str(latest[1]["verdict"])) if latest else None


def expected_documents(project: Project, doc_ids: tuple[str, ...]) -> list[corpus.Document]:
    """The full documents a drill-down shows, in the given order (missing ones left out)."""
    found = corpus.documents_by_id(project.db, doc_ids)
    return [found[d] for d in doc_ids if d in found]
