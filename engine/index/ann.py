"""Approximate search for large tables: a LanceDB vector index, kept only if it finds what exact search finds.

Recall@10 is measured against exact float32 search on the project's own queries (the truth computed in numpy,
streaming the table a batch at a time, so it costs one scan instead of one flat LanceDB search per query).
Each index type has one search knob raised until recall reaches `min_recall` (IVF: partitions probed; IVF_PQ also
re-ranks a multiple of k on the stored float vectors, its refine factor); if even the widest setting misses, the
index is dropped and search stays exact. IVF_FLAT is the default (on clustered 384-d vectors LanceDB's PQ and
HNSW_SQ defaults gave recall far below 0.9 while IVF_FLAT gave ≥ 0.93: STACK_NOTES); `embtune index plan`
measures the others on the project's data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.index.stream import vector_matrix
from engine.store import runs
from engine.store._sqlite_utils import Database

K = 10
PROBES = (20, 50, 100, 200)  # tried in order: more partitions searched = higher recall, slower queries
REFINE = 20  # IVF_PQ / IVF_RQ: re-rank refine×k candidates on the stored float vectors
KINDS = ("ivf_flat", "ivf_pq", "ivf_hnsw_sq", "ivf_rq")
LABELS = {"ivf_flat": "IVF_FLAT", "ivf_pq": "IVF_PQ", "ivf_hnsw_sq": "IVF_HNSW_SQ", "ivf_rq": "IVF_RQ"}
VECTOR_SCAN = 16_384
PLAN_KIND = "index-plan"  # the run kind `embtune index plan` stores its measurements as


@dataclass
class AnnResult:
    kind: str  # "exact" or one of KINDS
    recall: float | None  # recall@10 of the index kept (None: no index tried)
    nprobes: int | None
    tried: list[dict[str, Any]]
    queries: int
    note: str
    refine_factor: int | None = None
    build_seconds: float | None = None
    index_bytes: int | None = None
    bytes_per_vector: float | None = None
    latency: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "recall_at_10": self.recall,
            "nprobes": self.nprobes,
            "refine_factor": self.refine_factor,
            "tried": self.tried,
            "queries": self.queries,
            "note": self.note,
            "build_seconds": self.build_seconds,
            "index_bytes": self.index_bytes,
            "bytes_per_vector": self.bytes_per_vector,
            **self.latency,
        }


def exact(note: str = "exact search: the table is below index.ann_min_rows") -> AnnResult:
    return AnnResult("exact", None, None, [], 0, note)


def index_config(kind: str, rows: int, dim: int) -> Any:
    from lancedb.index import IvfFlat, IvfHnswSq, IvfPq, IvfRq

    partitions = max(1, min(int(np.sqrt(rows)), rows // 256 or 1))
    if kind == "ivf_flat":
        return IvfFlat(distance_type="cosine", num_partitions=partitions)
    if kind == "ivf_pq":
        # one byte per 4 dimensions (dim/4 sub-vectors; STACK_NOTES: the default of dim/16 lost most of the recall)
        sub = next(s for s in (dim // 4, dim // 2, dim // 8, 1) if s >= 1 and dim % s == 0)
        return IvfPq(distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub)
    if kind == "ivf_hnsw_sq":
        return IvfHnswSq(distance_type="cosine", num_partitions=max(1, partitions // 16))
    if kind == "ivf_rq":
        return IvfRq(distance_type="cosine", num_partitions=partitions)
    raise ValueError(f"unknown index kind {kind!r}")


def code_bytes(kind: str, config: Any, dim: int) -> float:
    """Bytes each vector costs in the index (its code; graph links for HNSW), what grows with the corpus; the
    measured size on disk (index_bytes) also holds per-index overhead such as PQ codebooks."""
    if kind == "ivf_pq":
        return float(config.num_sub_vectors) * config.num_bits / 8
    if kind == "ivf_hnsw_sq":
        return dim + 2 * config.m * 4  # one byte per dimension + layer-0 links (2m neighbours × 4-byte ids)
    if kind == "ivf_rq":
        return dim * config.num_bits / 8 + 8  # the bits + RaBitQ's per-vector correction factors
    return 4.0 * dim


def partitions_of(config: Any) -> int:
    return int(getattr(config, "num_partitions", None) or 1)


def build_ann(
    table: Any,
    queries: np.ndarray,
    min_recall: float,
    cancelled: Callable[[], bool] = lambda: False,
    kind: str = "auto",
    truth: list[list[str]] | None = None,
    keep: bool = True,
) -> AnnResult:
    """Index `table`'s vectors with `kind` ("auto": IVF_FLAT), then pick the fewest probes reaching
    `min_recall`; below it at the widest setting the index is dropped. `keep=False` measures and drops anyway."""
    kind = "ivf_flat" if kind == "auto" else kind  # build.py resolves auto from the latest plan first
    rows = table.count_rows()
    truth = truth if truth is not None else exact_top_k(table, queries, K)
    config = index_config(kind, rows, queries.shape[1])
    partitions = partitions_of(config)
    started = time.perf_counter()
    table.create_index("vector", config=config, replace=True)
    seconds = round(time.perf_counter() - started, 2)
    size = index_bytes(table)
    refine = REFINE if kind in ("ivf_pq", "ivf_rq") else None
    tried: list[dict[str, Any]] = []
    for probes in dict.fromkeys(min(p, partitions) for p in PROBES):
        if cancelled():
            raise InterruptedError("index build cancelled")
        found = [_ids(table, q, probes, refine) for q in queries]
        recall = recall_at_k(truth, found)
        tried.append({"nprobes": probes, "recall_at_10": recall})
        if recall >= min_recall:
            latency = measure_latency(table, queries, probes, refine)
            note = f"{LABELS[kind]}, {partitions} partitions, {probes} probes"
            note += f", refine ×{refine}" if refine else ""
            if not keep:
                drop_indexes(table)
            code = code_bytes(kind, config, queries.shape[1])
            return AnnResult(kind, recall, probes, tried, len(queries), note, refine, seconds, size, code, latency)
    drop_indexes(table)
    best = max((t["recall_at_10"] for t in tried), default=0.0)
    result = AnnResult(
        "exact",
        None,
        None,
        tried,
        len(queries),
        f"{LABELS[kind]} reached recall@10 {best:.3f} < {min_recall}: dropped, search stays exact",
    )
    result.build_seconds, result.index_bytes = seconds, size
    result.bytes_per_vector = code_bytes(kind, config, queries.shape[1])
    return result


def drop_indexes(table: Any) -> None:
    for index in table.list_indices():
        table.drop_index(index.name)


def index_bytes(table: Any) -> int | None:
    """Bytes of the table's vector index on disk (a local table only)."""
    try:
        folder = Path(table.uri) / "_indices"
    except Exception:  # a remote table has no local folder to measure
        return None
    if not folder.is_dir():
        return None
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def exact_top_k(table: Any, queries: np.ndarray, k: int = K) -> list[list[str]]:
    """Exact cosine top-k chunk ids per query (vectors are normalised), one streaming scan of the table."""
    q = np.asarray(queries, dtype=np.float32)
    best_scores = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_ids = np.empty((len(q), 0), dtype=object)
    scan = table.search().select(["chunk_id", "vector"]).limit(None).to_batches(VECTOR_SCAN)
    for batch in scan:
        vectors = vector_matrix(batch.column("vector"))
        ids = np.asarray(batch.column("chunk_id").to_pylist(), dtype=object)
        scores = np.concatenate([best_scores, q @ vectors.T], axis=1)
        pool = np.concatenate([best_ids, np.broadcast_to(ids, (len(q), len(ids)))], axis=1)
        keep = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, keep, axis=1)
        best_ids = np.take_along_axis(pool, keep, axis=1)
    order = np.argsort(-best_scores, axis=1)
    return np.take_along_axis(best_ids, order, axis=1).tolist()


def recall_at_k(truth: list[list[str]], found: list[list[str]]) -> float:
    scores = [len(set(t) & set(f)) / len(t) for t, f in zip(truth, found, strict=True) if t]
    return round(float(np.mean(scores)), 4) if scores else 1.0


def measure_latency(table: Any, queries: np.ndarray, nprobes: int | None, refine: int | None) -> dict[str, float]:
    """p50 / p95 milliseconds of one LanceDB search (k=10) per query, after one warm-up search."""
    _ids(table, queries[0], nprobes, refine)
    times = []
    for q in queries[:100]:
        started = time.perf_counter()
        _ids(table, q, nprobes, refine)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}


def _ids(table: Any, vector: np.ndarray, nprobes: int | None, refine: int | None = None) -> list[str]:
    search = table.search(vector).distance_type("cosine").limit(K).select(["chunk_id", "_distance"])
    search = apply_knobs(search, nprobes, refine) if nprobes is not None else search.bypass_vector_index()
    return [row["chunk_id"] for row in search.to_list()]


def apply_knobs(search: Any, nprobes: int | None, refine: int | None) -> Any:
    """The search settings a kept index was measured with (search.py uses the same)."""
    if nprobes:
        search = search.nprobes(int(nprobes))
    if refine:
        search = search.refine_factor(int(refine))
    return search


def latest_plan(db: Database) -> dict[str, Any] | None:
    """The newest stored `embtune index plan` (what `index.type: auto` builds with, what the Index screen shows)."""
    found = runs.latest_result(db, PLAN_KIND)
    return found[1] if found else None


def auto_kind(db: Database) -> str:
    """`index.type: auto`: the latest plan's index pick, else IVF_FLAT."""
    plan = latest_plan(db)
    pick = plan.get("index_pick") if plan else None
    return pick if pick in KINDS else "ivf_flat"
