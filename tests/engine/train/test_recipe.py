"""The training recipe: topic-aware batches (every row once, no text twice in a batch, one topic per batch) and the
watched evaluations' time budget."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from engine.train.recipe import TopicBatches, spherical_kmeans, topic_batches
from engine.train.settings import parse_watch
from engine.train.watch import WatchBudget


def _two_topics(n: int = 64, dim: int = 16, seed: int = 0) -> np.ndarray:
    """n unit vectors around two far-apart centres: rows < n/2 on one topic, the rest on the other."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((2, dim))
    centres[0, 0] = centres[1, 1] = 1.0
    vectors = centres[(np.arange(n) >= n // 2).astype(int)] + 0.05 * rng.normal(size=(n, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_kmeans_finds_the_two_topics() -> None:
    labels = spherical_kmeans(_two_topics().astype(np.float32), 2, seed=3)
    assert len(set(labels[:32])) == 1
    assert len(set(labels[32:])) == 1
    assert labels[0] != labels[-1]


def test_topic_batches_cover_every_row_once_and_keep_to_one_topic() -> None:
    clusters = np.array([0] * 32 + [1] * 32)
    texts = [(f"q{i}", f"p{i}") for i in range(64)]
    batches = topic_batches(clusters, texts, batch_size=16, seed=1)
    assert sorted(row for b in batches for row in b) == list(range(64))
    assert all(len(b) == 16 for b in batches)
    assert all(len({int(clusters[r]) for r in b}) == 1 for b in batches)  # 16 divides each topic: pure batches
    assert batches != topic_batches(clusters, texts, batch_size=16, seed=2)  # another epoch, another order
    assert batches == topic_batches(clusters, texts, batch_size=16, seed=1)  # seeded: resume replays it


def test_a_shared_text_never_meets_itself_in_a_batch() -> None:
    # ten queries share one passage (as SciFact claims citing one abstract do): each must sit in its own batch
    clusters = np.zeros(40, dtype=np.int64)
    texts = [(f"q{i}", "shared" if i < 10 else f"p{i}") for i in range(40)]
    batches = topic_batches(clusters, texts, batch_size=8, seed=0)
    assert sorted(row for b in batches for row in b) == list(range(40))
    for batch in batches:
        seen = [t for row in batch for t in texts[row]]
        assert len(seen) == len(set(seen))


def test_the_sampler_factory_pickles_without_the_vectors() -> None:
    # the trainer pickles its arguments (batch_sampler included) into every checkpoint
    factory = TopicBatches(_two_topics(n=640, dim=384), batch_size=32, seed=0)
    assert len(pickle.dumps(factory)) < 640 * 8  # cluster ids only, not 640 x 384 floats


def test_the_sampler_feeds_the_trainer_topic_batches() -> None:
    from datasets import Dataset

    vectors = _two_topics()
    factory = TopicBatches(vectors, batch_size=16, seed=0)
    dataset = Dataset.from_dict({"anchor": [f"q{i}" for i in range(64)], "positive": [f"p{i}" for i in range(64)]})
    sampler = factory(dataset, batch_size=16, drop_last=False, valid_label_columns=None, generator=None, seed=5)
    batches = list(sampler)
    assert len(sampler) == len(batches) == 4
    assert all(len({row < 32 for row in b}) == 1 for b in batches)
    sampler.set_epoch(1)  # the next epoch: a new order, still every row once and one topic per batch
    again = list(sampler)
    assert again != batches
    assert sorted(row for b in again for row in b) == list(range(64))
    assert all(len({row < 32 for row in b}) == 1 for b in again)


@pytest.mark.parametrize(
    ("value", "every"), [("auto", None), ("off", 0), ("every 5", 5), ("Every 12", 12), (" auto ", None)]
)
def test_watch_values(value: str, every: int | None) -> None:
    assert parse_watch(value) == every


@pytest.mark.parametrize("value", ["every", "every 0", "sometimes", "every -2", "5"])
def test_bad_watch_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="auto"):
        parse_watch(value)


def test_auto_watch_spends_at_most_its_share_of_training_time() -> None:
    budget = WatchBudget(every=None, share=0.10)
    budget.estimate(step_seconds=2.0, texts_per_step=64, eval_texts=960)  # forward-only: 2 * 1/3 * 15 = 10 s
    assert budget.eval_seconds == pytest.approx(10.0)
    evaluated = []
    for step in range(1, 201):  # 2 s steps: 400 s of training earns 40 s of evaluations
        if budget.due(step, 200, train_seconds=2.0 * step):
            evaluated.append(step)
            budget.record(10.0)
        assert budget.spent <= 0.10 * 2.0 * step + 1e-9
    assert evaluated == [50, 100, 150, 200]  # spread evenly, the last at the end


def test_a_dearer_evaluation_than_estimated_spaces_the_next_ones_out() -> None:
    budget = WatchBudget(every=None, share=0.10, eval_seconds=1.0)
    assert budget.due(5, 100, train_seconds=10.0)
    budget.record(5.0)  # measured: five times the estimate
    assert not budget.due(6, 100, train_seconds=12.0)
    assert budget.due(100, 100, train_seconds=100.0)


def test_every_n_and_off() -> None:
    every = WatchBudget.from_setting("every 3")
    assert [s for s in range(1, 11) if every.due(s, 10, 0.0)] == [3, 6, 9, 10]
    off = WatchBudget.from_setting("off")
    assert not any(off.due(s, 10, 1e9) for s in range(1, 11))
