"""Opening project.db (read-write, or read-only when the folder cannot be written) and the write transaction every
writer uses.

One writer at a time: `write` takes SQLite's write lock up front (BEGIN IMMEDIATE) and, while another process
holds it, waits for as long as the lock lasts (SQLite's busy handler, then retries with backoff). A job's heartbeat,
a trainer's metrics or an import never fail because another process was writing; a wait longer than the busy
timeout prints one line on stderr naming the holder when it left a note (`project.db-writer`, see `write(owner=…)`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from engine.store._sqlite_utils import Database
from engine.store.migrations import migrations

DB_NAME = "project.db"
BUSY_TIMEOUT_ENV = "EMBTUNE_BUSY_TIMEOUT_MS"  # tests shorten it; the wait itself never ends in an error
BUSY_TIMEOUT_MS = 5000  # a normal write takes milliseconds: past this, a wait is unusual and is reported
NOTICE_EVERY_S = 60.0  # how often a still-waiting writer repeats its notice
MAX_BACKOFF_S = 1.0
OWNER_SUFFIX = "-writer"  # project.db-writer: who holds a long write transaction (pid, what, since)


class StoreBusy(Exception):
    """The write lock stayed held for longer than the caller's `patience` (only callers that asked for one)."""


class ReadOnlyDatabase(Exception):
    """A write on a database opened read-only (its project folder cannot be written)."""


ErrorFactory = Callable[[str], Exception]


@dataclass
class _Handle:
    """What `write` needs to know about a connection beyond sqlite3's: where it is and whether it may write."""

    path: Path | None
    read_only: bool = False
    error: ErrorFactory = ReadOnlyDatabase

    def read_only_error(self, detail: str = "") -> Exception:
        folder = self.path.parent if self.path else "?"
        return self.error(f"project folder is read-only: {folder}{detail}")


def busy_timeout_ms() -> int:
    return int(os.environ.get(BUSY_TIMEOUT_ENV, BUSY_TIMEOUT_MS))


def open_db(path: Path | str, *, migrate: bool = True, read_only_error: ErrorFactory = ReadOnlyDatabase) -> Database:
    """Open (creating if needed) a project database with WAL, a busy timeout and foreign keys on; read-only, with
    no migration, when this process cannot write the folder or the database (`read_only_error` builds the error
    a write then raises, so the caller's own error class reaches its user)."""
    path = Path(path)
    handle = _Handle(path, read_only=not writable(path), error=read_only_error)
    db = Database(_connect_read_only(handle) if handle.read_only else _connect(handle))
    db.conn.execute("PRAGMA foreign_keys = ON")
    db._embtune_handle = handle  # type: ignore[attr-defined]
    if handle.read_only:
        _require_current_schema(db, handle)
    elif migrate and migrations.pending(db):
        with write(db, owner="a schema upgrade"):
            migrations.apply(db)
    return db


def _connect(handle: _Handle) -> sqlite3.Connection:
    timeout = busy_timeout_ms()
    conn = sqlite3.connect(str(handle.path), timeout=timeout / 1000, isolation_level=None, check_same_thread=False)
    # Pragmas must run outside a transaction; WAL lets readers (the TUI) run beside a writer (a job).
    _until_free(handle, lambda: conn.execute("PRAGMA journal_mode = WAL"))
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA busy_timeout = {timeout}")
    return conn


def is_read_only(db: Database) -> bool:
    return _handle(db).read_only


def writable(path: Path) -> bool:
    """Can this process write the database, the -wal/-shm files beside it and the folder (which SQLite needs for
    them)? os.access answers for this user: root passes on a `chmod a-w` folder, and can indeed write there."""
    if not os.access(path.parent, os.W_OK):
        return False
    return all(os.access(p, os.W_OK) for p in (path, *_wal_files(path)) if p.exists())


def _wal_files(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _connect_read_only(handle: _Handle) -> sqlite3.Connection:
    """mode=ro reads the committed WAL too but needs the -shm file (created, or present and readable); where that
    fails (a folder nobody may write and no -shm), immutable=1 reads the database file as it is, without locks."""
    path = handle.path
    assert path is not None
    if not path.exists():
        raise handle.read_only_error(f" (and it holds no {path.name})")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    with contextlib.suppress(sqlite3.OperationalError):
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    return sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False)


def _require_current_schema(db: Database, handle: _Handle) -> None:
    """No migration can run read-only: a database from an older embtune cannot be read safely."""
    pending = [m.name for m in migrations.pending(db)]
    if pending:
        raise handle.read_only_error(
            f"; its database needs a schema upgrade ({', '.join(pending)}) that cannot be written here: "
            "open it once where it is writable"
        )


def _handle(db: Database) -> _Handle:
    """Databases opened elsewhere (tests' in-memory ones) get a default handle."""
    return getattr(db, "_embtune_handle", None) or _Handle(None)


@contextlib.contextmanager
def write(db: Database, *, patience: float | None = None, owner: str | None = None) -> Iterator[Database]:
    """One write transaction, waiting for the write lock as long as another process holds it.

    `patience` (seconds): give up after that with StoreBusy instead (a trainer's metric flush keeps its buffer and
    tries again later rather than stall training). `owner` ("import of corpus.jsonl"): a note left beside the
    database while this transaction holds the lock, so that a waiting process can say what it waits for.
    """
    handle = _handle(db)
    if handle.read_only:
        raise handle.read_only_error()
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    _until_free(handle, lambda: db.conn.execute("BEGIN IMMEDIATE"), patience, db.conn)
    note = _leave_note(handle, owner)
    try:
        yield db
        db.conn.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (disk full): a second ROLLBACK would bury the real error.
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    finally:
        if note is not None:
            note.unlink(missing_ok=True)


def _until_free(
    handle: _Handle,
    attempt: Callable[[], object],
    patience: float | None = None,
    conn: sqlite3.Connection | None = None,
) -> None:
    """Run `attempt` until it stops failing with 'database is locked' (or `patience` runs out)."""
    started = time.monotonic()
    noticed = 0.0
    delay = 0.02
    with _busy_timeout(conn, patience):
        while True:
            try:
                attempt()
                return
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
            waited = time.monotonic() - started
            if patience is not None and waited >= patience:
                raise StoreBusy(f"{handle.path}: still locked after {waited:.1f} s")
            if patience is None and (not noticed or time.monotonic() - noticed >= NOTICE_EVERY_S):
                print(_notice(handle, waited), file=sys.stderr, flush=True)
                noticed = time.monotonic()
            time.sleep(delay if patience is None else min(delay, max(patience - waited, 0.0)))
            delay = min(delay * 2, MAX_BACKOFF_S)


@contextlib.contextmanager
def _busy_timeout(conn: sqlite3.Connection | None, patience: float | None) -> Iterator[None]:
    """A caller with little patience must not sit in SQLite's busy handler for the whole busy timeout."""
    if conn is None or patience is None or patience * 1000 >= busy_timeout_ms():
        yield
        return
    conn.execute(f"PRAGMA busy_timeout = {int(patience * 1000)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")


def _note_path(handle: _Handle) -> Path | None:
    return handle.path.with_name(handle.path.name + OWNER_SUFFIX) if handle.path else None


def _leave_note(handle: _Handle, owner: str | None) -> Path | None:
    """Written once the lock is held, so a note always names the current holder (or a dead pid, ignored)."""
    path = _note_path(handle)
    if owner is None or path is None:
        return None
    note = {"pid": os.getpid(), "what": owner, "since": time.time()}
    with contextlib.suppress(OSError):  # a note is a courtesy: never a reason to fail the write
        path.write_text(json.dumps(note), encoding="utf-8")
        return path
    return None


def _notice(handle: _Handle, waited: float) -> str:
    where = handle.path or "the database"
    holder = _holder(handle)
    return f"embtune: waiting for another embtune process to finish writing {where} ({holder}; waited {waited:.0f} s)"


def _holder(handle: _Handle) -> str:
    """What the note beside the database says holds the lock, when its writer is still alive."""
    path = _note_path(handle)
    try:
        note = json.loads(path.read_text(encoding="utf-8")) if path else {}
        pid, what, since = int(note["pid"]), str(note["what"]), float(note["since"])
    except (OSError, ValueError, TypeError, KeyError):
        return "holder unknown: no embtune note, perhaps another program"
    if not pid_exists(pid):
        return "holder unknown: no live embtune writer left a note, perhaps another program"
    return f"{what}, pid {pid}, holding it for {time.time() - since:.0f} s"


def pid_exists(pid: int) -> bool:
    """True while a process with this id exists (any program's, any user's)."""
    try:
        os.kill(pid, 0)
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    return True


def integrity_check(db: Database) -> list[str]:
    """PRAGMA integrity_check's rows: ['ok'] for a sound database."""
    return [str(row[0]) for row in db.execute("PRAGMA integrity_check")]
