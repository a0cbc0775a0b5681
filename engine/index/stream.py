"""The pieces of a streaming build: pages of chunks from SQLite, vectors to reuse, rows for LanceDB.

Memory stays bounded by one page and one batch whatever the corpus size: chunks are read by keyset pages, and
what the build must remember about a million rows (which are done, where an unchanged chunk's vector lies) is a
sorted array of 8-byte keys (8-16 MB per million rows), never texts or vectors.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from engine.store import indexes
from engine.store._sqlite_utils import Database

# Rows a build may hold waiting for its next commit (engine.index.stream.Committer): 32,768 × 1,024 float32 is
# 134 MB of vectors, and a 10M-row build makes at most ~300 versions however fast its devices encode.
COMMIT_MAX_ROWS = 32_768
SCAN_BATCH = 65_536  # rows per Arrow batch when a LanceDB table is scanned (keys only, or vectors for recall)


@dataclass
class Page:
    ids: list[str]
    doc_ids: list[str]
    hashes: list[str]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def pick(self, positions: list[int] | np.ndarray) -> Page:
        return Page(
            [self.ids[i] for i in positions],
            [self.doc_ids[i] for i in positions],
            [self.hashes[i] for i in positions],
            [self.texts[i] for i in positions],
        )


def pages(db: Database, size: int) -> Iterator[Page]:
    """Every index chunk, `size` at a time, in chunk id order."""
    after: str | None = None
    while True:
        rows = indexes.index_chunk_page(db, after, size)
        if not rows:
            return
        yield Page([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
        after = rows[-1][0]


def hash_key(text_hash: str) -> int:
    """A text hash (sha256 hex) as a uint64: its first 16 hex digits."""
    return int(text_hash[:16], 16)


def row_key(chunk_id: str, text_hash: str) -> int:
    """A (chunk, text) pair as a uint64, for the set of rows a resumed build already holds."""
    return int.from_bytes(hashlib.blake2b(f"{chunk_id}\0{text_hash}".encode(), digest_size=8).digest(), "little")


class KeySet:
    """A sorted uint64 array with membership tests for a whole page at once."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = np.unique(keys.astype(np.uint64))

    def __len__(self) -> int:
        return int(self.keys.size)

    def contains(self, keys: list[int]) -> np.ndarray:
        probe = np.asarray(keys, dtype=np.uint64)
        if not self.keys.size:
            return np.zeros(probe.size, dtype=bool)
        at = np.minimum(np.searchsorted(self.keys, probe), self.keys.size - 1)
        return self.keys[at] == probe


def keep_current(table: Any, db: Database) -> KeySet:
    """The rows an unfinished table already holds for current chunks; rows whose chunk was since removed or
    edited are deleted. Scans keys only, a batch at a time."""
    keys: list[np.ndarray] = []
    stale: list[str] = []
    scan = table.search().select(["chunk_id", "text_hash"]).limit(None).to_batches(SCAN_BATCH)
    for batch in scan:
        ids, hashes = batch.column("chunk_id").to_pylist(), batch.column("text_hash").to_pylist()
        current = indexes.index_chunk_hashes(db, ids)
        kept = [(c, h) for c, h in zip(ids, hashes, strict=True) if current.get(c) == h]
        keys.append(np.fromiter((row_key(c, h) for c, h in kept), np.uint64, len(kept)))
        stale += [c for c, h in zip(ids, hashes, strict=True) if current.get(c) != h]
    for start in range(0, len(stale), 500):
        quoted = ", ".join("'" + cid.replace("'", "''") + "'" for cid in stale[start : start + 500])
        table.delete(f"chunk_id IN ({quoted})")
    return KeySet(np.concatenate(keys) if keys else np.zeros(0, np.uint64))


class PreviousVectors:
    """Where each text of a complete table lies (hash key → row id), to copy unchanged chunks' vectors."""

    def __init__(self, table: Any) -> None:
        self.table = table
        keys, rowids = [], []
        scan = table.search().select(["text_hash"]).with_row_id(True).limit(None).to_batches(SCAN_BATCH)
        for batch in scan:
            hashes = batch.column("text_hash").to_pylist()
            keys.append(np.fromiter((hash_key(h) for h in hashes), np.uint64, len(hashes)))
            rowids.append(batch.column("_rowid").to_numpy())
        all_keys = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        order = np.argsort(all_keys, kind="stable")
        self.keys = all_keys[order]
        self.rowids = (np.concatenate(rowids) if rowids else np.zeros(0, np.uint64))[order]

    def lookup(self, hashes: list[str]) -> tuple[list[int], np.ndarray]:
        """Positions in `hashes` found in the table, and their vectors (in that order)."""
        if not self.keys.size or not hashes:
            return [], np.zeros((0, 0), np.float32)
        probe = np.fromiter((hash_key(h) for h in hashes), np.uint64, len(hashes))
        at = np.minimum(np.searchsorted(self.keys, probe), self.keys.size - 1)
        found = np.flatnonzero(self.keys[at] == probe)
        if not found.size:
            return [], np.zeros((0, 0), np.float32)
        wanted = self.rowids[at[found]]
        unique, inverse = np.unique(wanted, return_inverse=True)
        data = self.table.take_row_ids(unique.tolist()).select(["vector"]).with_row_id().to_arrow()
        got = data.column("_rowid").to_numpy()
        vectors = vector_matrix(data.column("vector"))[np.argsort(got)]  # take returns rows by row id
        return found.tolist(), vectors[inverse]


def vector_matrix(column: Any) -> np.ndarray:
    """A FixedSizeList<float32> Arrow column as an (n, dim) float32 array."""
    joined = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    flat = joined.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(joined), -1).astype(np.float32, copy=False)


def arrow_rows(schema: Any, page: Page, vectors: np.ndarray) -> Any:
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    columns = {
        "chunk_id": page.ids,
        "doc_id": page.doc_ids,
        "text_hash": page.hashes,
        "text": page.texts,
        "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
    }
    return pa.table(columns, schema=schema)


def table_schema(dim: int, max_seq_length: int, fingerprint: str) -> Any:
    import pyarrow as pa

    fields = [
        pa.field("chunk_id", pa.string()),
        pa.field("doc_id", pa.string()),
        pa.field("text_hash", pa.string()),
        pa.field("text", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
    ]
    return pa.schema(fields, metadata={"max_seq_length": str(max_seq_length), "fingerprint": fingerprint})


class Committer:
    """Rows for a table being built, committed to LanceDB as one version at most every `seconds` (or once
    `max_rows` are waiting, and on `flush`).

    Every LanceDB `add` is a new table version whose manifest lists every fragment so far: committing each batch of
    a 1M-row build wrote 3,909 versions (665 MB of manifests, quadratic in the batches) and held ~640 MB more in the
    builder's metadata cache. Committing by time keeps versions few whatever the batch or device speed (a 10M-row
    build at most ~300 by rows), and a killed build loses at most `seconds` of encoding."""

    def __init__(self, table: Any, seconds: float, max_rows: int = COMMIT_MAX_ROWS) -> None:
        self.table, self.seconds, self.max_rows = table, seconds, max_rows
        self.waiting: list[Any] = []
        self.rows = 0
        self.commits = 0
        self.last = time.monotonic()

    def add(self, rows: Any) -> None:
        self.waiting.append(rows)
        self.rows += rows.num_rows
        if self.rows >= self.max_rows or time.monotonic() - self.last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.waiting:
            self.table.add(pa.concat_tables(self.waiting))
            self.commits += 1
        self.waiting, self.rows, self.last = [], 0, time.monotonic()

    def compact(self) -> None:
        """Merge the build's fragments (LanceDB's optimize) and delete every version but the newest: the table is
        not live yet, so nothing reads an older one."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "cleanup_older_than=0 removes every version": intended
            self.table.optimize(cleanup_older_than=timedelta(0))
