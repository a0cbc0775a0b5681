"""Retrieval metrics and bootstrap statistics: pure functions over ranked document ids.

Every metric takes, for one query, ``ranked`` (retrieved document ids, best first) and ``relevant`` (the
relevant document ids; relevance is binary). Metrics are at document level: callers collapse chunks to
documents by best rank before calling. The definitions mirror sentence-transformers'
``InformationRetrievalEvaluator`` (v6.2) exactly, so numbers here and in a training log agree:

- recall@k = |relevant ∩ top-k| / |relevant|
- precision@k = |relevant ∩ top-k| / k (k, not the list length, even when fewer than k were retrieved)
- accuracy@k = 1 if any relevant document is in the top k, else 0 (hit@k)
- mrr@k = 1 / rank of the first relevant document within the top k, else 0
- ndcg@k = DCG@k / IDCG@k, gains 1/0, discount log2(rank + 1), IDCG over min(|relevant|, k) ideal hits
- map@k (average precision) = sum of precision@rank at each relevant rank ≤ k, divided by min(k, |relevant|)

A ranked list should hold each id once; if an id repeats, only its first position counts (later repeats are
dropped before cutting at k, so a document never counts twice).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TypeVar

import numpy as np

Q = TypeVar("Q", bound=Hashable)

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 20, 50, 100)
"""Cut-offs for recall@k, precision@k and accuracy@k in :func:`evaluate_run`."""

_BOOTSTRAP_BLOCK = 2_000_000  # resampled values held in memory at once


def _hits(ranked: Iterable[Hashable], relevant: AbstractSet[Hashable]) -> list[bool]:
    """Relevance flag per rank, with repeated ids dropped (first position wins)."""
    return [doc in relevant for doc in dict.fromkeys(ranked)]


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _n_relevant(relevant: AbstractSet[Hashable]) -> int:
    n = len(relevant)
    if n == 0:
        raise ValueError("the query has no relevant document: the metric is undefined")
    return n


def _recall(hits: list[bool], n_relevant: int, k: int) -> float:
    return sum(hits[:k]) / n_relevant


def _precision(hits: list[bool], k: int) -> float:
    return sum(hits[:k]) / k


def _accuracy(hits: list[bool], k: int) -> float:
    return 1.0 if any(hits[:k]) else 0.0


def _mrr(hits: list[bool], k: int) -> float:
    for i, hit in enumerate(hits[:k]):
        if hit:
            return 1.0 / (i + 1)
    return 0.0


def _dcg(hits: Iterable[bool]) -> float:
    return sum(1.0 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)


def _ndcg(hits: list[bool], n_relevant: int, k: int) -> float:
    return _dcg(hits[:k]) / _dcg([True] * min(n_relevant, k))


def _average_precision(hits: list[bool], n_relevant: int, k: int) -> float:
    found, total = 0, 0.0
    for i, hit in enumerate(hits[:k]):
        if hit:
            found += 1
            total += found / (i + 1)
    return total / min(k, n_relevant)


def recall_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """Share of the relevant documents found in the top k. Raises ValueError when ``relevant`` is empty."""
    _check_k(k)
    rel = set(relevant)
    return _recall(_hits(ranked, rel), _n_relevant(rel), k)


def precision_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """Relevant documents in the top k, divided by k."""
    _check_k(k)
    rel = set(relevant)
    return _precision(_hits(ranked, rel), k)


def accuracy_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """1.0 when at least one relevant document is in the top k (hit@k), else 0.0."""
    _check_k(k)
    rel = set(relevant)
    return _accuracy(_hits(ranked, rel), k)


def mrr_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top k; 0.0 when none is there."""
    _check_k(k)
    rel = set(relevant)
    return _mrr(_hits(ranked, rel), k)


def ndcg_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """Binary-gain nDCG@k with IDCG over min(|relevant|, k). Raises ValueError when ``relevant`` is empty."""
    _check_k(k)
    rel = set(relevant)
    return _ndcg(_hits(ranked, rel), _n_relevant(rel), k)


def average_precision_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """AP@k as sentence-transformers computes map@k: summed precision at each relevant rank ≤ k, over
    min(k, |relevant|). Raises ValueError when ``relevant`` is empty."""
    _check_k(k)
    rel = set(relevant)
    return _average_precision(_hits(ranked, rel), _n_relevant(rel), k)


def first_relevant_rank(ranked: Sequence[Hashable], relevant: Iterable[Hashable]) -> int | None:
    """1-based rank of the first relevant document in the whole list, or None when none was retrieved."""
    hits = _hits(ranked, set(relevant))
    return hits.index(True) + 1 if True in hits else None


def query_metrics(
    ranked: Sequence[Hashable],
    relevant: Iterable[Hashable],
    ks: Sequence[int] = DEFAULT_KS,
    *,
    mrr_k: int = 10,
    ndcg_k: int = 10,
    map_k: int = 100,
) -> dict[str, float]:
    """All metrics of :func:`evaluate_run` for one query (``relevant`` must not be empty)."""
    for k in (*ks, mrr_k, ndcg_k, map_k):
        _check_k(k)
    rel = set(relevant)
    hits, n_rel = _hits(ranked, rel), _n_relevant(rel)
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = _recall(hits, n_rel, k)
    for k in ks:
        out[f"precision@{k}"] = _precision(hits, k)
    for k in ks:
        out[f"accuracy@{k}"] = _accuracy(hits, k)
    out[f"mrr@{mrr_k}"] = _mrr(hits, mrr_k)
    out[f"ndcg@{ndcg_k}"] = _ndcg(hits, n_rel, ndcg_k)
    out[f"map@{map_k}"] = _average_precision(hits, n_rel, map_k)
    return out


def evaluate_run(
    run: Mapping[Q, Sequence[Hashable]],
    qrels: Mapping[Q, Iterable[Hashable]],
    ks: Sequence[int] = DEFAULT_KS,
    *,
    mrr_k: int = 10,
    ndcg_k: int = 10,
    map_k: int = 100,
) -> tuple[dict[str, float], dict[Q, dict[str, float]]]:
    """Score a run against qrels; returns (means over queries, per-query metrics).

    Keys: ``recall@k``, ``precision@k`` and ``accuracy@k`` for each k in ``ks`` (default 1, 3, 5, 10, 20, 50,
    100), plus ``mrr@10``, ``ndcg@10`` and ``map@100`` (cut-offs set by ``mrr_k``, ``ndcg_k``, ``map_k``).

    Queries in ``qrels`` with no relevant document are skipped, as sentence-transformers skips them; run
    entries for queries not in ``qrels`` are ignored; a query in ``qrels`` but absent from ``run`` counts as
    retrieving nothing (all metrics 0). Per-query dicts follow ``qrels`` order. Raises ValueError when no
    query has a relevant document.
    """
    per_query: dict[Q, dict[str, float]] = {
        qid: query_metrics(run.get(qid, ()), rel, ks, mrr_k=mrr_k, ndcg_k=ndcg_k, map_k=map_k)
        for qid, rel in qrels.items()
        if set(rel)
    }
    if not per_query:
        raise ValueError("no query in qrels has a relevant document")
    keys = next(iter(per_query.values())).keys()
    means = {key: float(np.mean([m[key] for m in per_query.values()])) for key in keys}
    return means, per_query


def _as_values(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("need a non-empty 1-D sequence of per-query values")
    return arr


def _bootstrap_means(values: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_samples`` resamples (with replacement, same size), drawn in memory-bounded blocks."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    n = values.size
    block = max(1, _BOOTSTRAP_BLOCK // n)
    parts = []
    for start in range(0, n_samples, block):
        rows = min(block, n_samples - start)
        parts.append(values[rng.integers(0, n, size=(rows, n))].mean(axis=1))
    return np.concatenate(parts)


def bootstrap_ci(
    per_query_values: Sequence[float], n_samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of per-query values (deterministic for a seed)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    values = _as_values(per_query_values)
    means = _bootstrap_means(values, n_samples, np.random.default_rng(seed))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def paired_bootstrap_p(a: Sequence[float], b: Sequence[float], n_samples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value that mean(a - b) differs from 0, by the paired bootstrap test.

    This is the bootstrap hypothesis test of Efron & Tibshirani (1993, §16.4), as used for IR by Sakai (2006):
    the per-query differences d are shifted to mean 0 (the null hypothesis), resampled with replacement
    ``n_samples`` times, and p = (1 + #{|mean(d*)| ≥ |mean(d)|}) / (1 + n_samples), so p is never 0. ``a``
    and ``b`` are the same queries in the same order. Identical inputs give p = 1.
    """
    x, y = _as_values(a), _as_values(b)
    if x.shape != y.shape:
        raise ValueError(f"a and b must pair up: {x.size} vs {y.size} values")
    diffs = x - y
    observed = abs(float(diffs.mean()))
    means = _bootstrap_means(diffs - diffs.mean(), n_samples, np.random.default_rng(seed))
    extreme = int(np.count_nonzero(np.abs(means) >= observed - 1e-12))
    return (1 + extreme) / (1 + n_samples)


def wins_losses(base: Mapping[Q, float], other: Mapping[Q, float], eps: float = 1e-12) -> tuple[list[Q], list[Q]]:
    """Queries where ``other`` beats ``base`` by more than ``eps`` (wins) and trails it by more (losses).

    Both lists follow ``base`` order; every query of ``base`` must be in ``other`` (KeyError otherwise).
    """
    wins = [q for q, value in base.items() if other[q] - value > eps]
    losses = [q for q, value in base.items() if value - other[q] > eps]
    return wins, losses


def simultaneous_cis(
    per_query: Mapping[str, Sequence[float]],
    n_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
) -> dict[str, tuple[float, float]]:
    """Intervals that hold for every arm at once, so the one picked as best keeps its coverage.

    Picking the best of several arms measured on the same queries biases its figure upward (the winner's curse);
    a per-arm interval then covers less than it says. This is the bootstrap max-statistic band (Romano & Wolf
    2005, "Exact and approximate stepdown methods for multiple hypothesis testing", JASA 100:94-108; Efron &
    Tibshirani 1993, ch. 13): resample the queries once per replicate, shared by every arm (the arms stay
    paired), take the largest |resampled mean - mean| over the arms, and widen every mean by that statistic's
    `confidence` quantile. The band is never narrower than any single arm's symmetric interval, and whatever
    the selection rule, the chosen arm's true mean lies in its interval with probability ≥ `confidence`.
    Values are per-query (same queries, same order, in every arm). `bounds` (e.g. (0, 1) for a recall) clips each
    interval to the values a mean can take: the band's common width would otherwise print a recall of 1.167.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    names = list(per_query)
    matrix = np.stack([_as_values(per_query[name]) for name in names])  # arms x queries
    if matrix.shape[1] == 0:
        raise ValueError("no per-query values")
    means = matrix.mean(axis=1)
    rng = np.random.default_rng(seed)
    n = matrix.shape[1]
    block = max(1, _BOOTSTRAP_BLOCK // (n * len(names)))
    worst: list[np.ndarray] = []
    for start in range(0, n_samples, block):
        rows = min(block, n_samples - start)
        picks = rng.integers(0, n, size=(rows, n))
        resampled = matrix[:, picks].mean(axis=2)  # arms x rows
        worst.append(np.abs(resampled - means[:, None]).max(axis=0))
    width = float(np.quantile(np.concatenate(worst), confidence))
    low, high = bounds if bounds is not None else (-np.inf, np.inf)
    return {
        name: (float(max(m - width, low)), float(min(m + width, high))) for name, m in zip(names, means, strict=True)
    }
