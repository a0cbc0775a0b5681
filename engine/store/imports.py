"""Write an import in one transaction: all of it, or (on any conflict) none of it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from engine.store._sqlite_utils import Database
from engine.store.db import write
from engine.store.import_batch import ImportBatch
from engine.store.staging import STAGED, Progress, Staging

__all__ = ["Progress", "is_disk_full", "write_batch", "write_streamed"]


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
    tables (engine.store.staging) without it, then one short transaction copies them in (all or nothing),
    so a big import never starves a training job's heartbeat and metrics for minutes.
    """
    seen = last_import(db)  # before the checks: an import committed after this one's reads changes it
    _validate(db, batch, problems)
    with Staging(db, progress) as staging:
        for table in STAGED:
            rows = _batch_rows(batch, table)
            staging.add_all(table, rows, len(rows))

        def recheck() -> None:
            _check_conflicts(db, batch, problems)
            problems.raise_if_any()

        added = commit(db, staging, batch.kind, batch.path, file_sha, recheck, seen)
    return {"added": added, "in_file": batch.counts(), "notes": batch.notes}


def write_streamed(
    db: Database,
    kind: str,
    path: Path,
    file_sha: str,
    fill: Callable[[Staging], list[str]],
    origins: dict[str, Path],
    problems: Problems,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Like write_batch, for an input read as it streams: `fill` parses it into the staging tables a batch at a
    time (raising through `problems` on bad input) and returns its notes; `origins` names the file each table's
    staged lines come from, for conflicts with the store. Memory stays bounded whatever the input's size."""
    with Staging(db, progress) as staging:
        notes = fill(staging)
        seen = last_import(db)
        staging.conflicts(problems, origins)
        problems.raise_if_any()
        in_file = staging.counts()

        def recheck() -> None:
            staging.conflicts(problems, origins)
            problems.raise_if_any()

        added = commit(db, staging, kind, path, file_sha, recheck, seen)
    return {"added": added, "in_file": in_file, "notes": notes}


def last_import(db: Database) -> int:
    """The newest import's id. Only imports write documents and queries, and one that added rows keeps its
    record: while this is unchanged, no conflicting row can have appeared since it was read."""
    return int(db.execute("SELECT coalesce(max(id), 0) FROM imports").fetchone()[0])


def commit(
    db: Database,
    staging: Staging,
    kind: str,
    path: Path,
    file_sha: str,
    recheck: Callable[[], None],
    imports_seen: int,
) -> dict[str, int]:
    """Copy the staged rows in under the write lock, in one transaction; `recheck` raises (rolling it back) when a
    conflicting row was written by another import between the checks (which saw `imports_seen`) and the lock."""
    staging.sort()
    staging.check_references()
    report = staging.report
    with staging.fast_copy(), write(db, owner=f"import of {path}"):
        # Another import since the checks: look again (a join over every staged row, so only then).
        if last_import(db) != imports_seen and staging.conflicts_appeared():
            recheck()
        report("commit", 0, 1)
        import_id = _record_import(db, kind, path, file_sha)
        added = {table: staging.copy(table, import_id) for table in STAGED}
        del added["texts"]
        if not any(added.values()):
            # Nothing new: drop the import record too, so a re-import leaves the store byte-for-byte as it was.
            db.execute("DELETE FROM imports WHERE id = ?", [import_id])
        else:
            db.execute("UPDATE imports SET counts_json = ? WHERE id = ?", [json.dumps(added), import_id])
        report("commit", 1, 1)
    return added


def _validate(db: Database, batch: ImportBatch, problems: Problems) -> None:
    _check_conflicts(db, batch, problems)
    _resolve_judgments(db, batch, problems)
    _reuse_stored_passages(db, batch)
    problems.raise_if_any()


def _batch_rows(batch: ImportBatch, table: str) -> list[dict[str, Any]]:
    if table == "texts":
        return [{"hash": h, "text": t} for h, t in batch.texts.items()]
    return list(getattr(batch, table).values())


def _record_import(db: Database, kind: str, path: Path, file_sha: str) -> int:
    cursor = db.execute(
        "INSERT INTO imports (kind, path, sha256, counts_json) VALUES (?, ?, ?, '{}')", [kind, str(path), file_sha]
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
