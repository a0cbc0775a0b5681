"""The store: migrations from empty and from the previous schema, pragmas, and constraints."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.store import open_db, write
from engine.store.db import schema_version
from engine.store.migrations import migrations


def test_migrates_an_empty_database_to_the_latest_schema(tmp_path: Path) -> None:
    db = open_db(tmp_path / "p.db")
    assert schema_version(db) == [m.name for m in migrations._migrations]
    expected = {
        "texts",
        "documents",
        "chunks",
        "queries",
        "pairs",
        "negatives",
        "review_events",
        "runs",
        "metrics",
        "job_events",
        "indexes",
        "imports",
        "embedding_cache",
    }
    assert expected <= set(db.table_names())
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


@pytest.mark.parametrize("step", [m.name for m in migrations._migrations[1:]])
def test_migrates_from_each_earlier_schema_keeping_data(tmp_path: Path, step: str) -> None:
    path = tmp_path / "p.db"
    old = open_db(path, migrate=False)
    migrations.apply(old, stop_before=step)
    old.execute("INSERT INTO texts VALUES ('h', 'body')")
    old.execute("INSERT INTO documents (id, text_hash, source) VALUES ('d1', 'h', 'test')")
    old.execute("INSERT INTO runs (kind, status) VALUES ('gate', 'finished')")
    old.conn.commit()
    old.conn.close()
    db = open_db(path)
    assert schema_version(db) == [m.name for m in migrations._migrations]
    assert {"embedding_cache", "query_results"} <= set(db.table_names())
    assert "result_json" in db["runs"].columns_dict
    assert db.execute("SELECT id FROM documents").fetchall() == [("d1",)]
    assert db.execute("SELECT kind, status, result_json FROM runs").fetchall() == [("gate", "finished", None)]
    # applying again is a no-op
    assert schema_version(open_db(path)).count(step) == 1


def test_constraints_reject_bad_rows(tmp_path: Path) -> None:
    db = open_db(tmp_path / "p.db")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.execute("INSERT INTO runs (kind, status) VALUES ('train', 'exploded')")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        db.execute("INSERT INTO chunks (id, doc_id, strategy, position, text_hash) VALUES ('c', 'nope', 's', 0, 'h')")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.execute("INSERT INTO queries (id, text, split, source) VALUES ('q', 't', 'validation', 's')")


def test_write_rolls_back_everything_on_error(tmp_path: Path) -> None:
    db = open_db(tmp_path / "p.db")

    def failing_import() -> None:
        with write(db):
            db.execute("INSERT INTO texts VALUES ('h1', 'a')")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_import()
    assert db.execute("SELECT count(*) FROM texts").fetchone()[0] == 0


def test_two_connections_write_without_losing_rows(tmp_path: Path) -> None:
    a, b = open_db(tmp_path / "p.db"), open_db(tmp_path / "p.db")
    for i in range(50):
        for name, db in (("a", a), ("b", b)):
            with write(db):
                db.execute("INSERT INTO texts VALUES (?, ?)", [f"{name}{i}", name])
    assert a.execute("SELECT count(*) FROM texts").fetchone()[0] == 100
