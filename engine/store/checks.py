"""Reads for the data checks (engine.data.checks): plain rows, no judgement."""

from __future__ import annotations

from engine.store._sqlite_utils import Database


def queries(db: Database) -> list[tuple[str, str, str]]:
    """(id, text, split) of every query."""
    return [(r[0], r[1], r[2]) for r in db.execute("SELECT id, text, split FROM queries ORDER BY id")]


def positives(db: Database, split: str) -> list[tuple[str, str, str, str]]:
    """(query id, query text, passage key, chunk id) of the split's unrejected pairs, in pair order; the key is
    the passage's text hash (an edited passage's when edited), so equal texts in two chunks count as one."""
    rows = db.execute(
        "SELECT p.query_id, q.text, coalesce(p.edited_text_hash, c.text_hash), p.chunk_id FROM pairs p "
        "JOIN queries q ON q.id = p.query_id JOIN chunks c ON c.id = p.chunk_id "
        "WHERE p.split = ? AND p.label != 'rejected' ORDER BY p.id",
        [split],
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def judged_documents(db: Database) -> list[tuple[str, str, str]]:
    """(query split, query id, document id) of every unrejected judgment."""
    rows = db.execute(
        "SELECT q.split, p.query_id, c.doc_id FROM pairs p JOIN queries q ON q.id = p.query_id "
        "JOIN chunks c ON c.id = p.chunk_id WHERE p.label != 'rejected'"
    )
    return [(r[0], r[1], r[2]) for r in rows]


def queries_with_negatives(db: Database, split: str) -> int:
    """How many of the split's queries with pairs have at least one negative review has not ruled out."""
    row = db.execute(
        "SELECT count(DISTINCT n.query_id) FROM negatives n WHERE n.label IN ('unlabeled', 'accepted') "
        "AND n.query_id IN (SELECT query_id FROM pairs WHERE split = ? AND label != 'rejected')",
        [split],
    ).fetchone()
    return int(row[0])
