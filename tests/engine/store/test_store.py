"""The store: migrations from empty and from every earlier schema, frozen shipped migrations, pragmas, and
constraints."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from engine.store import embeddings, negatives
from engine.store._sqlite_utils import Database
from engine.store.corpus import chunk_texts, query_texts, replace_chunk_text
from engine.store.db import open_db, write
from engine.store.migrations import migrations
from engine.store.schema import (
    INDEX_STATUSES,
    NEGATIVE_LABELS,
    NEGATIVE_MARGIN,
    PAIR_LABELS,
    REVIEW_TARGETS,
    RUN_STATUSES,
    SOURCE_STRATEGY,
    SPLITS,
    text_hash,
)
from tests.review_data import add_negatives, review_project

NAMES = [m.name for m in migrations._migrations]

# sha256 of the schema (schema_sql) right after each migration. A shipped migration never changes, so these
# never change either: a new migration adds its line here; a failing line means a shipped migration was edited.
FROZEN = {
    "m001_initial": "6b2e76add5d89ad230b3d28c33946cae05b35efc8ddd2615d47b9fee83173976",
    "m002_embedding_cache": "97cbca79e713aef244144a7a19702a83d57ddcfd5fd50cde24db3e3e33c18a7e",
    "m003_run_results": "7a651e601a7ab5c1dfc2bfe1a0dcb7a0ba8a6cfc7ce8097529c9ff04675290d4",
    "m004_review": "dd076f7418583d9ecd010f7fbc6c482fb0ec0337ee8f43b1ec2b1c25a00e1b65",
    "m005_run_owner": "baf92fd56f5d234afc918401edabab55d9b8c6c32755449ded70a83729daf33f",
    "m006_index_switches": "10c9894efea6a01c52ebe30b09e824d5794518cbba921ea1819dda14ff02cb15",
}


def schema_sql(db: Database) -> str:
    """The DDL of every table and index, by name (sqlite-utils' own migrations table left out)."""
    rows = db.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE '\\_sqlite%' ESCAPE '\\' ORDER BY name"
    )
    return "\n".join(r[0] for r in rows)


def applied(db: Database) -> list[str]:
    return [m.name for m in migrations.applied(db)]


def test_every_migration_is_frozen() -> None:
    assert list(FROZEN) == NAMES, "add the new migration's digest to FROZEN (and never edit a shipped one)"


@pytest.mark.parametrize("step", NAMES)
def test_a_shipped_migration_still_builds_the_schema_it_shipped(step: str) -> None:
    db = Database(memory=True)
    migrations.apply(db, stop_before=NAMES[NAMES.index(step) + 1 :])
    assert applied(db)[-1] == step
    assert hashlib.sha256(schema_sql(db).encode()).hexdigest() == FROZEN[step]


@pytest.mark.parametrize(
    ("table", "column", "values"),
    [
        ("queries", "split", SPLITS),
        ("pairs", "split", SPLITS),
        ("pairs", "label", PAIR_LABELS),
        ("negatives", "label", NEGATIVE_LABELS),
        ("review_events", "target", REVIEW_TARGETS),
        ("runs", "status", RUN_STATUSES),
        ("indexes", "status", INDEX_STATUSES),
    ],
)
def test_schema_constants_match_the_check_constraints(table: str, column: str, values: tuple[str, ...]) -> None:
    sql = _table_sql(table)
    assert f"CHECK ({column} IN ({', '.join(repr(v) for v in values)}))" in sql


def test_schema_constants_match_the_margin_indexes_and_the_chunking_default() -> None:
    db = open_db(":memory:")
    for index in ("negatives_margin", "negatives_label_margin", "negatives_miner_margin"):
        assert NEGATIVE_MARGIN in db.execute("SELECT sql FROM sqlite_master WHERE name = ?", [index]).fetchone()[0]
    assert f"chunking TEXT NOT NULL DEFAULT '{SOURCE_STRATEGY}'" in _table_sql("documents")


def _table_sql(table: str) -> str:
    return open_db(":memory:").execute("SELECT sql FROM sqlite_master WHERE name = ?", [table]).fetchone()[0]


def test_migrates_an_empty_database_to_the_latest_schema(tmp_path: Path) -> None:
    db = open_db(tmp_path / "p.db")
    assert applied(db) == NAMES
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


@pytest.mark.parametrize("step", NAMES[1:])
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
    assert applied(db) == NAMES
    # Migrated step by step, the schema is the very one a new project gets.
    assert schema_sql(db) == schema_sql(open_db(tmp_path / "new.db"))
    assert {"embedding_cache", "query_results"} <= set(db.table_names())
    assert "result_json" in db["runs"].columns_dict
    assert db.execute("SELECT id FROM documents").fetchall() == [("d1",)]
    assert db.execute("SELECT kind, status, result_json FROM runs").fetchall() == [("gate", "finished", None)]
    # applying again is a no-op
    assert applied(open_db(path)).count(step) == 1


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


def test_the_benchmarks_store_functions_edit_a_chunk_and_empty_the_mined_state(tmp_path: Path) -> None:
    project = review_project(tmp_path)
    add_negatives(project, [0.1, None])
    db = project.db
    texts = chunk_texts(db)
    assert list(texts) == sorted(texts)
    assert query_texts(db) == dict(db.execute("SELECT id, text FROM queries").fetchall())
    first = next(iter(texts))
    replace_chunk_text(db, first, "new text")
    assert chunk_texts(db)[first] == "new text"
    assert db.execute("SELECT text FROM texts WHERE hash = ?", [text_hash("new text")]).fetchone() == ("new text",)
    db.execute("INSERT INTO embedding_cache VALUES ('m', 'h', 8, 1, x'00000000')")
    embeddings.clear_cache(db)
    negatives.delete_all(db)
    assert db.execute("SELECT count(*) FROM embedding_cache").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM negatives").fetchone() == (0,)
