"""The embedding cache: vectors keyed by (model fingerprint, max_seq_length, text key)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from engine.store._sqlite_utils import Database
from engine.store.db import is_read_only, write

_CHUNK = 500


def cached_vectors(db: Database, fingerprint: str, max_seq_length: int, keys: Sequence[str]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(keys), _CHUNK):
        part = list(keys[start : start + _CHUNK])
        marks = ",".join("?" * len(part))
        rows = db.execute(
            f"SELECT text_hash, dim, vector FROM embedding_cache WHERE model_fingerprint = ? "
            f"AND max_seq_length = ? AND text_hash IN ({marks})",
            [fingerprint, max_seq_length, *part],
        )
        for key, dim, blob in rows:
            found[key] = np.frombuffer(blob, dtype=np.float32, count=dim)
    return found


def store_vectors(db: Database, fingerprint: str, max_seq_length: int, items: Iterable[tuple[str, np.ndarray]]) -> None:
    if is_read_only(db):  # a read-only project reads its cache and computes the rest; it never writes
        return
    rows = [
        (fingerprint, key, max_seq_length, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes())
        for key, v in items
    ]
    with write(db):
        db.conn.executemany(
            "INSERT OR REPLACE INTO embedding_cache (model_fingerprint, text_hash, max_seq_length, dim, vector) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )


def clear_cache(db: Database) -> None:
    """Forget every cached vector, so the next encode is a first run (bench/mine.py)."""
    with write(db):
        db.execute("DELETE FROM embedding_cache")
