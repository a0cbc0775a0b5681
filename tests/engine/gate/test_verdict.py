"""The guide's rules on constructed arm results: each verdict, the interval notes, and refusing to pass silently."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.config import GateConfig
from engine.gate.verdict import decide

GATE = GateConfig()


@dataclass
class FakeArm:
    name: str
    recall: float
    ci: tuple[float, float] | None = None
    wins: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float]:
        return {"recall@5": self.recall, "recall@1": self.recall / 2, "recall@10": self.recall}

    @property
    def recall_ci(self) -> tuple[float, float]:
        return self.ci or (self.recall - 0.01, self.recall + 0.01)


def arms(base: float, rerank: float, expansion: float = 0.0, chunking: float = 0.0) -> list[FakeArm]:
    return [
        FakeArm("base", base),
        FakeArm("rerank", rerank),
        FakeArm("expansion", expansion or base),
        FakeArm("chunking:paragraph", chunking or base),
    ]


def test_reranking_above_stop_threshold_stops() -> None:
    verdict, reasons = decide(arms(0.6, 0.85), {}, GATE, pairs=5000, n_queries=40)
    assert verdict == "STOP"
    assert "rerank reaches Recall@5 0.850 ≥ 0.80" in reasons[0]


def test_exactly_at_threshold_stops() -> None:
    assert decide(arms(0.6, 0.80), {}, GATE, 5000, 40)[0] == "STOP"


def test_all_below_finetune_with_enough_pairs_fine_tunes() -> None:
    verdict, reasons = decide(arms(0.4, 0.6, 0.5, 0.55), {}, GATE, pairs=1200, n_queries=40)
    assert verdict == "FINE_TUNE"
    assert any("real signal" in r for r in reasons)
    assert any("reliable from 5,000" in r for r in reasons)
    assert decide(arms(0.4, 0.6), {}, GATE, pairs=6000, n_queries=40)[1][-1].endswith("reliable")


def test_too_few_pairs_collects_more() -> None:
    verdict, reasons = decide(arms(0.4, 0.6), {}, GATE, pairs=999, n_queries=40)
    assert verdict == "COLLECT_MORE"
    assert "999 training pairs, fewer than 1,000" in reasons[-1]


def test_between_thresholds_is_grey() -> None:
    assert decide(arms(0.5, 0.75), {}, GATE, 5000, 40)[0] == "GREY"


def test_missing_reranker_never_passes_silently() -> None:
    only = [FakeArm("base", 0.5), FakeArm("expansion", 0.55)]
    verdict, reasons = decide(only, {"rerank": "set reranker: in project.yaml"}, GATE, 5000, 40)
    assert verdict == "INCOMPLETE"
    assert "cannot apply the stop rule" in reasons[0]
    assert "set reranker" in reasons[0]


def test_missing_expansion_blocks_fine_tune_but_not_stop() -> None:
    two = [FakeArm("base", 0.4), FakeArm("rerank", 0.6), FakeArm("chunking:p", 0.5)]
    verdict, reasons = decide(two, {"expansion": "no synonyms file"}, GATE, 5000, 40)
    assert verdict == "INCOMPLETE"
    assert "expansion — no synonyms file" in reasons[0]
    assert decide([FakeArm("base", 0.9), FakeArm("rerank", 0.95)], {"expansion": "x"}, GATE, 0, 40)[0] == "STOP"


def test_interval_spanning_a_threshold_is_said() -> None:
    wide = [FakeArm("base", 0.5), FakeArm("rerank", 0.82, ci=(0.74, 0.9))]
    _, reasons = decide(wide, {}, GATE, 5000, 40)
    assert any("[0.740, 0.900] spans the stop threshold 0.80" in r for r in reasons)


def test_few_gate_queries_warn() -> None:
    _, reasons = decide(arms(0.5, 0.9), {}, GATE, 5000, n_queries=12)
    assert reasons[0].startswith("only 12 gate queries")


def test_a_reranker_weaker_than_the_base_order_does_not_license_fine_tuning() -> None:
    weak = [
        FakeArm("base", 0.6),
        FakeArm("rerank", 0.3, wins=["q1"], losses=[f"q{i}" for i in range(2, 12)]),
        FakeArm("expansion", 0.62),
        FakeArm("chunking:paragraph", 0.61),
    ]
    verdict, reasons = decide(weak, {}, GATE, pairs=5000, n_queries=40)
    assert verdict == "INCOMPLETE"
    assert any("loses 10 queries and wins 1" in r and "stronger local cross-encoder" in r for r in reasons)


def test_a_reranker_that_loses_a_few_queries_still_counts() -> None:
    mixed = [
        FakeArm("base", 0.6),
        FakeArm("rerank", 0.55, wins=["q1", "q2"], losses=["q3", "q4", "q5"]),
        FakeArm("expansion", 0.62),
        FakeArm("chunking:paragraph", 0.61),
    ]
    assert decide(mixed, {}, GATE, pairs=5000, n_queries=40)[0] == "FINE_TUNE"


def test_a_weak_reranker_is_named_in_a_grey_verdict_too() -> None:
    grey = [
        FakeArm("base", 0.72),
        FakeArm("rerank", 0.3, losses=["q1", "q2", "q3"]),
        FakeArm("expansion", 0.75),
        FakeArm("chunking:paragraph", 0.7),
    ]
    verdict, reasons = decide(grey, {}, GATE, pairs=5000, n_queries=40)
    assert verdict == "GREY"
    assert any("weaker than no re-ranking" in r for r in reasons)
