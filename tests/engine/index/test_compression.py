"""Compressed-vector search for `embtune index plan`: one streaming scan finds what an in-memory brute force over
the whole compressed table finds, whatever the scan block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

from engine.index.ann import K, exact_top_k, recall_at_k
from engine.index.compression import Compression, calibration_sample, compressions, measure


def clustered_table(folder: Path, rows: int = 600, dim: int = 32) -> tuple[Any, np.ndarray]:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(12, dim))
    vectors = centres[rng.integers(12, size=rows)] + 0.4 * rng.normal(size=(rows, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    data = pa.table(
        {
            "chunk_id": [f"c{i:04d}" for i in range(rows)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
        }
    )
    queries = vectors[rng.integers(rows, size=40)] + 0.2 * rng.normal(size=(40, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return lancedb.connect(str(folder)).create_table("t", data), queries


def in_memory(option: Compression, table: Any, queries: np.ndarray) -> list[list[str]]:
    """The whole table compressed at once, each query searched alone: first stage, then the float rescore."""
    data = table.to_arrow()
    ids = np.asarray(data.column("chunk_id").to_pylist(), dtype=object)
    docs = option.compress(np.stack(data.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32))
    found = []
    for first, q in zip(option.first, queries, strict=True):
        scores = docs @ first
        top = np.argsort(-scores, kind="stable")[: K * (option.rescore or 1)]
        final = docs[top] @ q if option.rescore else scores[top]
        found.append(ids[top[np.argsort(-final, kind="stable")][:K]].tolist())
    return found


def test_a_streaming_scan_finds_what_an_in_memory_brute_force_finds(tmp_path: Path) -> None:
    table, queries = clustered_table(tmp_path)
    truth = exact_top_k(table, queries)
    options = compressions(table, queries, matryoshka=[16])
    assert [o.name for o in options] == ["matryoshka:16", "int8+rescore", "binary+rescore"]
    streamed = {block: measure(table, queries, truth, options, block=block) for block in (37, 100_000)}
    for number, option in enumerate(options):
        expected = recall_at_k(truth, in_memory(option, table, queries))
        got = [streamed[b][number].recall_at_10 for b in (37, 100_000)]
        if option.name == "binary+rescore":  # integer hamming scores tie: which tied rows go on to rescoring may vary
            assert max(abs(g - expected) for g in got) <= 0.02
        else:
            assert got == [expected, expected], option.name
    recalls = {m.compression.name: m.recall_at_10 for m in streamed[37]}
    # int8 with rescoring keeps most of the top 10 at 32 dimensions; one bit per dimension keeps less, far above chance
    assert recalls["int8+rescore"] >= 0.8
    assert 0.3 < recalls["binary+rescore"] < recalls["int8+rescore"]
    assert all(m.p50_ms > 0 and m.p95_ms >= m.p50_ms for m in streamed[37])


def test_the_int8_calibration_sample_is_spread_over_the_table_and_bounded(tmp_path: Path) -> None:
    table, _ = clustered_table(tmp_path, rows=600)
    assert len(calibration_sample(table, size=50)) == 50
    every = table.to_arrow().column("vector").to_numpy(zero_copy_only=False)
    assert np.allclose(calibration_sample(table, size=50)[1], every[12])  # every 12th row: 0, 12, 24, …
