"""SQL of review: queue pages (keyset), one item, row states, review events, counters.

Targets are 'pair' (a query and its positive chunk) and 'negative' (a query and a mined negative chunk). The
pairs queue runs in id order; the negatives queue in triage order: smallest positive_score - score first,
unscored last (the NEGATIVE_MARGIN expression, which an index covers). Paging is keyset on (key, id), so any
page of 100k rows costs the same fraction of a millisecond; nothing ever counts an OFFSET.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from engine.store._sqlite_utils import Database
from engine.store.schema import NEGATIVE_MARGIN, text_hash

Target = Literal["pair", "negative"]
TABLE = {"pair": "pairs", "negative": "negatives"}
# The mutable fields of a row: what an event's before/after holds and undo restores.
STATE = {"pair": ("label", "edited_text_hash", "updated_at"), "negative": ("label", "updated_at")}
SNIPPET = 200


@dataclass(frozen=True)
class QueueFilter:
    label: str | None = None
    source: str | None = None  # a pair's source, a negative's miner
    split: str | None = None
    text: str = ""  # a substring of the query or the passage (case-insensitive for ASCII)


@dataclass(frozen=True)
class Event:
    id: int
    target: Target
    target_id: int
    action: str
    before: dict[str, Any]
    after: dict[str, Any]
    reviewer: str
    batch: int | None
    undone_by: int | None
    at: str


# --- the queue ----------------------------------------------------------------------------------------------


def _queue_sql(target: Target, flt: QueueFilter, *, backwards: bool, has_cursor: bool) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if target == "pair":
        key, alias = "p.id", "p"
        sql = (
            f"SELECT p.id, substr(q.text, 1, {SNIPPET}), p.id, p.label, p.edited_text_hash, p.updated_at "
            "FROM pairs p JOIN queries q ON q.id = p.query_id"
        )
        join = "JOIN chunks c ON c.id = p.chunk_id JOIN texts t ON t.hash = c.text_hash"
        source, split = "p.source", "p.split"
    else:
        key, alias = NEGATIVE_MARGIN, "n"
        sql = (
            f"SELECT n.id, substr(q.text, 1, {SNIPPET}), {NEGATIVE_MARGIN}, n.label, n.updated_at "
            "FROM negatives n JOIN queries q ON q.id = n.query_id"
        )
        # Unqualified, as the index spells it (no joined table has a score column).
        join = "JOIN chunks c ON c.id = n.chunk_id JOIN texts t ON t.hash = c.text_hash"
        source, split = "n.miner", "q.split"
    if has_cursor:
        # (key, id) beyond the cursor, spelt so SQLite seeks the index on key instead of scanning it.
        op = "<" if backwards else ">"
        where.append(f"{key} {op}= ? AND ({key} {op} ? OR {alias}.id {op} ?)")
    if flt.label:
        where.append(f"{alias}.label = ?")
        params.append(flt.label)
    if flt.source:
        where.append(f"{source} = ?")
        params.append(flt.source)
    if flt.split:
        # A negative's split is its query's: unary + keeps queries_split from driving the plan, which would
        # then sort every negative of the split instead of reading them in triage order.
        where.append(f"{'+' if target == 'negative' else ''}{split} = ?")
        params.append(flt.split)
    if flt.text:
        sql += f" {join}"
        where.append("(q.text LIKE ? ESCAPE '\\' OR t.text LIKE ? ESCAPE '\\')")
        like = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [like, like]
    if where:
        sql += " WHERE " + " AND ".join(where)
    direction = "DESC" if backwards else ""
    sql += f" ORDER BY {key} {direction}, {alias}.id {direction} LIMIT ?"
    return sql, params


def queue_rows(
    db: Database,
    target: Target,
    flt: QueueFilter,
    cursor: tuple[float, int] | None = None,
    *,
    backwards: bool = False,
    limit: int = 200,
) -> list[tuple[Any, ...]]:
    """Rows (id, query snippet, key, *STATE[target]) after (or before) the keyset cursor (key, id), in queue
    order either way."""
    sql, params = _queue_sql(target, flt, backwards=backwards, has_cursor=cursor is not None)
    head = [cursor[0], cursor[0], cursor[1]] if cursor is not None else []
    rows = db.execute(sql, [*head, *params, limit]).fetchall()
    return rows[::-1] if backwards else rows


def pair_item(db: Database, pair_id: int) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT p.id, p.label, p.edited_text_hash, p.updated_at, p.split, p.source, p.score, q.id, q.text, "
        "c.doc_id, t.text, e.text FROM pairs p JOIN queries q ON q.id = p.query_id "
        "JOIN chunks c ON c.id = p.chunk_id JOIN texts t ON t.hash = c.text_hash "
        "LEFT JOIN texts e ON e.hash = p.edited_text_hash WHERE p.id = ?",
        [pair_id],
    ).fetchone()
    if row is None:
        return None
    keys = ("id", "label", "edited_text_hash", "updated_at", "split", "source", "score", "query_id", "query",
            "doc_id", "original", "edited")  # fmt: skip
    return dict(zip(keys, row, strict=True))


def negative_item(db: Database, negative_id: int) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT n.id, n.label, n.updated_at, q.split, n.miner, n.score, n.positive_score, q.id, q.text, "
        "c.doc_id, t.text FROM negatives n JOIN queries q ON q.id = n.query_id "
        "JOIN chunks c ON c.id = n.chunk_id JOIN texts t ON t.hash = c.text_hash WHERE n.id = ?",
        [negative_id],
    ).fetchone()
    if row is None:
        return None
    keys = ("id", "label", "updated_at", "split", "source", "score", "positive_score", "query_id", "query",
            "doc_id", "negative")  # fmt: skip
    item = dict(zip(keys, row, strict=True))
    # The positive shown beside it: the query's first pair that review has not rejected (edited text if any).
    positive = db.execute(
        "SELECT coalesce(e.text, t.text) FROM pairs p JOIN chunks c ON c.id = p.chunk_id "
        "JOIN texts t ON t.hash = c.text_hash LEFT JOIN texts e ON e.hash = p.edited_text_hash "
        "WHERE p.query_id = ? ORDER BY p.label = 'rejected', p.id LIMIT 1",
        [item["query_id"]],
    ).fetchone()
    item["positive"] = positive[0] if positive else None
    return item


def label_counts(db: Database, target: Target) -> dict[str, int]:
    return {str(k): int(n) for k, n in db.execute(f"SELECT label, count(*) FROM {TABLE[target]} GROUP BY label")}


def decisions_since(db: Database, reviewer: str, since: str) -> int:
    """The reviewer's decisions at or after `since` that still stand (undo events and undone ones left out)."""
    row = db.execute(
        "SELECT count(*) FROM review_events WHERE at >= ? AND reviewer = ? AND action != 'undo' AND undone_by IS NULL",
        [since, reviewer],
    ).fetchone()
    return int(row[0])


def choices(db: Database, target: Target) -> dict[str, list[str]]:
    """Values the source and split filters can take."""
    if target == "pair":
        sources = db.execute("SELECT DISTINCT source FROM pairs ORDER BY source")
        splits = db.execute("SELECT DISTINCT split FROM pairs ORDER BY split")
    else:
        sources = db.execute("SELECT DISTINCT miner FROM negatives ORDER BY miner")
        # Every split queries use (an index answers it); one without negatives just shows an empty queue.
        splits = db.execute("SELECT DISTINCT split FROM queries ORDER BY split")
    return {"source": [r[0] for r in sources], "split": [r[0] for r in splits]}


# --- row state: call inside engine.store.write -----------------------------------------------------------


def row_state(db: Database, target: Target, row_id: int) -> dict[str, Any] | None:
    fields = STATE[target]
    row = db.execute(f"SELECT {', '.join(fields)} FROM {TABLE[target]} WHERE id = ?", [row_id]).fetchone()
    return dict(zip(fields, row, strict=True)) if row else None


def set_row_state(db: Database, target: Target, row_id: int, state: dict[str, Any]) -> None:
    fields = STATE[target]
    assignments = ", ".join(f"{f} = ?" for f in fields)
    db.execute(f"UPDATE {TABLE[target]} SET {assignments} WHERE id = ?", [*(state[f] for f in fields), row_id])


def store_text(db: Database, text: str) -> str:
    digest = text_hash(text)
    db.execute("INSERT OR IGNORE INTO texts (hash, text) VALUES (?, ?)", [digest, text])
    return digest


def chunk_text_hash(db: Database, pair_id: int) -> str | None:
    row = db.execute(
        "SELECT c.text_hash FROM pairs p JOIN chunks c ON c.id = p.chunk_id WHERE p.id = ?", [pair_id]
    ).fetchone()
    return row[0] if row else None


def negative_refs(db: Database, negative_id: int) -> tuple[str, str, str] | None:
    """(query id, chunk id, the query's split) of a negative."""
    row = db.execute(
        "SELECT n.query_id, n.chunk_id, q.split FROM negatives n JOIN queries q ON q.id = n.query_id WHERE n.id = ?",
        [negative_id],
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def find_pair(db: Database, query_id: str, chunk_id: str) -> int | None:
    row = db.execute("SELECT id FROM pairs WHERE query_id = ? AND chunk_id = ?", [query_id, chunk_id]).fetchone()
    return int(row[0]) if row else None


def insert_pair(db: Database, query_id: str, chunk_id: str, split: str, source: str, label: str, at: str) -> int:
    cursor = db.execute(
        "INSERT INTO pairs (query_id, chunk_id, split, source, label, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        [query_id, chunk_id, split, source, label, at],
    )
    return int(cursor.lastrowid)


def delete_pair(db: Database, pair_id: int) -> None:
    db.execute("DELETE FROM pairs WHERE id = ?", [pair_id])


# --- events ---------------------------------------------------------------------------------------------------


def add_event(
    db: Database,
    target: Target,
    target_id: int,
    action: str,
    before: dict[str, Any],
    after: dict[str, Any],
    reviewer: str,
    at: str,
    batch: int | None = None,
) -> int:
    cursor = db.execute(
        "INSERT INTO review_events (target, target_id, action, before_json, after_json, reviewer, at, batch) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [target, target_id, action, json.dumps(before), json.dumps(after), reviewer, at, batch],
    )
    return int(cursor.lastrowid)


def next_batch(db: Database) -> int:
    # Inside the write transaction (BEGIN IMMEDIATE), so two writers never draw the same number.
    return int(db.execute("SELECT coalesce(max(batch), 0) + 1 FROM review_events").fetchone()[0])


def set_undone(db: Database, event_id: int, undo_event_id: int) -> None:
    db.execute("UPDATE review_events SET undone_by = ? WHERE id = ?", [undo_event_id, event_id])


_EVENT = (
    "SELECT id, target, target_id, action, before_json, after_json, reviewer, batch, undone_by, at FROM review_events"
)


def _event(row: tuple[Any, ...]) -> Event:
    i, target, tid, action, before, after, reviewer, batch, undone_by, at = row
    return Event(i, target, tid, action, json.loads(before), json.loads(after), reviewer, batch, undone_by, at)


def last_undoable(db: Database, reviewer: str) -> Event | None:
    """The reviewer's latest decision that no undo has reverted yet."""
    row = db.execute(
        f"{_EVENT} WHERE reviewer = ? AND action != 'undo' AND undone_by IS NULL ORDER BY id DESC LIMIT 1",
        [reviewer],
    ).fetchone()
    return _event(row) if row else None


def batch_events(db: Database, batch: int) -> list[Event]:
    """A batch's decisions not yet undone, latest first (the order undo reverts them in)."""
    rows = db.execute(f"{_EVENT} WHERE batch = ? AND action != 'undo' AND undone_by IS NULL ORDER BY id DESC", [batch])
    return [_event(r) for r in rows]


def events(db: Database, target: Target | None = None, target_id: int | None = None) -> list[Event]:
    """The event log, oldest first; of one row when target and target_id are given."""
    if target is None:
        return [_event(r) for r in db.execute(f"{_EVENT} ORDER BY id")]
    rows = db.execute(f"{_EVENT} WHERE target = ? AND target_id = ? ORDER BY id", [target, target_id])
    return [_event(r) for r in rows]
