"""How far a project is from each pipeline stage, computed from `status_counts` and the gate thresholds.

Pure (no Textual, no SQL) so the rules are unit-tested on plain dicts; the home screen renders the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from engine.pipeline_state import LatestEval, LatestTrain, LiveIndex


class State(str, Enum):
    OK = "ok"
    WARN = "warn"  # the stage runs, with a caveat
    MISSING = "missing"  # the stage cannot run yet

    @property
    def glyph(self) -> str:
        return {"ok": "✓", "warn": "!", "missing": "✗"}[self.value]


class Thresholds(Protocol):
    """The fields of engine.config.GateConfig that readiness reads."""

    min_queries: int
    min_pairs: int
    reliable_pairs: int


@dataclass(frozen=True)
class Stage:
    name: str
    detail: str
    state: State
    hint: str = ""  # what to do about it; empty when OK


def readiness(counts: dict[str, Any], gate: Thresholds) -> list[Stage]:
    return [
        _corpus(counts),
        _gate(counts, gate),
        _pairs(counts, gate),
        _test_split(counts, gate),
        _general(counts),
    ]


def _corpus(counts: dict[str, Any]) -> Stage:
    docs, chunks = counts["documents"], counts["chunks"]
    if chunks:
        return Stage("Corpus", f"{chunks:,} chunks from {docs:,} documents", State.OK)
    return Stage("Corpus", "no documents", State.MISSING, "import a BEIR folder or a folder of documents")


def _gate(counts: dict[str, Any], gate: Thresholds) -> Stage:
    judged, total = counts["judged_queries"]["gate"], counts["queries"]["gate"]
    name, need = "Gate queries", gate.min_queries
    excluded = counts.get("queries_excluded_by_review", {}).get("gate", 0)
    unjudged = f" · {total - judged - excluded:,} without judgments" if total > judged + excluded else ""
    if excluded:  # review rejected every judgment of these: the gate no longer uses them
        unjudged += f" · {excluded:,} excluded by review"
    if judged >= need:
        return Stage(name, f"{judged:,} (≥ {need:,}){unjudged}", State.OK)
    if judged:
        return Stage(
            name,
            f"{judged:,} (< {need:,}){unjudged}",
            State.WARN,
            f"the gate runs, but its figures are noisy below {need:,} queries",
        )
    hint = (
        f"the {total:,} gate queries need judgments (qrels/gate.tsv or 'relevant' ids)"
        if total
        else f"import ~{need:,} representative queries with judgments, tagged gate"
    )
    return Stage(name, f"none judged (need {need:,})", State.MISSING, hint)


def _pairs(counts: dict[str, Any], gate: Thresholds) -> Stage:
    pairs, low, reliable = counts["pairs_by_split"]["train"], gate.min_pairs, gate.reliable_pairs
    name = "Training pairs"
    if pairs >= reliable:
        return Stage(name, f"{pairs:,} (≥ {reliable:,}: reliable)", State.OK)
    if pairs >= low:
        return Stage(name, f"{pairs:,} (≥ {low:,} · reliable at {reliable:,})", State.OK)
    return Stage(
        name,
        f"{pairs:,} (< {low:,})",
        State.MISSING,
        f"fine-tuning needs {low:,}+ training pairs; the gate and re-ranking work without",
    )


def _test_split(counts: dict[str, Any], gate: Thresholds) -> Stage:
    judged, need = counts["judged_queries"]["test"], gate.min_queries
    name = "Test queries with judgments"
    if judged >= need:
        return Stage(name, f"{judged:,} (≥ {need:,})", State.OK)
    if judged:
        return Stage(name, f"{judged:,} (< {need:,})", State.WARN, "evaluation of a fine-tuned model is noisy")
    return Stage(name, "none", State.MISSING, "held-out test queries with judgments measure fine-tuning")


def _general(counts: dict[str, Any]) -> Stage:
    judged = counts["judged_queries"]["general"]
    name = "General queries (regression check)"
    if judged:
        return Stage(name, f"{judged:,}", State.OK)
    return Stage(
        name,
        "none",
        State.WARN,
        "optional: general-domain queries with judgments show whether fine-tuning costs elsewhere",
    )


def gate_verdict(latest: tuple[int, str] | None) -> Stage:
    """The last gate verdict (engine.gate.results.latest_verdict), or how to get one."""
    name = "Gate verdict"
    if latest is None:
        return Stage(name, "not run yet", State.WARN, "press g, then r, to run the gate")
    run_id, verdict = latest
    if verdict == "INCOMPLETE":
        return Stage(name, f"{verdict} (run {run_id})", State.WARN, "press g to see which arm could not run")
    return Stage(name, f"{verdict} (run {run_id})", State.OK)


def training_stage(latest: LatestTrain | None) -> Stage:
    """The newest training run (engine.pipeline_state), or how to start one."""
    name = "Training"
    if latest is None:
        return Stage(name, "no run yet", State.WARN, "press t to fine-tune once the gate says it is worth it")
    detail = f"run {latest.run_id} {latest.status}"
    if latest.status == "finished":
        return Stage(name, f"{detail}: {latest.model_path}", State.OK)
    if latest.status in ("queued", "running"):
        return Stage(name, detail, State.OK, "press t to follow it")
    if latest.resume_blocker is None:  # the Train screen offers r by the same rule (engine.train.view)
        return Stage(name, detail, State.WARN, "press t, then r, to resume it from its last checkpoint")
    return Stage(name, detail, State.WARN, f"{latest.resume_blocker}: press t, then s, to start a new run")


def evaluation_stage(latest: LatestEval | None) -> Stage:
    """The newest evaluation's verdicts, worst first in the state: one regression is a warning."""
    name = "Evaluation"
    if latest is None:
        return Stage(name, "not run yet", State.WARN, "press e, then r, to measure base vs tuned")
    if not latest.verdicts:
        return Stage(name, f"run {latest.run_id}: base only", State.WARN, "press e and mark a trained model")
    parts = [
        f"{model} {verdict}" + (f" ({latest.deltas[model]:+.3f} {latest.metric})" if model in latest.deltas else "")
        for model, verdict in latest.verdicts.items()
    ]
    detail = f"{'; '.join(parts)} · {latest.n_queries:,} {latest.split} queries"
    if "WIN" in latest.verdicts.values():
        return Stage(name, detail, State.OK)
    return Stage(name, detail, State.WARN, "no model beats the base beyond chance: do not ship it yet")


def index_stage(live: LiveIndex | None) -> Stage:
    name = "Live index"
    if live is None:
        return Stage(name, "none", State.WARN, "press x, then b, to embed the corpus into LanceDB")
    return Stage(name, f"{live.model} · {live.rows:,} rows", State.OK)
