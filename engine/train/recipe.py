"""embtune's training recipe beyond the plain script: which in-batch loss terms, and how batches are composed.

Every lever costs no extra forward pass per step, which matters: on a CPU or a small GPU a recipe that doubles the
step (a mined negative per row: ~1.8x here) cannot beat the plain script *in its time*.

- GTE's bidirectional contrastive loss (Li et al. 2023, "Towards General Text Embeddings with Multi-stage
  Contrastive Learning", eq. 3): besides query->passage, every passage must find its query among the batch's queries,
  and queries/passages must be told apart from the other queries/passages of the batch. The same embeddings give 4x
  the contrastive signal; sentence-transformers 6 exposes it as MNRL `directions` with a joint softmax.
- Topic-aware batches (TAS-B: Hofstätter et al. 2021, "Efficiently Teaching an Effective Dense Retriever with
  Balanced Topic Aware Sampling"): queries are clustered on the base model's vectors and each batch is drawn from
  one or two clusters, so in-batch negatives are passages on the same topic, hard ones, instead of random ones that
  MNRL already separates. The no-duplicates rule holds: no text repeats within a batch.
- Hardness-weighted in-batch negatives (Lan et al. 2025, "LLaVE: Large Language and Vision Embedding Models with
  Hardness-Weighted Contrastive Learning", eq. 5): each negative logit gains alpha * stop_grad(cosine), so the
  confusable negatives that topic batches bring weigh more. sentence-transformers 6 exposes it as MNRL's hardness_mode.

Measured (bench/recipes.py, all-MiniLM-L6-v2, one epoch): GTE + topic at batch 16 gained +0.020 nDCG@10 over the
plain script on SciFact and +0.019 on ObliQA; with hardness 9 +0.026 and +0.028, both intervals above 0.

Imports torch and sentence-transformers lazily (the worker and benches call these).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

GTE_DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
DIRECTIONS = {"query_to_doc": ("query_to_doc",), "gte": GTE_DIRECTIONS}


def make_loss_for(model: Any, directions: str, hardness: float = 0.0, **kwargs: Any) -> Any:
    """MNRL with the named in-batch terms ("query_to_doc": the plain loss; "gte": all four, one joint softmax) and
    hardness-weighted in-batch negatives when `hardness` > 0."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(
        model, directions=DIRECTIONS[directions], partition_mode="joint", **hardness_args(hardness), **kwargs
    )


def hardness_args(hardness: float) -> dict[str, Any]:
    """MNRL's keyword arguments for hardness weighting (Lan et al. 2025): on the in-batch negatives only, so a mined
    negative column (already hard) is not weighted twice."""
    if hardness <= 0:
        return {}
    return {"hardness_mode": "in_batch_negatives", "hardness_strength": float(hardness)}


def spherical_kmeans(vectors: np.ndarray, k: int, seed: int, iterations: int = 10) -> np.ndarray:
    """Cluster ids of unit vectors (k-means on cosine), seeded; k-means++-free: k distinct rows start it."""
    rng = np.random.default_rng(seed)
    k = max(1, min(k, len(vectors)))
    centroids = vectors[rng.choice(len(vectors), size=k, replace=False)]
    labels = np.zeros(len(vectors), dtype=np.int64)
    for _ in range(iterations):
        labels = np.argmax(vectors @ centroids.T, axis=1)
        for c in range(k):
            members = vectors[labels == c]
            if len(members):
                mean = members.sum(axis=0)
                centroids[c] = mean / (np.linalg.norm(mean) or 1.0)
    return labels


def topic_batches(
    clusters: np.ndarray, texts: Sequence[Sequence[str]], batch_size: int, seed: int, drop_last: bool = False
) -> list[list[int]]:
    """Batches cut from a stream of whole clusters in a seeded random order (rows shuffled within a cluster).

    A row sharing a text with the batch being filled waits for the next batch (the no-duplicates rule)."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(clusters == c) for c in np.unique(clusters)]
    stream: list[int] = []
    for g in rng.permutation(len(groups)):
        stream += rng.permutation(groups[g]).tolist()
    batches: list[list[int]] = []
    waiting: list[int] = []
    batch: list[int] = []
    seen: set[str] = set()
    for row in _interleave(waiting, stream):
        if any(t in seen for t in texts[row]):
            waiting.append(row)
            continue
        batch.append(row)
        seen.update(texts[row])
        if len(batch) == batch_size:
            batches.append(batch)
            batch, seen = [], set()
    # rows that never found room: their own batches (duplicates of each other go to separate ones)
    batch_rows = batch + waiting
    if batch_rows and not drop_last:
        batches += _pack(batch_rows, texts, batch_size)
    return [b for b in batches if len(b) == batch_size or not drop_last]


def _interleave(waiting: list[int], stream: list[int]) -> Iterator[int]:
    """The stream, with rows that had to wait offered again before each new row (oldest first)."""
    for row in stream:
        retry, waiting[:] = list(waiting), []
        yield from retry
        yield row


def _pack(rows: list[int], texts: Sequence[Sequence[str]], batch_size: int) -> list[list[int]]:
    batches: list[tuple[list[int], set[str]]] = []
    for row in rows:
        for batch, seen in batches:
            if len(batch) < batch_size and not any(t in seen for t in texts[row]):
                batch.append(row)
                seen.update(texts[row])
                break
        else:
            batches.append(([row], set(texts[row])))
    return [b for b, _ in batches]


class TopicBatches:
    """A batch-sampler factory for SentenceTransformerTrainingArguments(batch_sampler=...): topic-aware batches over
    the dataset's rows. It holds the rows' cluster ids (clustered once here, on the base model's unit vectors of the
    rows' queries, in row order), not the vectors: the trainer pickles it into every checkpoint's arguments."""

    def __init__(self, vectors: np.ndarray, batch_size: int, seed: int) -> None:
        k = max(1, math.ceil(len(vectors) / batch_size))
        self.clusters = spherical_kmeans(np.asarray(vectors, dtype=np.float32), k, seed).astype(np.int32)

    def __call__(self, dataset: Any, batch_size: int, drop_last: bool, **kwargs: Any) -> Any:
        from sentence_transformers.base.sampler import DefaultBatchSampler

        clusters = self.clusters

        class TopicBatchSampler(DefaultBatchSampler):
            def __init__(self) -> None:
                super().__init__(dataset, batch_size=batch_size, drop_last=drop_last, **kwargs)
                self.texts = list(zip(*(dataset[c] for c in dataset.column_names), strict=True))
                self._batches = self._order(0)

            def _order(self, epoch: int) -> list[list[int]]:  # a new order each epoch, the same for a seed
                return topic_batches(clusters, self.texts, self.batch_size, self.seed + epoch, self.drop_last)

            def __iter__(self) -> Iterator[list[int]]:
                epoch = getattr(self, "epoch", 0)
                yield from self._order(epoch) if epoch else self._batches

            def __len__(self) -> int:
                return len(self._batches)

        return TopicBatchSampler()
