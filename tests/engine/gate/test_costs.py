"""Pricing the fixes: the guide's hours, measured latencies and one-off compute, combinations summed."""

from __future__ import annotations

import pytest

from engine.gate.costs import Rates, arm_cost, fine_tune_cost

RATES = Rates(
    passage_seconds=0.02, query_seconds=0.004, rerank_seconds=0.038, expansion_seconds=0.005, bm25_seconds=0.001
)


def test_reranking_costs_the_guides_16_hours_and_its_measured_latency() -> None:
    cost = arm_cost("rerank", 0.09, (0.03, 0.15), RATES, chunks=1000, corpus_chunks=1000)
    assert (cost.hours, cost.guide_gain) == (16.0, "+15–30% precision")
    assert cost.per_query_ms == pytest.approx(38.0)
    assert cost.compute_seconds == 0.0  # the corpus is not re-embedded
    assert "re-ranking 38 ms/query" in cost.note
    assert cost.to_json()["gain_ci"] == [0.03, 0.15]


def test_chunking_costs_re_embedding_its_own_chunks() -> None:
    cost = arm_cost("chunking:fixed64", 0.02, (-0.01, 0.05), RATES, chunks=3000, corpus_chunks=1000)
    assert cost.hours == 4.0
    assert cost.compute_seconds == pytest.approx(60.0)
    assert "re-embedding 3,000 chunks 60 s" in cost.note


def test_a_combination_sums_its_parts() -> None:
    cost = arm_cost("chunking:fixed64+rerank", 0.1, (0.0, 0.2), RATES, chunks=3000, corpus_chunks=1000)
    assert cost.hours == 20.0
    assert cost.per_query_ms == pytest.approx(38.0)
    assert cost.compute_seconds == pytest.approx(60.0)
    both = arm_cost("expansion+rerank", 0.1, (0.0, 0.2), RATES, chunks=1000, corpus_chunks=1000)
    assert both.hours == 24.0
    assert both.per_query_ms == pytest.approx(43.0)


def test_arms_the_guide_does_not_price_say_so() -> None:
    hybrid = arm_cost("hybrid", 0.05, (0.0, 0.1), RATES, chunks=1000, corpus_chunks=1000)
    assert hybrid.hours is None
    assert hybrid.guide_gain == "not priced by the guide"
    assert arm_cost("base", 0.0, (0.0, 0.0), RATES, 1000, 1000).hours == 0.0


def test_fine_tuning_costs_its_hours_training_and_a_reindex() -> None:
    cost = fine_tune_cost(RATES, train_rows=1000, texts_per_row=3, batch_size=32, epochs=1, chunks=5000)
    steps = 32  # ceil(1000 / 32)
    training = steps * 3.0 * 32 * 3 * 0.02
    assert cost.hours == 35.0
    assert cost.compute_seconds == pytest.approx(training + 5000 * 0.02)
    assert "30–40 h" in cost.note
    assert "32 steps" in cost.note
