"""Reads and writes of mined negatives: what mining starts from and the one write that stores a run's result."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from engine.store._sqlite_utils import Database
from engine.store.db import write

# Review verdicts that keep a chunk out of a query's negatives for good, whichever miner found it.
REVIEWED_OUT = ("rejected", "false_negative")


@dataclass(frozen=True)
class MiningPair:
    query_id: str
    query: str
    chunk_id: str
    doc_id: str
    passage: str  # the chunk's own text: mining compares corpus chunks, so an edited passage is not used here


@dataclass(frozen=True)
class NegativeRow:
    query_id: str
    chunk_id: str
    score: float | None
    positive_score: float | None
    miner: str
    settings_json: str


def mining_pairs(db: Database, split: str = "train") -> list[MiningPair]:
    """The split's pairs that review has not rejected, in insertion order."""
    rows = db.execute(
        "SELECT q.id, q.text, c.id, c.doc_id, t.text FROM pairs p JOIN queries q ON q.id = p.query_id "
        "JOIN chunks c ON c.id = p.chunk_id JOIN texts t ON t.hash = c.text_hash "
        "WHERE p.split = ? AND p.label != 'rejected' ORDER BY p.id",
        [split],
    )
    return [MiningPair(*r) for r in rows]


def relevant_documents(db: Database, query_ids: Sequence[str]) -> dict[str, set[str]]:
    """Documents judged relevant to each query in any split: its unrejected pairs and the negatives review
    marked as false negatives. No chunk of these may become a negative of that query."""
    out: dict[str, set[str]] = {}
    for batch, marks in _batches(query_ids):
        rows = db.execute(
            "SELECT p.query_id, c.doc_id FROM pairs p JOIN chunks c ON c.id = p.chunk_id "
            f"WHERE p.label != 'rejected' AND p.query_id IN ({marks}) "
            "UNION SELECT n.query_id, c.doc_id FROM negatives n JOIN chunks c ON c.id = n.chunk_id "
            f"WHERE n.label = 'false_negative' AND n.query_id IN ({marks})",
            [*batch, *batch],
        )
        for query_id, doc_id in rows:
            out.setdefault(query_id, set()).add(doc_id)
    return out


def blocked_chunks(db: Database, query_ids: Sequence[str], miner: str) -> dict[str, set[str]]:
    """Chunks a new negative of each query must not be: those review rejected or marked false negative, and
    those another miner already stored (so review never sees one negative twice). The same miner's own rows
    are not blocked: a re-run selects them again and the insert ignores them, which keeps re-runs idempotent."""
    reviewed = ", ".join(f"'{label}'" for label in REVIEWED_OUT)
    out: dict[str, set[str]] = {}
    for batch, marks in _batches(query_ids):
        rows = db.execute(
            f"SELECT query_id, chunk_id FROM negatives WHERE query_id IN ({marks}) "
            f"AND (label IN ({reviewed}) OR miner != ?)",
            [*batch, miner],
        )
        for query_id, chunk_id in rows:
            out.setdefault(query_id, set()).add(chunk_id)
    return out


def insert_negatives(db: Database, rows: Iterable[NegativeRow]) -> int:
    """Insert, ignoring (query, chunk, miner) rows that exist; returns how many were new. Call inside the run's
    write transaction so the negatives and the run's result commit together."""
    before = db.conn.total_changes
    with write(db):
        db.conn.executemany(
            "INSERT OR IGNORE INTO negatives (query_id, chunk_id, score, positive_score, miner, settings_json) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(r.query_id, r.chunk_id, r.score, r.positive_score, r.miner, r.settings_json) for r in rows],
        )
    return db.conn.total_changes - before


def delete_all(db: Database) -> None:
    """Drop every stored negative, so the next mining run starts from none (bench/mine.py)."""
    with write(db):
        db.execute("DELETE FROM negatives")


def all_negatives(db: Database) -> list[dict[str, object]]:
    """Every stored negative with its chunk's document, in insertion order (reports, tests, benchmarks)."""
    rows = db.execute(
        "SELECT n.query_id, n.chunk_id, c.doc_id, n.score, n.positive_score, n.miner, n.label "
        "FROM negatives n JOIN chunks c ON c.id = n.chunk_id ORDER BY n.id"
    )
    keys = ("query_id", "chunk_id", "doc_id", "score", "positive_score", "miner", "label")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _batches(ids: Sequence[str], size: int = 400) -> Iterator[tuple[list[str], str]]:
    # Bounded IN lists (older SQLite builds allow 999 parameters; relevant_documents binds each batch twice).
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        batch = unique[start : start + size]
        yield batch, ", ".join("?" * len(batch))
