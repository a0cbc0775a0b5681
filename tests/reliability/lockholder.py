"""Hold project.db's write lock from another process, as the sqlite3 shell or a long import would.

`python -m tests.reliability.lockholder DB SECONDS [OWNER]`: BEGIN IMMEDIATE, print "locked", sleep, commit. With
OWNER the lock is taken through engine.store.db.write(owner=OWNER), which leaves the note a waiter names.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hold(db_path: str, seconds: float, owner: str | None) -> None:
    if owner:
        from engine.store.db import open_db, write

        db = open_db(db_path, migrate=False)
        with write(db, owner=owner):
            print("locked", flush=True)
            time.sleep(seconds)
        return
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=60)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(seconds)
    conn.execute("COMMIT")


def start(db_path: Path, seconds: float, owner: str | None = None) -> subprocess.Popen[str]:
    """The holder, returned once it holds the lock."""
    args = [sys.executable, "-m", "tests.reliability.lockholder", str(db_path), str(seconds)]
    args += [owner] if owner else []
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    return process


if __name__ == "__main__":
    hold(sys.argv[1], float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
