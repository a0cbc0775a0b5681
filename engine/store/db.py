"""Opening project.db: pragmas, migrations, and the write transaction every writer uses."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from engine.store._sqlite_utils import Database
from engine.store.migrations import migrations

DB_NAME = "project.db"


def open_db(path: Path | str, *, migrate: bool = True) -> Database:
    """Open (creating if needed) a project database with WAL, a busy timeout and foreign keys on."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    db = Database(conn)
    # Pragmas must run outside a transaction; WAL lets readers (the TUI) run beside a writer (a job).
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA foreign_keys = ON")
    if migrate:
        migrations.apply(db)
    return db


@contextlib.contextmanager
def write(db: Database) -> Iterator[Database]:
    """One write transaction. BEGIN IMMEDIATE takes the write lock up front, so two processes writing at
    once queue on busy_timeout instead of failing with 'database is locked' halfway through."""
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")
