"""The guide's rules, applied to measured arms: STOP, FINE_TUNE, GREY, COLLECT_MORE or INCOMPLETE.

Rules (../shared/reference/fine-tuning-embeddings.txt, thresholds from project.yaml `gate:`):
- any cheap arm (re-ranking alone or with the other fixes) at or above stop_recall -> STOP: retrieval is good enough;
- every arm, re-ranking and expansion and re-chunking included, below finetune_recall -> fine-tuning has a real
  signal: FINE_TUNE with at least min_pairs training pairs (flagged reliable from reliable_pairs), else COLLECT_MORE;
- in between -> GREY;
- a re-ranker that scores below the plain dense order and loses at least twice the queries it wins measures a weak
  cross-encoder, not re-ranking: the fine-tune rule is not applied on it (INCOMPLETE, saying how to get a better one);
- a rule that needs an arm which could not run is not applied: INCOMPLETE, saying how to supply the arm.
"""

from __future__ import annotations

from typing import Protocol

from engine.config import GateConfig

NEEDED_FOR_FINE_TUNE = ("rerank", "expansion", "chunking")


class ArmLike(Protocol):
    name: str
    metrics: dict[str, float]
    recall_ci: tuple[float, float]
    wins: list[str]
    losses: list[str]


def decide(
    arms: list[ArmLike], skipped: dict[str, str], gate: GateConfig, pairs: int, n_queries: int
) -> tuple[str, list[str]]:
    key = f"recall@{gate.k}"
    best = max(arms, key=lambda a: a.metrics[key])
    reasons = _sample_size_warnings(n_queries, gate)
    stop = [a for a in arms if a.metrics[key] >= gate.stop_recall]
    if stop:
        winner = max(stop, key=lambda a: a.metrics[key])
        reasons.append(
            f"{winner.name} reaches Recall@{gate.k} {winner.metrics[key]:.3f} ≥ {gate.stop_recall:.2f}: "
            f"retrieval is good enough; ship {winner.name} instead of fine-tuning"
        )
        reasons += _interval_note(winner, gate.stop_recall, gate.k, "stop")
        return "STOP", reasons
    if "rerank" in skipped:
        reasons.append(
            f"cannot apply the stop rule (re-ranking ≥ {gate.stop_recall:.2f}) nor the fine-tune rule "
            f"(< {gate.finetune_recall:.2f} even after re-ranking): the re-ranking arm could not run — "
            f"{skipped['rerank']}"
        )
        reasons.append(f"best arm that ran: {best.name}, Recall@{gate.k} {best.metrics[key]:.3f}")
        return "INCOMPLETE", reasons
    weak = _weak_reranker(arms, key)
    if weak:
        reasons.append(weak)
    if best.metrics[key] < gate.finetune_recall:
        missing = {**skipped, "rerank": weak} if weak else skipped
        return _below_finetune(best, missing, gate, pairs, reasons)
    reasons.append(
        f"best arm {best.name} reaches Recall@{gate.k} {best.metrics[key]:.3f}, between "
        f"{gate.finetune_recall:.2f} and {gate.stop_recall:.2f}: the cheaper fixes help but do not "
        f"settle it; adopt {best.name}, try a stronger cross-encoder or more expansions, and re-run the "
        "gate"
    )
    reasons += _interval_note(best, gate.stop_recall, gate.k, "stop")
    reasons += _interval_note(best, gate.finetune_recall, gate.k, "fine-tune")
    return "GREY", reasons


def _below_finetune(
    best: ArmLike, skipped: dict[str, str], gate: GateConfig, pairs: int, reasons: list[str]
) -> tuple[str, list[str]]:
    key = f"recall@{gate.k}"
    missing = [name for name in NEEDED_FOR_FINE_TUNE if name in skipped]
    if missing:
        reasons.append(
            f"every arm that ran stays below {gate.finetune_recall:.2f} (best {best.name}: "
            f"{best.metrics[key]:.3f}), but the fine-tune rule needs these cheaper fixes measured first: "
            + "; ".join(f"{m} — {skipped[m]}" for m in missing)
        )
        return "INCOMPLETE", reasons
    reasons.append(
        f"even the best cheap fix ({best.name}) reaches only Recall@{gate.k} {best.metrics[key]:.3f} "
        f"< {gate.finetune_recall:.2f}: fine-tuning has a real signal"
    )
    reasons += _interval_note(best, gate.finetune_recall, gate.k, "fine-tune")
    if pairs < gate.min_pairs:
        reasons.append(
            f"but the project holds {pairs:,} training pairs, fewer than {gate.min_pairs:,}: collect more first"
        )
        return "COLLECT_MORE", reasons
    if pairs >= gate.reliable_pairs:
        reasons.append(f"{pairs:,} training pairs (≥ {gate.reliable_pairs:,}): reliable")
    else:
        reasons.append(
            f"{pairs:,} training pairs: enough to start (≥ {gate.min_pairs:,}); results become reliable "
            f"from {gate.reliable_pairs:,}"
        )
    return "FINE_TUNE", reasons


def _weak_reranker(arms: list[ArmLike], key: str) -> str | None:
    """Why the re-ranking arm measures a weak cross-encoder rather than re-ranking, or None.

    A re-ranker that loses at least twice as many queries as it wins against the plain dense order, and scores
    lower, is not evidence that re-ranking fails: a stronger cross-encoder may still settle the question. So the
    fine-tune rule, which needs re-ranking measured first, is not applied on its figure.
    """
    by_name = {a.name: a for a in arms}
    rerank, base = by_name.get("rerank"), by_name.get("base")
    if rerank is None or base is None:
        return None
    wins, losses = len(rerank.wins), len(rerank.losses)
    if rerank.metrics[key] >= base.metrics[key] or losses < max(3, 2 * wins):
        return None
    return (
        f"the re-ranker is weaker than no re-ranking: it loses {losses} queries and wins {wins} against the "
        f"base order ({key} {rerank.metrics[key]:.3f} vs {base.metrics[key]:.3f}), so it measures this "
        "cross-encoder, not re-ranking; set 'reranker:' in project.yaml to a stronger local cross-encoder or "
        "train longer (`embtune reranker train DIR --epochs 3`) and re-run the gate"
    )


def _sample_size_warnings(n_queries: int, gate: GateConfig) -> list[str]:
    if n_queries >= gate.min_queries:
        return []
    return [
        f"only {n_queries} gate queries (the guide asks for ~{gate.min_queries}+ representative ones): "
        f"the figures below are noisy"
    ]


def _interval_note(arm: ArmLike, threshold: float, k: int, rule: str) -> list[str]:
    low, high = arm.recall_ci
    if low < threshold <= high:
        return [
            f"{arm.name}'s 95% interval for Recall@{k} [{low:.3f}, {high:.3f}] spans the {rule} threshold "
            f"{threshold:.2f}: more gate queries would settle it"
        ]
    return []


def hints(arms: list[ArmLike], k: int, gate_queries: list[str]) -> list[str]:
    """The guide's diagnosis table, each row shown when the measurements point at it (`gate_queries`: the
    texts of the judged gate queries, passed in so this module stays pure)."""
    key = f"recall@{k}"
    by_name = {a.name: a for a in arms}
    base = by_name["base"]
    out = []
    rerank = by_name.get("rerank")
    if rerank and rerank.metrics[key] - base.metrics[key] >= 0.05:
        out.append(
            f"Domain jargon misses: re-ranking lifts Recall@{k} by "
            f"{rerank.metrics[key] - base.metrics[key]:+.3f}; the guide says re-rank first and fine-tune only "
            f"if re-ranked Recall@5 stays below 70%"
        )
    expansion = by_name.get("expansion")
    if expansion and len(expansion.wins) > len(expansion.losses):
        out.append(
            f"Internal acronyms: query expansion wins {len(expansion.wins)} queries and loses "
            f"{len(expansion.losses)}; expand acronyms at query time before paying to retrain"
        )
    if base.metrics.get("recall@10", 0) - base.metrics.get("recall@1", 0) >= 0.3:
        out.append(
            f"Low precision at the top: the base finds relevant documents by rank 10 "
            f"({base.metrics['recall@10']:.2f}) but rarely at rank 1 ({base.metrics['recall@1']:.2f}); "
            "that is a re-ranking problem, not an embedding-space one"
        )
    if _multilingual(gate_queries):
        out.append(
            "Multilingual terminology: try bge-m3 or multilingual-e5 as base_model; fine-tune them if the "
            "terminology is domain-specific"
        )
    out.append(
        "Rapidly changing terminology (new products, codes, regulations every few months): don't fine-tune; "
        "keep expansions and the re-ranker current instead"
    )
    return out


def _multilingual(texts: list[str]) -> bool:
    non_ascii = sum(1 for t in texts if sum(ord(c) > 127 and c.isalpha() for c in t) > len(t) * 0.2)
    return bool(texts) and non_ascii / len(texts) > 0.1
