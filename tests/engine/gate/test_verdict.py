"""The guide's rules on constructed arm results: every rule of RULES fires where it should and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.config import GateConfig
from engine.gate.verdict import RULES, Decision, decide, family, hints

GATE = GateConfig()


@dataclass
class FakeArm:
    name: str
    recall: float
    wins: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float]:
        return {"recall@5": self.recall, "recall@1": self.recall / 2, "recall@10": self.recall}


def all_fixes(base: float, rerank: float, expansion: float | None = None, chunking: float | None = None) -> list:
    return [
        FakeArm("base", base),
        FakeArm("rerank", rerank),
        FakeArm("expansion", base if expansion is None else expansion),
        FakeArm("chunking:paragraph", base if chunking is None else chunking),
    ]


def run(
    arms: list[FakeArm],
    *,
    width: float = 0.02,
    intervals: dict[str, tuple[float, float]] | None = None,
    skipped: dict[str, str] | None = None,
    pairs: int = 5000,
    n_queries: int = 40,
) -> Decision:
    bands = {a.name: (a.recall - width, a.recall + width) for a in arms} | (intervals or {})
    return decide(arms, bands, skipped or {}, GATE, pairs, n_queries)


def test_reranking_above_the_stop_threshold_with_its_interval_stops() -> None:
    decision = run(all_fixes(0.6, 0.86))
    assert (decision.verdict, decision.rule) == ("STOP", "stop")
    assert "re-ranking lifts Recall@5 above 0.80" in decision.reasons[0]


def test_exactly_at_the_stop_threshold_is_not_above_it() -> None:
    assert run(all_fixes(0.6, 0.80)).verdict != "STOP"


def test_stop_needs_the_lower_bound_above_too() -> None:
    decision = run(all_fixes(0.6, 0.83), intervals={"rerank": (0.76, 0.9)})
    assert (decision.verdict, decision.rule) == ("GREY", "stop_uncertain")
    assert "lower bound 0.760" in decision.reasons[0]


@pytest.mark.parametrize("arm", ["base", "hybrid", "expansion", "chunking:paragraph"])
def test_only_a_reranking_arm_can_stop(arm: str) -> None:
    arms = [FakeArm("rerank", 0.6), FakeArm("expansion", 0.5), FakeArm("chunking:paragraph", 0.5)]
    arms = [a for a in arms if a.name != arm] + [FakeArm(arm, 0.9)]
    if arm != "base":
        arms.append(FakeArm("base", 0.5))
    assert run(arms).verdict != "STOP"


def test_reranking_on_top_of_other_fixes_counts_as_reranking() -> None:
    arms = [*all_fixes(0.6, 0.7), FakeArm("expansion+rerank", 0.9)]
    assert run(arms).rule == "stop"
    assert family("chunking:BEST+rerank") == "rerank"
    assert family("chunking:paragraph") == "chunking"


def test_too_few_queries_collects_more_whatever_the_recall() -> None:
    decision = run(all_fixes(0.3, 0.5), n_queries=5)
    assert (decision.verdict, decision.rule) == ("COLLECT_MORE", "too_few_queries")
    assert "add 25 more" in decision.reasons[0]
    assert run(all_fixes(0.6, 0.95), n_queries=29).rule == "too_few_queries"


def test_base_and_rerank_alone_never_fine_tune() -> None:
    """The issue's probe: decide([base .5, rerank .6], skipped={}, pairs=1200, n_queries=40) said FINE_TUNE."""
    decision = run([FakeArm("base", 0.5), FakeArm("rerank", 0.6)], pairs=1200)
    assert (decision.verdict, decision.rule) == ("INCOMPLETE", "fixes_missing")
    assert "expansion — not asked for" in decision.reasons[0]


def test_a_skipped_fix_says_why() -> None:
    arms = [FakeArm("base", 0.4), FakeArm("rerank", 0.6), FakeArm("chunking:p", 0.5)]
    decision = run(arms, skipped={"expansion": "no synonyms file"})
    assert decision.rule == "fixes_missing"
    assert "expansion — no synonyms file" in decision.reasons[0]


def test_without_reranking_no_rule_applies() -> None:
    decision = run([FakeArm("base", 0.5), FakeArm("expansion", 0.55)], skipped={"rerank": "set reranker:"})
    assert (decision.verdict, decision.rule) == ("INCOMPLETE", "rerank_missing")
    assert "set reranker:" in decision.reasons[0]


def test_below_finetune_for_sure_with_enough_pairs_fine_tunes() -> None:
    decision = run(all_fixes(0.4, 0.6, 0.5, 0.55), pairs=1200)
    assert (decision.verdict, decision.rule) == ("FINE_TUNE", "fine_tune")
    assert "real signal" in decision.reasons[0]
    assert "reliable from 5,000" in decision.reasons[1]
    assert run(all_fixes(0.4, 0.6), pairs=6000).reasons[-1].endswith("reliable")


def test_the_upper_bound_reaching_finetune_is_grey() -> None:
    decision = run(all_fixes(0.4, 0.66), intervals={"rerank": (0.58, 0.74)})
    assert (decision.verdict, decision.rule) == ("GREY", "fine_tune_uncertain")
    assert "upper bound 0.740" in decision.reasons[0]


def test_too_few_pairs_with_hard_negatives_never_fine_tunes() -> None:
    decision = run(all_fixes(0.3, 0.4), pairs=999)
    assert (decision.verdict, decision.rule) == ("COLLECT_MORE", "too_few_pairs")
    assert "only 999 training pairs have hard negatives" in decision.reasons[-1]


def test_between_thresholds_is_grey() -> None:
    assert run(all_fixes(0.5, 0.75)).rule == "between"
    assert run(all_fixes(0.5, 0.6, expansion=0.72)).rule == "between"  # the best measured arm decides


def test_a_reranker_weaker_than_the_base_order_does_not_license_fine_tuning() -> None:
    weak = [
        FakeArm("base", 0.6),
        FakeArm("rerank", 0.3, wins=["q1"], losses=[f"q{i}" for i in range(2, 12)]),
        FakeArm("expansion", 0.62),
        FakeArm("chunking:paragraph", 0.61),
    ]
    decision = run(weak)
    assert (decision.verdict, decision.rule) == ("INCOMPLETE", "weak_reranker")
    assert "loses 10 queries and wins 1" in decision.reasons[0]


def test_a_reranker_that_loses_a_few_queries_still_counts() -> None:
    mixed = [
        FakeArm("base", 0.6),
        FakeArm("rerank", 0.55, wins=["q1", "q2"], losses=["q3", "q4", "q5"]),
        FakeArm("expansion", 0.62),
        FakeArm("chunking:paragraph", 0.61),
    ]
    assert run(mixed).rule == "fine_tune"


def test_a_weak_reranker_is_named_in_a_grey_verdict_too() -> None:
    grey = [
        FakeArm("base", 0.72),
        FakeArm("rerank", 0.3, losses=["q1", "q2", "q3"]),
        FakeArm("expansion", 0.75),
        FakeArm("chunking:paragraph", 0.7),
    ]
    decision = run(grey)
    assert decision.rule == "between"
    assert any("weaker than no re-ranking" in r for r in decision.reasons)


def test_fast_changing_content_never_fine_tunes() -> None:
    from dataclasses import replace

    fast = replace(GATE, content="fast_changing")
    arms = all_fixes(0.3, 0.4)
    bands = {a.name: (a.recall - 0.02, a.recall + 0.02) for a in arms}
    decision = decide(arms, bands, {}, fast, 5000, 40)
    assert (decision.verdict, decision.rule) == ("STOP", "fast_changing")
    assert "goes stale" in decision.reasons[0]
    assert decide(all_fixes(0.6, 0.9), bands | {"rerank": (0.85, 0.95)}, {}, fast, 5000, 40).rule == "stop"


def test_every_rule_in_the_table_is_reached_by_a_test_above() -> None:
    from dataclasses import replace

    fast = replace(GATE, content="fast_changing")
    fast_arms = all_fixes(0.3, 0.4)
    reached = {
        decide(fast_arms, {a.name: (0.2, 0.5) for a in fast_arms}, {}, fast, 5000, 40).rule,
        run(all_fixes(0.6, 0.86)).rule,
        run(all_fixes(0.6, 0.83), intervals={"rerank": (0.76, 0.9)}).rule,
        run(all_fixes(0.3, 0.5), n_queries=5).rule,
        run([FakeArm("base", 0.5), FakeArm("expansion", 0.55)]).rule,
        run(all_fixes(0.5, 0.75)).rule,
        run([FakeArm("base", 0.6), FakeArm("rerank", 0.3, losses=["a", "b", "c"]), *all_fixes(0.6, 0.6)[2:]]).rule,
        run([FakeArm("base", 0.5), FakeArm("rerank", 0.6)]).rule,
        run(all_fixes(0.4, 0.66), intervals={"rerank": (0.58, 0.74)}).rule,
        run(all_fixes(0.3, 0.4), pairs=999).rule,
        run(all_fixes(0.4, 0.6)).rule,
    }
    assert reached == {rule.id for rule in RULES}


def test_the_readme_prints_the_rules_table() -> None:
    from pathlib import Path

    readme = Path(__file__).resolve().parents[3].joinpath("README.md").read_text()
    for rule in RULES:
        assert f"| `{rule.id}` | {rule.verdict} | {rule.when} |" in readme, rule.id


def test_hints_appear_only_when_measurements_point_at_them() -> None:
    quiet = [FakeArm("base", 0.5), FakeArm("rerank", 0.52), FakeArm("expansion", 0.5)]
    assert hints(quiet, 5, ["an english question"]) == []
    loud = [FakeArm("base", 0.5), FakeArm("rerank", 0.7), FakeArm("expansion", 0.55, wins=["q1"])]
    said = hints(loud, 5, ["an english question"])
    assert any(h.startswith("Domain jargon misses") for h in said)
    assert any(h.startswith("Internal acronyms") for h in said)
