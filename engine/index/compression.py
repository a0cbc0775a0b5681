"""Compressed-vector options for `embtune index plan`: Matryoshka truncation, and int8 / binary quantization with
rescoring (sentence-transformers' `quantize_embeddings`), each measured by brute force against the exact top 10.

One streaming scan of the table serves every option: each block of float32 vectors is compressed and searched, and
per query only the best `depth` candidates so far are kept. Memory is set by the scan block and the queries, not the
corpus: a 10M × 1,024 table is 41 GB as float32, and each compressed copy would be as much again as float32 for the
matrix product.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.index.ann import VECTOR_SCAN, K
from engine.index.stream import vector_matrix

RESCORE = 4  # quantized search keeps RESCORE × k candidates, re-scored with the float32 query
LATENCY_QUERIES = 50
CALIBRATION_ROWS = 10_000  # int8 ranges come from an even sample of this many vectors, as before a streaming pass


@dataclass
class Compression:
    """One way to store vectors: how a block of float32 vectors is compressed (as float32 values, for the matrix
    product), the queries searched against it first, and whether the float query re-scores the candidates."""

    name: str
    bytes_per_vector: float
    compress: Callable[[np.ndarray], np.ndarray]
    first: np.ndarray
    rescore: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Measured:
    """What a scan found for one compression: recall against the truth, latency, and its description."""

    compression: Compression
    recall_at_10: float
    p50_ms: float
    p95_ms: float
    note: str


class _Candidates:
    """Per query, the `depth` best rows so far by the compressed score, each with its final (re-scored) score."""

    def __init__(self, queries: int, depth: int) -> None:
        self.depth = depth
        self.scores = np.full((queries, 0), -np.inf, dtype=np.float32)
        self.final = np.full((queries, 0), -np.inf, dtype=np.float32)
        self.ids = np.empty((queries, 0), dtype=object)

    def add(self, ids: np.ndarray, scores: np.ndarray, final: np.ndarray) -> None:
        """Merge one block's candidates (each (queries, n)): keep the `depth` best by the compressed score."""
        pool = np.concatenate([self.scores, scores], axis=1)
        finals = np.concatenate([self.final, final], axis=1)
        names = np.concatenate([self.ids, ids], axis=1)
        if pool.shape[1] > self.depth:
            keep = np.argpartition(-pool, self.depth - 1, axis=1)[:, : self.depth]
            pool, finals, names = (np.take_along_axis(a, keep, axis=1) for a in (pool, finals, names))
        self.scores, self.final, self.ids = pool, finals, names

    def top(self, k: int) -> list[list[str]]:
        order = np.argsort(-self.final, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(self.ids, order, axis=1).tolist()


class _Search:
    """The running brute-force search of one compression over the blocks of a scan."""

    def __init__(self, compression: Compression, queries: np.ndarray) -> None:
        self.c = compression
        self.queries = queries
        self.found = _Candidates(len(queries), K * (compression.rescore or 1))
        self.times = np.zeros(min(LATENCY_QUERIES, len(queries)))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        docs = self.c.compress(vectors)
        scores = self.c.first @ docs.T  # (queries, block)
        depth = min(self.found.depth, scores.shape[1])
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        first = np.take_along_axis(scores, top, axis=1)
        # the float query re-scores the candidates against their compressed vectors (sentence-transformers' rescore)
        final = np.einsum("qdk,qk->qd", docs[top], self.queries) if self.c.rescore else first
        self.found.add(np.asarray(ids, dtype=object)[top], first, final.astype(np.float32))
        self._time(docs)

    def _time(self, docs: np.ndarray) -> None:
        """One query at a time, as a search serves it: this block's share of its scan, selection and rescore."""
        depth = min(self.found.depth, len(docs))
        for number in range(len(self.times)):
            started = time.perf_counter()
            scores = docs @ self.c.first[number]
            top = np.argpartition(-scores, depth - 1)[:depth]
            if self.c.rescore:
                docs[top] @ self.queries[number]
            self.times[number] += time.perf_counter() - started

    def result(self, truth: list[list[str]], rows: int) -> Measured:
        from engine.index.ann import recall_at_k

        ms = self.times * 1000
        p50, p95 = (round(float(np.percentile(ms, p)), 2) for p in (50, 95))
        rescore = self.c.rescore
        note = f"numpy brute force over {rows:,} compressed vectors" + (f", rescore ×{rescore}" if rescore else "")
        return Measured(self.c, recall_at_k(truth, self.found.top(K)), p50, p95, note)


def compressions(table: Any, queries: np.ndarray, matryoshka: list[int]) -> list[Compression]:
    """Matryoshka truncation to each size in `matryoshka`, int8 and binary quantization."""
    from sentence_transformers.util.quantization import quantize_embeddings

    dim = queries.shape[1]
    options = [_truncation(queries, d) for d in matryoshka]
    ranges = int8_ranges(calibration_sample(table))
    options.append(
        Compression(
            "int8+rescore",
            float(dim),
            lambda v: quantize_embeddings(v, precision="int8", ranges=ranges).astype(np.float32),
            quantize_embeddings(queries, precision="int8", ranges=ranges).astype(np.float32),
            RESCORE,
        )
    )
    # ±1 per bit: a ±1 query's dot product ranks as the hamming distance does, and the float query re-scores
    options.append(
        Compression(
            "binary+rescore",
            dim / 8.0,
            lambda v: (
                np.unpackbits(quantize_embeddings(v, precision="ubinary"), axis=1)[:, :dim].astype(np.float32) * 2 - 1
            ),
            np.where(queries > 0, 1.0, -1.0).astype(np.float32),
            RESCORE,
        )
    )
    return options


def _truncation(queries: np.ndarray, d: int) -> Compression:
    def cut(v: np.ndarray) -> np.ndarray:
        return v[:, :d] / np.linalg.norm(v[:, :d], axis=1, keepdims=True)

    return Compression(f"matryoshka:{d}", 4.0 * d, cut, cut(queries), settings={"dim": d})


def measure(
    table: Any, queries: np.ndarray, truth: list[list[str]], options: list[Compression], block: int = VECTOR_SCAN
) -> list[Measured]:
    """Every option's recall@10 and latency, in one streaming scan of the table's chunk ids and vectors."""
    q = np.asarray(queries, dtype=np.float32)
    searches = [_Search(o, q) for o in options]
    rows = 0
    for batch in table.search().select(["chunk_id", "vector"]).limit(None).to_batches(block):
        vectors = vector_matrix(batch.column("vector"))
        ids = np.asarray(batch.column("chunk_id").to_pylist(), dtype=object)
        rows += len(ids)
        for search in searches:
            search.add(ids, vectors)
    return [s.result(truth, rows) for s in searches]


def calibration_sample(table: Any, size: int = CALIBRATION_ROWS) -> np.ndarray:
    """An even sample of at most `size` vectors (every n-th row), read by offset rather than by a scan."""
    rows = table.count_rows()
    offsets = list(range(0, rows, max(1, rows // size)))[:size]
    return vector_matrix(table.take_offsets(offsets).select(["vector"]).to_arrow().column("vector"))


def int8_ranges(sample: np.ndarray) -> np.ndarray:
    """Per-dimension min and max of a calibration sample (what quantize_embeddings computes from one)."""
    return np.vstack([sample.min(axis=0), sample.max(axis=0)])
