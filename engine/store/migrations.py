"""Schema migrations for project.db.

Append-only and literal: a shipped migration is never edited and never reads a constant (changing
engine.store.schema would otherwise rewrite it silently); change the schema by adding m00N. The test
tests/engine/store/test_store.py holds a digest of the schema after each migration, so an edit fails it.
"""

# ruff: noqa: E501  (the DDL is copied as shipped: SQLite keeps its exact text, so lines are not re-wrapped)
from __future__ import annotations

from engine.store._sqlite_utils import Database, Migrations

migrations = Migrations("embtune")


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        -- Every text (document body, chunk, edited passage) is stored once, keyed by its sha256.
        CREATE TABLE texts (
            hash TEXT PRIMARY KEY,
            text TEXT NOT NULL
        );
        CREATE TABLE imports (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            counts_json TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );
        CREATE TABLE documents (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            text_hash TEXT NOT NULL REFERENCES texts(hash),
            source TEXT NOT NULL,
            -- the chunking strategy of the document's retrieval chunks ('source' = as given)
            chunking TEXT NOT NULL DEFAULT 'source',
            import_id INTEGER REFERENCES imports(id)
        );
        -- strategy 'source' is the text as the source gave it (a BEIR passage is one chunk).
        CREATE TABLE chunks (
            id TEXT PRIMARY KEY,
            doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            strategy TEXT NOT NULL,
            position INTEGER NOT NULL,
            text_hash TEXT NOT NULL REFERENCES texts(hash),
            start_char INTEGER,
            end_char INTEGER,
            UNIQUE (doc_id, strategy, position)
        );
        CREATE INDEX chunks_strategy ON chunks(strategy, doc_id);
        CREATE TABLE queries (
            id TEXT PRIMARY KEY,
            text TEXT NOT NULL,
            split TEXT NOT NULL CHECK (split IN ('train', 'dev', 'test', 'gate', 'general')),
            source TEXT NOT NULL,
            import_id INTEGER REFERENCES imports(id)
        );
        CREATE INDEX queries_split ON queries(split);
        CREATE TABLE pairs (
            id INTEGER PRIMARY KEY,
            query_id TEXT NOT NULL REFERENCES queries(id) ON DELETE CASCADE,
            chunk_id TEXT NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
            split TEXT NOT NULL CHECK (split IN ('train', 'dev', 'test', 'gate', 'general')),
            source TEXT NOT NULL,
            score REAL NOT NULL DEFAULT 1.0,
            label TEXT NOT NULL DEFAULT 'unlabeled' CHECK (label IN ('unlabeled', 'accepted', 'rejected')),
            edited_text_hash TEXT REFERENCES texts(hash),
            updated_at TEXT,
            UNIQUE (query_id, chunk_id)
        );
        CREATE INDEX pairs_label ON pairs(label, id);
        CREATE INDEX pairs_split ON pairs(split);
        CREATE INDEX pairs_chunk ON pairs(chunk_id);
        CREATE TABLE negatives (
            id INTEGER PRIMARY KEY,
            query_id TEXT NOT NULL REFERENCES queries(id) ON DELETE CASCADE,
            chunk_id TEXT NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
            score REAL,
            positive_score REAL,
            miner TEXT NOT NULL,
            settings_json TEXT NOT NULL DEFAULT '{}',
            label TEXT NOT NULL DEFAULT 'unlabeled' CHECK (label IN ('unlabeled', 'accepted', 'rejected', 'false_negative')),
            updated_at TEXT,
            UNIQUE (query_id, chunk_id, miner)
        );
        CREATE INDEX negatives_label ON negatives(label, id);
        CREATE TABLE review_events (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL CHECK (target IN ('pair', 'negative')),
            target_id INTEGER NOT NULL,
            action TEXT NOT NULL,
            before_json TEXT NOT NULL,
            after_json TEXT NOT NULL,
            reviewer TEXT NOT NULL DEFAULT '',
            undone_by INTEGER REFERENCES review_events(id),
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );
        CREATE INDEX review_events_target ON review_events(target, target_id);
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'finished', 'failed', 'cancelled')),
            config_json TEXT NOT NULL DEFAULT '{}',
            parent_id INTEGER REFERENCES runs(id),
            pid INTEGER,
            heartbeat_at TEXT,
            cancel_requested_at TEXT,
            checkpoint_path TEXT,
            model_path TEXT,
            error TEXT,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            started_at TEXT,
            finished_at TEXT
        );
        CREATE TABLE metrics (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            split TEXT NOT NULL DEFAULT '',
            step INTEGER NOT NULL DEFAULT 0,
            value REAL NOT NULL,
            ts TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            PRIMARY KEY (run_id, key, split, step)
        );
        CREATE TABLE job_events (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            ts TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            kind TEXT NOT NULL,
            payload_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX job_events_run ON job_events(run_id, id);
        CREATE TABLE indexes (
            id INTEGER PRIMARY KEY,
            table_name TEXT NOT NULL UNIQUE,
            model TEXT NOT NULL,
            model_fingerprint TEXT NOT NULL,
            strategy TEXT NOT NULL,
            rows INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'building' CHECK (status IN ('building', 'ready', 'failed')),
            live INTEGER NOT NULL DEFAULT 0 CHECK (live IN (0, 1)),
            run_id INTEGER REFERENCES runs(id),
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );
        -- At most one live index: the switch is one UPDATE inside a transaction.
        CREATE UNIQUE INDEX indexes_one_live ON indexes(live) WHERE live = 1;
        """
    )


@migrations()
def m002_embedding_cache(db: Database) -> None:
    # Vectors keyed by (model fingerprint, text hash) so gate and eval re-runs never re-encode unchanged text.
    db.executescript(
        """
        CREATE TABLE embedding_cache (
            model_fingerprint TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            max_seq_length INTEGER NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (model_fingerprint, max_seq_length, text_hash)
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m003_run_results(db: Database) -> None:
    # A finished gate/eval keeps its summary (verdict, arms) and per-query ranks so screens reopen instantly.
    db.executescript(
        """
        ALTER TABLE runs ADD COLUMN result_json TEXT;
        CREATE TABLE query_results (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            arm TEXT NOT NULL,
            query_id TEXT NOT NULL,
            first_rank INTEGER,
            metrics_json TEXT NOT NULL,
            PRIMARY KEY (run_id, arm, query_id)
        );
        """
    )


@migrations()
def m004_review(db: Database) -> None:
    # batch groups the events of one bulk action so one undo reverts them all; the indexes keep the review
    # screen's undo lookup, today counter, source filter and triage order fast at 100k+ rows.
    db.executescript(
        """
        ALTER TABLE review_events ADD COLUMN batch INTEGER;
        CREATE INDEX review_events_reviewer ON review_events(reviewer, id);
        CREATE INDEX review_events_batch ON review_events(batch) WHERE batch IS NOT NULL;
        CREATE INDEX review_events_at ON review_events(at);
        CREATE INDEX pairs_source ON pairs(source, id);
        CREATE INDEX negatives_margin ON negatives(coalesce(positive_score - score, 9e999), id);
        CREATE INDEX negatives_label_margin ON negatives(label, coalesce(positive_score - score, 9e999), id);
        CREATE INDEX negatives_miner_margin ON negatives(miner, coalesce(positive_score - score, 9e999), id);
        """
    )


@migrations()
def m005_run_owner(db: Database) -> None:
    # A pid alone cannot tell a run's process from a later one given the same pid: its start time (clock ticks
    # after boot, /proc/PID/stat field 22) with it names one process, so a dead owner is known even after reuse.
    db.executescript(
        """
        ALTER TABLE runs ADD COLUMN pid_start INTEGER;
        """
    )


@migrations()
def m006_index_switches(db: Database) -> None:
    # Every change of the live index (from, to, why, when): rollback goes to the table that was live before, not
    # the one built before, and `index list` shows the history.
    db.executescript(
        """
        CREATE TABLE index_switches (
            id INTEGER PRIMARY KEY,
            from_index_id INTEGER REFERENCES indexes(id) ON DELETE SET NULL,
            to_index_id INTEGER NOT NULL REFERENCES indexes(id) ON DELETE CASCADE,
            reason TEXT NOT NULL CHECK (reason IN ('build', 'use', 'rollback')),
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );
        """
    )
