"""An import's rows staged in this connection's temp tables, then copied into project.db in one short transaction.

Staging writes only the connection's temp file: no lock on project.db is taken, so other processes (a training
job's heartbeat and metrics) write as usual meanwhile, and a killed import leaves nothing behind (SQLite deletes
the temp file with the connection; no row reaches project.db before the final COMMIT). Rows go in a batch at a time
as the input streams, so memory stays bounded whatever the file's size, and what must span the whole file (ids
seen, with their lines) is asked of the staged tables, not held in Python.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from engine.store._sqlite_utils import Database
from engine.store.schema import SOURCE_STRATEGY, chunk_id, text_hash

Progress = Callable[[str, int, int], None]
BATCH = 2000

# Columns staged per table, in foreign-key order. `_line` (the input line, 0 when unknown) is staged beside them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "texts": ("hash", "text"),
    "documents": ("id", "title", "text_hash", "source", "chunking"),
    "chunks": ("id", "doc_id", "strategy", "position", "text_hash", "start_char", "end_char"),
    "queries": ("id", "text", "split", "source"),
    "pairs": ("query_id", "chunk_id", "split", "source", "score"),
    "negatives": ("query_id", "chunk_id", "miner"),
}
STAGED = tuple(COLUMNS)
WITH_IMPORT_ID = ("documents", "queries")
# Copied in key order, so each B-tree page is written once: in file order 100k passages held the lock 18 s.
# Pairs and negatives keep file order, since their row ids are the review queue's order.
SORT_KEYS = {"texts": "hash", "documents": "id", "chunks": "id", "queries": "id"}
# Each staged reference (child table, column, parent table, parent key) must name a staged row or a stored one.
REFERENCES = (
    ("documents", "text_hash", "texts", "hash"),
    ("chunks", "doc_id", "documents", "id"),
    ("chunks", "text_hash", "texts", "hash"),
    ("pairs", "query_id", "queries", "id"),
    ("pairs", "chunk_id", "chunks", "id"),
    ("negatives", "query_id", "queries", "id"),
    ("negatives", "chunk_id", "chunks", "id"),
)
COPY_CACHE_KIB = 131072  # project.db's page cache during the copy: 2 MB spilled dirty pages to the WAL all along


class Problems(Protocol):
    """The caller's problem list (engine.ingest.readers.Problems)."""

    def add(self, path: Path, line: int, field: str | None, message: str) -> None: ...

    def raise_if_any(self) -> None: ...


class Staging:
    """`with Staging(db, report) as staging:` temp.stage_<table> for each table, dropped on the way out."""

    def __init__(self, db: Database, report: Progress | None = None) -> None:
        self.db = db
        self.report = report or (lambda stage, done, total: None)
        self.buffers: dict[str, list[tuple[Any, ...]]] = {table: [] for table in STAGED}
        self.staged = dict.fromkeys(STAGED, 0)
        self.totals: dict[str, int] = {}

    def __enter__(self) -> Staging:
        self._drop()  # a failed import earlier on this connection may have left some
        for table, columns in COLUMNS.items():
            names = ", ".join(columns)
            self.db.execute(f"CREATE TEMP TABLE stage_{table} AS SELECT {names} FROM main.{table} WHERE 0")
            self.db.execute(f"ALTER TABLE temp.stage_{table} ADD COLUMN _line INTEGER NOT NULL DEFAULT 0")
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop()

    def _drop(self) -> None:
        for table in STAGED:
            self.db.execute(f"DROP TABLE IF EXISTS temp.stage_{table}")

    # --- adding rows (the same calls as ImportBatch's) ------------------------------------------------------

    def add(self, table: str, row: Mapping[str, Any], line: int = 0) -> None:
        self.buffers[table].append((*(_value(row.get(c)) for c in COLUMNS[table]), line))
        if len(self.buffers[table]) >= BATCH:
            self.flush(table)

    def add_all(self, table: str, rows: Iterable[Mapping[str, Any]], total: int) -> None:
        self.totals[table] = total
        for row in rows:
            self.add(table, row)
        self.flush(table)

    def add_text(self, text: str) -> str:
        digest = text_hash(text)
        self.add("texts", {"hash": digest, "text": text})
        return digest

    def add_document(self, doc_id: str, title: str, body: str, source: str, where: tuple[Path, int]) -> None:
        row = {"id": doc_id, "title": title, "text_hash": self.add_text(body), "source": source}
        self.add("documents", row | {"chunking": SOURCE_STRATEGY}, where[1])

    def add_chunk(self, doc_id: str, strategy: str, position: int, text: str, line: int = 0) -> str:
        cid = chunk_id(doc_id, strategy, position)
        row = {"id": cid, "doc_id": doc_id, "strategy": strategy, "position": position}
        self.add("chunks", row | {"text_hash": self.add_text(text)}, line)
        return cid

    def add_query(self, query_id: str, text: str, split: str, source: str, where: tuple[Path, int]) -> None:
        self.add("queries", {"id": query_id, "text": text, "split": split, "source": source}, where[1])

    def add_pair(self, query_id: str, cid: str, split: str, source: str, score: float = 1.0, line: int = 0) -> None:
        row = {"query_id": query_id, "chunk_id": cid, "split": split, "source": source, "score": score}
        self.add("pairs", row, line)

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table else STAGED:
            rows, self.buffers[name] = self.buffers[name], []
            if not rows:
                continue
            marks = ", ".join("?" * (len(COLUMNS[name]) + 1))
            self.db.execute("SAVEPOINT stage")  # one temp-file transaction per batch, not one per row
            self.db.conn.executemany(f"INSERT INTO temp.stage_{name} VALUES ({marks})", rows)
            self.db.execute("RELEASE stage")
            self.staged[name] += len(rows)
            self.report(name, self.staged[name], self.totals.get(name, 0))

    # --- checks that span the whole input ----------------------------------------------------------------

    def index_ids(self, table: str) -> None:
        """An index on the staged ids, for has() and duplicates() (built once the table is filled: faster)."""
        self.flush(table)
        self.db.execute(f"CREATE INDEX IF NOT EXISTS temp.stage_{table}_id ON stage_{table}(id, _line)")

    def has(self, table: str, row_id: str) -> bool:
        return (
            self.db.execute(f"SELECT 1 FROM temp.stage_{table} WHERE id = ? LIMIT 1", [row_id]).fetchone() is not None
        )

    def duplicates(self, table: str, limit: int) -> list[tuple[str, int, int]]:
        """(id, line, first line) of each repeat of an id, in line order; index_ids(table) first."""
        return self.db.execute(
            f"SELECT s.id, s._line, f.first FROM temp.stage_{table} s JOIN (SELECT id, min(_line) AS first "
            f"FROM temp.stage_{table} GROUP BY id HAVING count(*) > 1) f ON f.id = s.id "
            "WHERE s._line > f.first ORDER BY s._line LIMIT ?",
            [limit],
        ).fetchall()

    def conflicts(self, problems: Problems, origins: Mapping[str, Path]) -> None:
        """Staged documents and queries whose id the store holds with other content: an error, never a silent
        overwrite. `origins` names the file each table's lines are in."""
        self.flush()
        rows = self.db.execute(
            "SELECT s.id, s._line FROM temp.stage_documents s JOIN main.documents d ON d.id = s.id "
            "WHERE d.text_hash != s.text_hash ORDER BY s._line LIMIT 50"
        )
        for doc_id, line in rows:
            message = f"document '{doc_id}' already exists in the project with other text"
            problems.add(origins["documents"], line, "_id", message)
        rows = self.db.execute(
            "SELECT s.id, s._line, q.text != s.text, q.split, s.split FROM temp.stage_queries s "
            "JOIN main.queries q ON q.id = s.id WHERE q.text != s.text OR q.split != s.split ORDER BY s._line LIMIT 50"
        )
        for query_id, line, other_text, split, new_split in rows:
            if other_text:
                problems.add(
                    origins["queries"], line, "_id", f"query '{query_id}' already exists in the project with other text"
                )
            else:
                message = f"query '{query_id}' is already in split '{split}', not '{new_split}'"
                problems.add(origins["queries"], line, "split", message)

    def conflicts_appeared(self) -> bool:
        """Staged documents or queries that meanwhile exist with other content (one indexed join each)."""
        row = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM temp.stage_documents s JOIN main.documents d ON d.id = s.id "
            "WHERE d.text_hash != s.text_hash) OR EXISTS (SELECT 1 FROM temp.stage_queries s "
            "JOIN main.queries q ON q.id = s.id WHERE q.text != s.text OR q.split != s.split)"
        ).fetchone()
        return bool(row[0])

    def counts(self) -> dict[str, int]:
        """Distinct rows per table, as the input holds them."""
        self.flush()
        keys = {"documents": "id", "chunks": "id", "queries": "id", "pairs": "query_id, chunk_id"}
        keys["negatives"] = "query_id, chunk_id, miner"
        out = {}
        for table, key in keys.items():
            sql = f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM temp.stage_{table})"
            out[table] = int(self.db.execute(sql).fetchone()[0])
        return out

    # --- the copy -----------------------------------------------------------------------------------------

    def sort(self) -> None:
        """Rewrite the key-ordered tables in key order (no lock held), so the copy under the lock runs in order."""
        self.flush()
        for table, key in SORT_KEYS.items():
            names = ", ".join((*COLUMNS[table], "_line"))
            self.db.execute(
                f"CREATE TEMP TABLE sorted_{table} AS SELECT {names} FROM temp.stage_{table} ORDER BY {key}"
            )
            self.db.execute(f"DROP TABLE temp.stage_{table}")
            self.db.execute(f"ALTER TABLE temp.sorted_{table} RENAME TO stage_{table}")

    def check_references(self) -> None:
        """Every staged reference resolves, so the copy may run without SQLite's per-row foreign-key checks (they
        were 2/3 of the time under the lock). Nothing ever deletes stored texts, documents, chunks or queries, so
        a reference checked here still resolves once the lock is held."""
        for table, key in SORT_KEYS.items():
            self.db.execute(f"CREATE INDEX IF NOT EXISTS temp.stage_{table}_key ON stage_{table}({key})")
        for child, column, parent, key in REFERENCES:
            row = self.db.execute(
                f"SELECT s.{column} FROM temp.stage_{child} s WHERE s.{column} IS NOT NULL "
                f"AND NOT EXISTS (SELECT 1 FROM temp.stage_{parent} p WHERE p.{key} = s.{column}) "
                f"AND NOT EXISTS (SELECT 1 FROM main.{parent} m WHERE m.{key} = s.{column}) LIMIT 1"
            ).fetchone()
            if row is not None:  # a bug in a parser, never bad input: those are reported before this
                raise RuntimeError(f"import staged {child}.{column} = {row[0]!r}, which names no {parent} row")

    @contextlib.contextmanager
    def fast_copy(self) -> Iterator[None]:
        """Foreign-key checks off (check_references did them) and a larger page cache, for the copy only."""
        conn = self.db.conn
        cache = conn.execute("PRAGMA main.cache_size").fetchone()[0]
        conn.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: then SQLite checks as usual
        conn.execute(f"PRAGMA main.cache_size = -{COPY_CACHE_KIB}")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA main.cache_size = {cache}")
            conn.execute("PRAGMA foreign_keys = ON")

    def copy(self, table: str, import_id: int) -> int:
        """INSERT OR IGNORE into main (the caller holds the write lock): rows already present (identical, checked
        before) stay as they are. Returns rows added."""
        names = ", ".join(_quote(c) for c in COLUMNS[table])
        if table in WITH_IMPORT_ID:
            sql = f"INSERT OR IGNORE INTO main.{table} ({names}, import_id) SELECT {names}, ? FROM temp.stage_{table}"
            cursor = self.db.execute(sql + " ORDER BY rowid", [import_id])
        else:
            sql = f"INSERT OR IGNORE INTO main.{table} ({names}) SELECT {names} FROM temp.stage_{table} ORDER BY rowid"
            cursor = self.db.execute(sql)
        return max(cursor.rowcount, 0)


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _value(value: Any) -> Any:
    """As sqlite-utils stores them: dicts and lists as JSON text."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value
