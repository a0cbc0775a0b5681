"""Write an ImportBatch in one transaction: all of it, or (on any conflict) none of it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
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
    """
    report = progress or (lambda stage, done, total: None)
    with write(db):
        _check_conflicts(db, batch, problems)
        _resolve_judgments(db, batch, problems)
        _reuse_stored_passages(db, batch)
        problems.raise_if_any()
        before = _table_counts(db)
        _insert(db, "texts", ({"hash": h, "text": t} for h, t in batch.texts.items()), len(batch.texts), report)
        import_id = _record_import(db, batch, file_sha)
        docs = ({**d, "import_id": import_id} for d in batch.documents.values())
        _insert(db, "documents", docs, len(batch.documents), report)
        _insert(db, "chunks", batch.chunks.values(), len(batch.chunks), report)
        queries = ({**q, "import_id": import_id} for q in batch.queries.values())
        _insert(db, "queries", queries, len(batch.queries), report)
        _insert(db, "pairs", batch.pairs.values(), len(batch.pairs), report)
        _insert(db, "negatives", batch.negatives.values(), len(batch.negatives), report)
        added = {k: v - before[k] for k, v in _table_counts(db).items()}
        if not any(added.values()):
            # Nothing new: drop the import record too, so a re-import leaves the store byte-for-byte as it was.
            db.execute("DELETE FROM imports WHERE id = ?", [import_id])
        else:
            db.execute("UPDATE imports SET counts_json = ? WHERE id = ?", [json.dumps(added), import_id])
    return {"added": added, "in_file": batch.counts(), "notes": batch.notes}


def _insert(db: Database, table: str, rows: Iterable[dict[str, Any]], total: int, report: Progress) -> None:
    chunk: list[dict[str, Any]] = []
    done = 0
    for row in rows:
        chunk.append(row)
        if len(chunk) >= BATCH:
            db[table].insert_all(chunk, ignore=True)
            done += len(chunk)
            chunk = []
            report(table, done, total)
    if chunk:
        db[table].insert_all(chunk, ignore=True)
        report(table, done + len(chunk), total)


def _record_import(db: Database, batch: ImportBatch, file_sha: str) -> int:
    cursor = db.execute(
        "INSERT INTO imports (kind, path, sha256, counts_json) VALUES (?, ?, ?, '{}')",
        [batch.kind, str(batch.path), file_sha],
    )
    return int(cursor.lastrowid)


def _table_counts(db: Database) -> dict[str, int]:
    tables = ("documents", "chunks", "queries", "pairs", "negatives")
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


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
