"""LanceDB tables of the project and which one is live: the `indexes` table (one row per built table).

status: 'building' until every chunk is in the table (a killed or cancelled build stays 'building' and is resumed
by the next build of the same model), then 'ready'. `live` moves between ready rows in one transaction; the unique
partial index on live guarantees at most one.
"""

from __future__ import annotations

import json
from typing import Any

from engine.store._sqlite_utils import Database
from engine.store.db import write

_COLUMNS = (
    "id",
    "table_name",
    "model",
    "model_fingerprint",
    "strategy",
    "rows",
    "status",
    "live",
    "run_id",
    "created_at",
)
_SELECT = (
    f"SELECT {', '.join('i.' + c for c in _COLUMNS)}, r.config_json, r.result_json, r.status, r.pid, "
    "(julianday('now') - julianday(r.heartbeat_at)) * 86400 FROM indexes i LEFT JOIN runs r ON r.id = i.run_id"
)


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(_COLUMNS, row[: len(_COLUMNS)], strict=True))
    config, result, run_status, pid, heartbeat_age = row[len(_COLUMNS) :]
    out.update(
        live=bool(out["live"]),
        config=json.loads(config or "{}"),
        result=json.loads(result or "{}"),
        run_status=run_status,
        pid=pid,
        heartbeat_age=heartbeat_age,
    )
    return out


def index_chunks(db: Database) -> list[tuple[str, str, str, str]]:
    """(chunk id, document id, text hash, text) of every document's own chunking: what an index holds."""
    return db.execute(
        "SELECT c.id, c.doc_id, c.text_hash, t.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
        "AND c.strategy = d.chunking JOIN texts t ON t.hash = c.text_hash ORDER BY c.doc_id, c.position"
    ).fetchall()


_INDEX_CHUNKS = (
    "SELECT c.id, c.doc_id, c.text_hash, t.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
    "AND c.strategy = d.chunking JOIN texts t ON t.hash = c.text_hash"
)


def count_index_chunks(db: Database) -> int:
    return int(
        db.execute(
            "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id AND c.strategy = d.chunking"
        ).fetchone()[0]
    )


def index_chunk_page(db: Database, after: str | None, limit: int) -> list[tuple[str, str, str, str]]:
    """The next `limit` index chunks by id after `after` (keyset paging: each page is its own short read, so a
    build of millions of chunks never holds them all, nor one read transaction for hours)."""
    where, params = (" WHERE c.id > ?", [after]) if after is not None else ("", [])
    return db.execute(f"{_INDEX_CHUNKS}{where} ORDER BY c.id LIMIT ?", [*params, limit]).fetchall()


def index_chunk_hashes(db: Database, ids: list[str]) -> dict[str, str]:
    """Current text hash of each of `ids` that is still an index chunk (a resumed build drops the others)."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        rows = db.execute(
            "SELECT c.id, c.text_hash FROM chunks c JOIN documents d ON d.id = c.doc_id AND c.strategy = d.chunking "
            f"WHERE c.id IN ({marks})",
            part,
        )
        found.update(dict(rows.fetchall()))
    return found


def sample_chunk_texts(db: Database, limit: int) -> list[str]:
    """Up to `limit` index chunk texts spread evenly over the corpus (fitting max_seq_length, standing in for
    queries), without reading the whole corpus."""
    total = count_index_chunks(db)
    step = max(1, total // max(limit, 1))
    rows = db.execute(f"SELECT text FROM ({_INDEX_CHUNKS} WHERE (c.rowid % ?) = 0) LIMIT ?", [step, limit]).fetchall()
    if len(rows) < min(limit, total):  # rowids not evenly spread (deletes): take the first ones instead
        rows = db.execute(f"SELECT text FROM ({_INDEX_CHUNKS}) LIMIT ?", [limit]).fetchall()
    return [r[0] for r in rows]


def chunk_strategies(db: Database) -> str:
    rows = db.execute("SELECT DISTINCT chunking FROM documents ORDER BY chunking").fetchall()
    return ",".join(r[0] for r in rows) or "source"


def query_texts(db: Database, limit: int) -> list[str]:
    """Up to `limit` of the project's query texts, spread evenly over them (for measuring ANN recall)."""
    total = int(db.execute("SELECT count(*) FROM queries").fetchone()[0])
    step = max(1, total // max(limit, 1))
    rows = db.execute("SELECT text FROM queries WHERE (rowid % ?) = 0 ORDER BY id LIMIT ?", [step, limit])
    return [r[0] for r in rows]


def create(db: Database, table_name: str, model: str, fingerprint: str, strategy: str, run_id: int) -> int:
    with write(db):
        cursor = db.execute(
            "INSERT INTO indexes (table_name, model, model_fingerprint, strategy, status, live, run_id) "
            "VALUES (?, ?, ?, ?, 'building', 0, ?)",
            [table_name, model, fingerprint, strategy, run_id],
        )
    return int(cursor.lastrowid)


def set_run(db: Database, index_id: int, run_id: int) -> None:
    """A resumed build: the row now belongs to the run that continues it."""
    with write(db):
        db.execute("UPDATE indexes SET run_id = ? WHERE id = ?", [run_id, index_id])


def unfinished(db: Database, fingerprint: str, strategy: str) -> dict[str, Any] | None:
    """The newest build of this model and chunking that never completed (killed, cancelled or failed)."""
    row = db.execute(
        f"{_SELECT} WHERE i.status = 'building' AND i.model_fingerprint = ? AND i.strategy = ? "
        "ORDER BY i.id DESC LIMIT 1",
        [fingerprint, strategy],
    ).fetchone()
    return _row(row) if row else None


def latest_ready(db: Database, fingerprint: str, strategy: str | None = None) -> dict[str, Any] | None:
    """The newest complete table of a model (the live one first): where unchanged chunks are copied from."""
    where = "i.status = 'ready' AND i.model_fingerprint = ?" + (" AND i.strategy = ?" if strategy else "")
    params = [fingerprint, strategy] if strategy else [fingerprint]
    row = db.execute(f"{_SELECT} WHERE {where} ORDER BY i.live DESC, i.id DESC LIMIT 1", params).fetchone()
    return _row(row) if row else None


def mark_ready(db: Database, index_id: int, rows: int, live: bool) -> None:
    """Complete a build and, when `live`, make it the live index: one transaction, so readers see the old
    live table or the new one, never neither."""
    with write(db):
        db.execute("UPDATE indexes SET status = 'ready', rows = ? WHERE id = ?", [rows, index_id])
        if live:
            _switch(db, index_id, "build")


def set_rows(db: Database, index_id: int, rows: int) -> None:
    with write(db):
        db.execute("UPDATE indexes SET rows = ? WHERE id = ?", [rows, index_id])


def make_live(db: Database, index_id: int, reason: str = "use") -> None:
    """Switch the live index ('use': a user's choice; 'rollback': back to the one live before), recorded."""
    with write(db):
        _switch(db, index_id, reason)


def _switch(db: Database, index_id: int, reason: str) -> None:
    status = db.execute("SELECT status FROM indexes WHERE id = ?", [index_id]).fetchone()
    if status is None or status[0] != "ready":
        raise ValueError(f"index {index_id} is not a ready table")
    before = db.execute("SELECT id FROM indexes WHERE live = 1").fetchone()
    db.execute("UPDATE indexes SET live = 0 WHERE live = 1")
    db.execute("UPDATE indexes SET live = 1 WHERE id = ?", [index_id])
    db.execute(
        "INSERT INTO index_switches (from_index_id, to_index_id, reason) VALUES (?, ?, ?)",
        [before[0] if before else None, index_id, reason],
    )


def switches(db: Database) -> list[dict[str, Any]]:
    """The live index's history, oldest first: from/to index ids and table names, why, when."""
    rows = db.execute(
        "SELECT s.id, s.from_index_id, f.table_name, s.to_index_id, t.table_name, s.reason, s.at "
        "FROM index_switches s LEFT JOIN indexes f ON f.id = s.from_index_id JOIN indexes t ON t.id = s.to_index_id "
        "ORDER BY s.id"
    )
    keys = ("id", "from_id", "from_table", "to_id", "to_table", "reason", "at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def live(db: Database) -> dict[str, Any] | None:
    row = db.execute(f"{_SELECT} WHERE i.live = 1").fetchone()
    return _row(row) if row else None


def get(db: Database, index_id: int) -> dict[str, Any] | None:
    row = db.execute(f"{_SELECT} WHERE i.id = ?", [index_id]).fetchone()
    return _row(row) if row else None


def previous_ready(db: Database, index_id: int) -> dict[str, Any] | None:
    """The ready table built before `index_id` (what rollback goes back to)."""
    row = db.execute(
        f"{_SELECT} WHERE i.status = 'ready' AND i.id < ? ORDER BY i.id DESC LIMIT 1", [index_id]
    ).fetchone()
    return _row(row) if row else None


def all_indexes(db: Database) -> list[dict[str, Any]]:
    return [_row(r) for r in db.execute(f"{_SELECT} ORDER BY i.id DESC")]


def run_record(db: Database, run_id: int) -> dict[str, Any] | None:
    """A run with its config and result (for a model card's lineage)."""
    row = db.execute(
        "SELECT id, kind, status, parent_id, model_path, config_json, result_json, created_at, "
        "finished_at FROM runs WHERE id = ?",
        [run_id],
    ).fetchone()
    if row is None:
        return None
    keys = ("id", "kind", "status", "parent_id", "model_path", "config", "result", "created_at", "finished_at")
    out = dict(zip(keys, row, strict=True))
    out["config"], out["result"] = json.loads(out["config"] or "{}"), json.loads(out["result"] or "{}")
    return out
