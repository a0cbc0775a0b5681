"""What each fix costs: the guide's engineering hours and expected gain beside what the gate measured here.

The guide (../shared/reference/fine-tuning-embeddings.txt): "try re-ranking (16h setup, +15-30% precision), query
expansion (8h, +5-10%), better chunking (4h, +5-15%)"; fine-tuning "30-40 engineering hours" plus "re-embedding
your entire corpus", for "10-25%" more recall. Compute is measured on this machine: per-query latency (re-ranking
the top-N, expanding and encoding a query, BM25) and one-off work (re-embedding the corpus for a new chunking, a
new base model, or a tuned model; training). Pure: the gate passes the measured rates in.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.gate.verdict import family

# family -> (engineering hours, the guide's expected gain). hybrid and base-model switches are not priced by the
# guide: hours None, and the report says so.
GUIDE: dict[str, tuple[float | None, str]] = {
    "base": (0.0, "—"),
    "rerank": (16.0, "+15–30% precision"),
    "expansion": (8.0, "+5–10%"),
    "chunking": (4.0, "+5–15%"),
    "hybrid": (None, "not priced by the guide"),
    "model": (None, "not priced by the guide (a new base model: re-embed, re-evaluate)"),
}
FINE_TUNE_HOURS = (30.0, 40.0)
FINE_TUNE_GAIN = "+10–25% recall"
# A training step's forward + backward pass costs about three forwards (backward ≈ 2× forward: Kaplan et al.
# 2020, "Scaling Laws for Neural Language Models", §2.1), on each text of each row.
TRAIN_STEP_FORWARDS = 3.0


@dataclass(frozen=True)
class Rates:
    """Measured on this machine for the base model: seconds per passage and per query encoded (no cache),
    seconds per query re-ranked at top-N, per query expanded, per BM25 search."""

    passage_seconds: float
    query_seconds: float
    rerank_seconds: float | None = None
    expansion_seconds: float | None = None
    bm25_seconds: float | None = None
    model_seconds: dict[str, float] = field(default_factory=dict)  # a candidate base model's arm -> s/passage


@dataclass(frozen=True)
class Cost:
    hours: float | None
    guide_gain: str
    gain: float  # measured Recall@k minus the base's
    gain_ci: tuple[float, float]
    per_query_ms: float
    compute_seconds: float  # one-off: re-embedding, index building, training
    note: str

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["gain_ci"] = list(self.gain_ci)
        return out


def arm_cost(
    name: str, gain: float, gain_ci: tuple[float, float], rates: Rates, chunks: int, corpus_chunks: int
) -> Cost:
    """The cost of adopting arm `name` (a combination sums its parts). `chunks`: the arm's corpus size in
    chunks (a re-chunking's); `corpus_chunks`: the project's."""
    parts = [_family(part) for part in name.split("+")]
    hours = [GUIDE[p][0] for p in parts]
    per_query = 0.0
    one_off = 0.0
    notes = []
    for part in parts:
        if part == "rerank" and rates.rerank_seconds is not None:
            per_query += rates.rerank_seconds
            notes.append(f"re-ranking {rates.rerank_seconds * 1000:.0f} ms/query")
        elif part == "expansion" and rates.expansion_seconds is not None:
            per_query += rates.expansion_seconds
            notes.append(f"expanding + encoding {rates.expansion_seconds * 1000:.0f} ms/query")
        elif part == "chunking":
            one_off += chunks * rates.passage_seconds
            notes.append(f"re-embedding {chunks:,} chunks {_duration(chunks * rates.passage_seconds)}")
        elif part == "hybrid" and rates.bm25_seconds is not None:
            per_query += rates.bm25_seconds
            notes.append(f"BM25 {rates.bm25_seconds * 1000:.1f} ms/query")
        elif part == "model":
            seconds = corpus_chunks * rates.model_seconds.get(name, rates.passage_seconds)
            one_off += seconds
            notes.append(f"re-embedding {corpus_chunks:,} chunks with it {_duration(seconds)}")
    return Cost(
        None if None in hours else float(sum(h for h in hours if h is not None)),
        " and ".join(GUIDE[p][1] for p in parts),
        gain,
        gain_ci,
        per_query * 1000,
        one_off,
        "; ".join(notes) or "nothing to change",
    )


def fine_tune_cost(
    rates: Rates, train_rows: int, texts_per_row: int, batch_size: int, epochs: int, chunks: int
) -> Cost:
    """The guide's hours plus this machine's estimate: training steps × ~3 forwards of each row's texts, and
    re-embedding the corpus with the tuned model."""
    steps = max(1, math.ceil(train_rows / max(batch_size, 1))) * max(epochs, 1)
    per_step = TRAIN_STEP_FORWARDS * batch_size * texts_per_row * rates.passage_seconds
    train, reindex = steps * per_step, chunks * rates.passage_seconds
    return Cost(
        sum(FINE_TUNE_HOURS) / 2,
        FINE_TUNE_GAIN,
        0.0,
        (0.0, 0.0),
        0.0,
        train + reindex,
        f"{FINE_TUNE_HOURS[0]:.0f}–{FINE_TUNE_HOURS[1]:.0f} h; training ~{_duration(train)} ({steps:,} steps on this "
        f"machine, estimated) + re-embedding {chunks:,} chunks {_duration(reindex)}",
    )


def _family(part: str) -> str:
    return "model" if part.startswith("model:") else family(part)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cost_lines(report: dict[str, Any]) -> list[str]:
    """'rerank: +0.090 Recall@5 [+0.030, +0.150] for ~16 h; re-ranking 38 ms/query', a line per fix and one for
    fine-tuning, from a gate report's JSON (the terminal report and the Gate screen both show these)."""
    k = report["k"]
    lines = []
    for arm in report["arms"]:
        cost = arm.get("cost")
        if not cost or arm["name"] == "base":
            continue
        hours = "hours not priced" if cost["hours"] is None else f"~{cost['hours']:.0f} h"
        low, high = cost["gain_ci"]
        lines.append(
            f"{arm['name']}: {cost['gain']:+.3f} Recall@{k} [{low:+.3f}, {high:+.3f}] for {hours}; {cost['note']} "
            f"(guide: {cost['guide_gain']})"
        )
    fine_tune = report.get("fine_tune_cost")
    if fine_tune:
        lines.append(f"fine-tune: {fine_tune['note']} (guide: {fine_tune['guide_gain']})")
    return lines


def short_cost(cost: dict[str, Any] | None) -> str:
    """'~16 h + 38 ms/q', '~4 h + 2 min once': a table cell."""
    if not cost:
        return ""
    parts = ["?" if cost["hours"] is None else f"~{cost['hours']:.0f} h"]
    if cost["per_query_ms"]:
        parts.append(f"{cost['per_query_ms']:.0f} ms/q")
    if cost["compute_seconds"]:
        parts.append(f"{_duration(cost['compute_seconds'])} once")
    return " + ".join(parts)
