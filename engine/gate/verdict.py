"""The guide's rules, applied to measured arms: one table (RULES), tried in order, the first that fires decides.

Source: ../shared/reference/fine-tuning-embeddings.txt — "Run 30 representative queries. If reranking improves
Recall@5 above 80% on domain-specific queries, stop — your retrieval is good enough. If reranking still leaves
Recall@5 below 70% on domain queries after adjusting chunking and query expansion, fine-tuning has a real signal",
and "Minimum 1,000 query-document pairs with hard negatives. 5,000+ for reliable results". Thresholds come from
project.yaml `gate:`. Every interval here is the arms' simultaneous 95% interval (engine.retrieval.metrics.
simultaneous_cis), so picking the best of several arms on the same queries does not flatter the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from engine.config import GateConfig

FIXES = ("rerank", "expansion", "chunking")  # the cheaper fixes the fine-tune rule needs measured first
SELECTION = "simultaneous bootstrap band (max |deviation| over the arms compared, queries resampled jointly)"


@dataclass(frozen=True)
class Rule:
    id: str
    verdict: str
    when: str


# Tried top to bottom; the README prints this table (and a test checks it matches).
RULES: tuple[Rule, ...] = (
    Rule("too_few_queries", "COLLECT_MORE", "fewer than gate.min_queries (30) judged gate queries"),
    Rule("stop", "STOP", "a re-ranking arm's Recall@k is above stop_recall (0.80), its interval's lower bound too"),
    Rule("stop_uncertain", "GREY", "a re-ranking arm is above stop_recall but its interval's lower bound is not"),
    Rule("fast_changing", "STOP", "gate.content is fast_changing: the guide says not to fine-tune such content"),
    Rule("rerank_missing", "INCOMPLETE", "no re-ranking arm ran (none available, or not asked for)"),
    Rule("between", "GREY", "the best arm measured reaches finetune_recall (0.70) but not STOP"),
    Rule("weak_reranker", "INCOMPLETE", "below 0.70, but the re-ranker loses to the plain dense order"),
    Rule("fixes_missing", "INCOMPLETE", "below 0.70, but expansion or chunking was not measured"),
    Rule("fine_tune_uncertain", "GREY", "the best fix is below 0.70 but its interval's upper bound is not"),
    Rule(
        "too_few_pairs",
        "COLLECT_MORE",
        "below 0.70 for sure, but fewer than min_pairs (1,000) pairs with hard negatives",
    ),
    Rule("fine_tune", "FINE_TUNE", "below 0.70 for sure after every fix, with ≥ 1,000 pairs with hard negatives"),
)
RULE_BY_ID = {rule.id: rule for rule in RULES}


class ArmLike(Protocol):
    name: str
    metrics: dict[str, float]
    wins: list[str]
    losses: list[str]


@dataclass
class Decision:
    verdict: str
    rule: str
    reasons: list[str] = field(default_factory=list)


def family(name: str) -> str:
    """Which fix an arm measures: 'rerank' for any re-ranked arm, else its first word (chunking:para → chunking)."""
    return "rerank" if "rerank" in name else name.split(":")[0].split("+")[0]


def decide(
    arms: list[ArmLike],
    intervals: Mapping[str, tuple[float, float]],
    skipped: Mapping[str, str],
    gate: GateConfig,
    pairs_with_negatives: int,
    n_queries: int,
) -> Decision:
    """The verdict on measured arms. `intervals`: each arm's simultaneous interval for Recall@k; `skipped`: arms
    that did not run, with why; `pairs_with_negatives`: training pairs whose query has a hard negative."""
    checks = (_too_few_queries, _stop, _fast_changing, _rerank_missing, _between, _weak_reranker, _fixes_missing)
    context = _Context(arms, intervals, skipped, gate, pairs_with_negatives, n_queries)
    for check in checks:
        decision = check(context)
        if decision is not None:
            return decision
    return _below(context)


@dataclass
class _Context:
    arms: list[ArmLike]
    intervals: Mapping[str, tuple[float, float]]
    skipped: Mapping[str, str]
    gate: GateConfig
    pairs: int
    n_queries: int

    @property
    def key(self) -> str:
        return f"recall@{self.gate.k}"

    def recall(self, arm: ArmLike) -> float:
        return arm.metrics[self.key]

    def best(self, arms: list[ArmLike]) -> ArmLike:
        return max(arms, key=self.recall)

    def describe(self, arm: ArmLike) -> str:
        low, high = self.intervals[arm.name]
        return f"{arm.name}: Recall@{self.gate.k} {self.recall(arm):.3f} [{low:.3f}, {high:.3f}]"


def _fired(rule: str, *reasons: str) -> Decision:
    return Decision(RULE_BY_ID[rule].verdict, rule, list(reasons))


def _too_few_queries(c: _Context) -> Decision | None:
    if c.n_queries >= c.gate.min_queries:
        return None
    return _fired(
        "too_few_queries",
        f"only {c.n_queries} judged gate queries: the guide asks for {c.gate.min_queries} representative ones; "
        f"add {c.gate.min_queries - c.n_queries} more (`embtune import DIR --queries FILE --tag gate`) and re-run",
    )


def _stop(c: _Context) -> Decision | None:
    above = [a for a in c.arms if family(a.name) == "rerank" and c.recall(a) > c.gate.stop_recall]
    if not above:
        return None
    best = c.best(above)
    low = c.intervals[best.name][0]
    if low > c.gate.stop_recall:
        return _fired(
            "stop",
            f"re-ranking lifts Recall@{c.gate.k} above {c.gate.stop_recall:.2f} ({c.describe(best)}): retrieval is "
            f"good enough; ship {best.name} instead of fine-tuning",
        )
    return _fired(
        "stop_uncertain",
        f"{c.describe(best)} is above {c.gate.stop_recall:.2f}, but the interval's lower bound {low:.3f} is not: "
        "more gate queries would settle whether re-ranking is enough",
    )


def _fast_changing(c: _Context) -> Decision | None:
    if c.gate.content != "fast_changing":
        return None
    best = c.best(c.arms)
    return _fired(
        "fast_changing",
        "project.yaml says the content changes fast (gate.content: fast_changing): a tuned model goes stale faster "
        "than it can be retrained, so the guide advises against fine-tuning",
        f"keep the cheap fixes current instead: the best measured is {c.describe(best)}",
    )


def _rerank_missing(c: _Context) -> Decision | None:
    if any(family(a.name) == "rerank" for a in c.arms):
        return None
    why = c.skipped.get("rerank", "not asked for (--arms)")
    best = c.best(c.arms)
    return _fired(
        "rerank_missing",
        f"neither the stop rule (re-ranking above {c.gate.stop_recall:.2f}) nor the fine-tune rule (below "
        f"{c.gate.finetune_recall:.2f} after re-ranking) can be applied: the re-ranking arm did not run — {why}",
        f"best arm that ran: {c.describe(best)}",
    )


def _between(c: _Context) -> Decision | None:
    best = c.best(c.arms)
    if c.recall(best) < c.gate.finetune_recall:
        return None
    reasons = [
        f"best arm {c.describe(best)} is between {c.gate.finetune_recall:.2f} and {c.gate.stop_recall:.2f} (or "
        f"above it without re-ranking): the cheaper fixes help but do not settle it; adopt {best.name}, try a "
        "stronger cross-encoder or more expansions, and re-run the gate"
    ]
    weak = _weak_reason(c)
    return _fired("between", *reasons, *([weak] if weak else []))


def _weak_reranker(c: _Context) -> Decision | None:
    weak = _weak_reason(c)
    return _fired("weak_reranker", weak) if weak else None


def _weak_reason(c: _Context) -> str | None:
    """Why the re-ranking arm measures a weak cross-encoder rather than re-ranking, or None.

    A re-ranker that loses at least twice as many queries as it wins against the plain dense order, and scores
    lower, is not evidence that re-ranking fails: a stronger cross-encoder may still settle the question."""
    by_name = {a.name: a for a in c.arms}
    rerank, base = by_name.get("rerank"), by_name.get("base")
    if rerank is None or base is None:
        return None
    wins, losses = len(rerank.wins), len(rerank.losses)
    if c.recall(rerank) >= c.recall(base) or losses < max(3, 2 * wins):
        return None
    return (
        f"the re-ranker is weaker than no re-ranking: it loses {losses} queries and wins {wins} against the "
        f"base order ({c.key} {c.recall(rerank):.3f} vs {c.recall(base):.3f}), so it measures this "
        "cross-encoder, not re-ranking; set 'reranker:' in project.yaml to a stronger local cross-encoder or "
        "train longer (`embtune reranker train DIR --epochs 3`) and re-run the gate"
    )


def _fixes_missing(c: _Context) -> Decision | None:
    measured = {family(a.name) for a in c.arms}
    missing = [f for f in FIXES if f not in measured]
    if not missing:
        return None
    return _fired(
        "fixes_missing",
        f"every arm that ran stays below {c.gate.finetune_recall:.2f} (best {c.describe(c.best(c.arms))}), but "
        "the guide fine-tunes only after chunking and query expansion were adjusted too: "
        + "; ".join(f"{m} — {c.skipped.get(m, 'not asked for (--arms)')}" for m in missing),
    )


def _below(c: _Context) -> Decision:
    fixes = [a for a in c.arms if a.name != "base"]
    best = c.best(fixes)
    high = c.intervals[best.name][1]
    if high >= c.gate.finetune_recall:
        return _fired(
            "fine_tune_uncertain",
            f"the best fix {c.describe(best)} is below {c.gate.finetune_recall:.2f}, but its interval's upper "
            f"bound {high:.3f} is not: more gate queries would settle whether fine-tuning has a real signal",
        )
    signal = (
        f"even the best cheap fix ({c.describe(best)}) stays below {c.gate.finetune_recall:.2f}, interval "
        "included: fine-tuning has a real signal"
    )
    if c.pairs < c.gate.min_pairs:
        return _fired(
            "too_few_pairs",
            signal,
            f"but only {c.pairs:,} training pairs have hard negatives, fewer than the guide's {c.gate.min_pairs:,}: "
            "collect more pairs (and run `embtune mine`) before fine-tuning",
        )
    size = (
        f"{c.pairs:,} training pairs with hard negatives (≥ {c.gate.reliable_pairs:,}): reliable"
        if c.pairs >= c.gate.reliable_pairs
        else f"{c.pairs:,} training pairs with hard negatives: enough to start (≥ {c.gate.min_pairs:,}); results "
        f"become reliable from {c.gate.reliable_pairs:,}"
    )
    return _fired("fine_tune", signal, size)


def hints(arms: list[ArmLike], k: int, gate_queries: list[str]) -> list[str]:
    """The guide's diagnosis table, each row shown only when the measurements point at it (`gate_queries`: the
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
    return out


def _multilingual(texts: list[str]) -> bool:
    non_ascii = sum(1 for t in texts if sum(ord(c) > 127 and c.isalpha() for c in t) > len(t) * 0.2)
    return bool(texts) and non_ascii / len(texts) > 0.1
