"""Write an ImportBatch in one transaction: all of it, or (on any conflict) none of it."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from engine.store._sqlite_utils import Database
from engine.store.db import write
from engine.store.import_batch import ImportBatch

Progress = Callable[[str, int, int], None]
BATCH = 2000


class Problems(Protocol):
    """The caller's problem list (engine.ingest.readers.Problems): the store adds conflicts with file and line,
    and raise_if_any raises the caller's error, which rolls the transaction back."""

    def add(self, path: Path, line: int, field: str | None, message: str) -> None: ...

    def raise_if_any(self) -> None: ...


def write_batch(
    db: Database, batch: ImportBatch, file_sha: str, problems: Problems, progress: Progress | None = None
) -> dict[str, Any]:
    """Insert what is new; identical rows already present are left alone, so re-importing changes nothing.

    Returns counts of rows added per table. Adds to `problems` and raises through it (writing nothing) when an
    id in the batch already exists with different content, or a judgment names an unknown document.

    The write lock is held only for the last step: checks read the store and the rows are staged in temporary
    tables (this connection's temp file) without it, then one short transaction copies them in (all or nothing),
    so a big import never starves a training job's heartbeat and metrics for minutes.
    """
    report = progress or (lambda stage, done, total: None)
    _validate(db, batch, problems)
    with _staged(db, batch, report) as columns, write(db, owner=f"import of {batch.path}"):
        if _conflicts_appeared(db):  # another import got in between the checks and the lock
            _check_conflicts(db, batch, problems)
            problems.raise_if_any()
        report("commit", 0, 1)
        import_id = _record_import(db, batch, file_sha)
        added = {table: _copy_staged(db, table, columns[table], import_id) for table in STAGED}
        del added["texts"]
        if not any(added.values()):
            # Nothing new: drop the import record too, so a re-import leaves the store byte-for-byte as it was.
            db.execute("DELETE FROM imports WHERE id = ?", [import_id])
        else:
            db.execute("UPDATE imports SET counts_json = ? WHERE id = ?", [json.dumps(added), import_id])
        report("commit", 1, 1)
    return {"added": added, "in_file": batch.counts(), "notes": batch.notes}


# In foreign-key order; documents and queries get the import's id when copied in.
STAGED = ("texts", "documents", "chunks", "queries", "pairs", "negatives")
_WITH_IMPORT_ID = ("documents", "queries")


def _validate(db: Database, batch: ImportBatch, problems: Problems) -> None:
    _check_conflicts(db, batch, problems)
    _resolve_judgments(db, batch, problems)
    _reuse_stored_passages(db, batch)
    problems.raise_if_any()


def _batch_rows(batch: ImportBatch, table: str) -> list[dict[str, Any]]:
    if table == "texts":
        return [{"hash": h, "text": t} for h, t in batch.texts.items()]
    return list(getattr(batch, table).values())


@contextlib.contextmanager
def _staged(db: Database, batch: ImportBatch, report: Progress) -> Iterator[dict[str, list[str]]]:
    """The batch's rows in temp.stage_<table> (written without any lock on project.db), and the columns each
    holds; the temp tables are dropped afterwards."""
    try:
        db.execute("SAVEPOINT stage")  # one temp-file transaction, not one per row
        try:
            columns = {table: _stage(db, table, _batch_rows(batch, table), report) for table in STAGED}
        except BaseException:
            db.execute("ROLLBACK TO stage")
            db.execute("RELEASE stage")
            raise
        db.execute("RELEASE stage")
        yield columns
    finally:
        for table in STAGED:
            db.execute(f"DROP TABLE IF EXISTS temp.stage_{table}")


def _stage(db: Database, table: str, rows: list[dict[str, Any]], report: Progress) -> list[str]:
    # Every column any row has (as sqlite-utils' insert_all does): a row without one inserts NULL there.
    columns = list(dict.fromkeys(key for row in rows for key in row))
    db.execute(f"CREATE TEMP TABLE stage_{table} AS SELECT * FROM main.{table} WHERE 0")
    names, marks = ", ".join(_quote(c) for c in columns), ", ".join("?" * len(columns))
    for start in range(0, len(rows), BATCH):
        part = rows[start : start + BATCH]
        db.conn.executemany(
            f"INSERT INTO temp.stage_{table} ({names}) VALUES ({marks})",
            ([_value(row.get(c)) for c in columns] for row in part),
        )
        report(table, start + len(part), len(rows))
    return columns


def _copy_staged(db: Database, table: str, columns: list[str], import_id: int) -> int:
    """INSERT OR IGNORE: rows already present (identical, checked above) stay as they are. Returns rows added."""
    if not columns:
        return 0
    names = ", ".join(_quote(c) for c in columns)
    if table in _WITH_IMPORT_ID:
        cursor = db.execute(
            f"INSERT OR IGNORE INTO main.{table} ({names}, import_id) SELECT {names}, ? FROM temp.stage_{table}",
            [import_id],
        )
    else:
        cursor = db.execute(f"INSERT OR IGNORE INTO main.{table} ({names}) SELECT {names} FROM temp.stage_{table}")
    return max(cursor.rowcount, 0)


def _conflicts_appeared(db: Database) -> bool:
    """Staged documents or queries that meanwhile exist with other content (one indexed join each)."""
    row = db.execute(
        "SELECT EXISTS (SELECT 1 FROM temp.stage_documents s JOIN main.documents d ON d.id = s.id "
        "WHERE d.text_hash != s.text_hash) OR EXISTS (SELECT 1 FROM temp.stage_queries s "
        "JOIN main.queries q ON q.id = s.id WHERE q.text != s.text OR q.split != s.split)"
    ).fetchone()
    return bool(row[0])


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _value(value: Any) -> Any:
    """As sqlite-utils stores them: dicts and lists as JSON text."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _record_import(db: Database, batch: ImportBatch, file_sha: str) -> int:
    cursor = db.execute(
        "INSERT INTO imports (kind, path, sha256, counts_json) VALUES (?, ?, ?, '{}')",
        [batch.kind, str(batch.path), file_sha],
    )
    return int(cursor.lastrowid)


def _check_conflicts(db: Database, batch: ImportBatch, problems: Problems) -> None:
    """An id that exists with other content is an error, never a silent overwrite."""
    for doc_id, existing in _existing(db, "documents", "id, text_hash", batch.documents):
        if existing["text_hash"] != batch.documents[doc_id]["text_hash"]:
            path, line = batch.origin[("document", doc_id)]
            problems.add(path, line, "_id", f"document '{doc_id}' already exists in the project with other text")
    for query_id, existing in _existing(db, "queries", "id, text, split", batch.queries):
        new = batch.queries[query_id]
        path, line = batch.origin[("query", query_id)]
        if existing["text"] != new["text"]:
            problems.add(path, line, "_id", f"query '{query_id}' already exists in the project with other text")
        elif existing["split"] != new["split"]:
            problems.add(
                path,
                line,
                "split",
                f"query '{query_id}' is already in split '{existing['split']}', not '{new['split']}'",
            )


def _existing(db: Database, table: str, columns: str, ids: dict[str, Any]) -> Iterable[tuple[str, dict]]:
    keys = list(ids)
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        marks = ",".join("?" * len(part))
        for row in db.query(f"SELECT {columns} FROM {table} WHERE id IN ({marks})", part):
            yield row["id"], row


def _resolve_judgments(db: Database, batch: ImportBatch, problems: Problems) -> None:
    """Queries files name relevant documents (or chunks); point each judgment at a chunk in store or batch."""
    if batch.kind != "queries":
        return
    resolved: dict[tuple[str, str], dict[str, Any]] = {}
    for (query_id, ref), pair in batch.pairs.items():
        cid = _chunk_for(db, ref)
        if cid is None:
            problems.add(Path(batch.path), pair["line"], "relevant", f"unknown document or chunk '{ref}'")
            continue
        resolved[(query_id, cid)] = {k: v for k, v in pair.items() if k != "line"} | {"chunk_id": cid}
    batch.pairs = resolved


def _chunk_for(db: Database, ref: str) -> str | None:
    row = db.execute("SELECT id FROM chunks WHERE id = ?", [ref]).fetchone()
    if row:
        return row[0]
    # A document id: its first chunk in the document's own chunking (metrics count documents, not chunks).
    row = db.execute(
        "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id AND c.strategy = d.chunking "
        "WHERE d.id = ? ORDER BY c.position LIMIT 1",
        [ref],
    ).fetchone()
    return row[0] if row else None


def _reuse_stored_passages(db: Database, batch: ImportBatch) -> None:
    """A pairs file's passage whose exact text is already a chunk (say, from the BEIR corpus) points there."""
    if batch.kind != "pairs":
        return
    remap: dict[str, str] = {}
    for cid, chunk in list(batch.chunks.items()):
        row = db.execute(
            "SELECT id FROM chunks WHERE text_hash = ? AND id != ? ORDER BY strategy = 'source' DESC LIMIT 1",
            [chunk["text_hash"], cid],
        ).fetchone()
        if row:
            remap[cid] = row[0]
            del batch.chunks[cid]
            del batch.documents[chunk["doc_id"]]
    if remap:
        batch.pairs = {(q, remap.get(c, c)): p | {"chunk_id": remap.get(c, c)} for (q, c), p in batch.pairs.items()}
        batch.negatives = {
            (q, remap.get(c, c)): n | {"chunk_id": remap.get(c, c)} for (q, c), n in batch.negatives.items()
        }


def is_disk_full(error: BaseException) -> bool:
    """Whether a failed write ran out of space (SQLITE_FULL), also when a later error (a ROLLBACK that found
    SQLite had already rolled back) was raised while handling it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlite3.Error) and (
            getattr(seen, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(seen)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
