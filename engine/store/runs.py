"""Runs (gate, train, eval, index jobs), their events, metrics and per-query results."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.store._sqlite_utils import Database
from engine.store.db import write

NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
MAX_ID = 2**63 - 1  # SQLite's largest integer: binding a larger one raises OverflowError, no row can have it


def known_id(run_id: int) -> bool:
    """False for an id no row can have (`embtune logs DIR 99999999999999999999999`): an unknown run, no query."""
    return -MAX_ID - 1 <= run_id <= MAX_ID


def process_start(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (/proc/PID/stat field 22): with the pid it names one process,
    so a reused pid is told from a run's owner. None where unknown (the process is gone, no procfs as on macOS)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return int(stat.rsplit(b")", 1)[1].split()[19])  # after the name, which may hold spaces or ')'; 22 - 3
    except (OSError, IndexError, ValueError):
        return None


def create_run(db: Database, kind: str, config: dict[str, Any], parent_id: int | None = None) -> int:
    """A run done in this process (a CLI command, a TUI thread): this process owns it, so when it is gone the
    run is reaped as interrupted (engine.jobs.launcher.reap_stale)."""
    with write(db):
        cursor = db.execute(
            f"INSERT INTO runs (kind, status, config_json, parent_id, pid, pid_start, started_at, heartbeat_at) "
            f"VALUES (?, 'running', ?, ?, ?, ?, {NOW}, {NOW})",
            [kind, json.dumps(config), parent_id, os.getpid(), process_start(os.getpid())],
        )
    return int(cursor.lastrowid)


def add_event(db: Database, run_id: int, kind: str, payload: dict[str, Any]) -> None:
    with write(db):
        db.execute(
            "INSERT INTO job_events (run_id, kind, payload_json) VALUES (?, ?, ?)", [run_id, kind, json.dumps(payload)]
        )
        db.execute(f"UPDATE runs SET heartbeat_at = {NOW} WHERE id = ?", [run_id])


def finish_run(
    db: Database,
    run_id: int,
    result: dict[str, Any],
    metrics: list[tuple[str, str, float]],
    query_results: list[tuple[str, str, int | None, dict[str, float]]],
) -> None:
    """Store the summary, metrics (key, split, value) and per-query rows, and mark the run finished, at once."""
    with write(db):
        db.conn.executemany(
            "INSERT OR REPLACE INTO metrics (run_id, key, split, step, value) VALUES (?, ?, ?, 0, ?)",
            [(run_id, key, split, value) for key, split, value in metrics],
        )
        db.conn.executemany(
            "INSERT OR REPLACE INTO query_results (run_id, arm, query_id, first_rank, metrics_json) "
            "VALUES (?, ?, ?, ?, ?)",
            [(run_id, arm, qid, rank, json.dumps(m)) for arm, qid, rank, m in query_results],
        )
        db.execute(
            f"UPDATE runs SET status = 'finished', result_json = ?, finished_at = {NOW} WHERE id = ?",
            [json.dumps(result), run_id],
        )


def fail_run(db: Database, run_id: int, error: str, status: str = "failed") -> None:
    with write(db):
        db.execute(f"UPDATE runs SET status = ?, error = ?, finished_at = {NOW} WHERE id = ?", [status, error, run_id])


def latest_result(db: Database, kind: str) -> tuple[int, dict[str, Any]] | None:
    row = db.execute(
        "SELECT id, result_json FROM runs WHERE kind = ? AND status = 'finished' ORDER BY id DESC LIMIT 1", [kind]
    ).fetchone()
    return (int(row[0]), json.loads(row[1])) if row else None


def latest_event(db: Database, run_id: int, kind: str) -> dict[str, Any] | None:
    """The payload of a run's newest event of `kind` (e.g. its last progress report)."""
    row = db.execute(
        "SELECT payload_json FROM job_events WHERE run_id = ? AND kind = ? ORDER BY id DESC LIMIT 1", [run_id, kind]
    ).fetchone()
    return json.loads(row[0]) if row else None


def get_run(db: Database, run_id: int) -> dict[str, Any] | None:
    """A run's status and times (no result: latest_result has that)."""
    if not known_id(run_id):
        return None
    row = db.execute(
        "SELECT id, kind, status, error, started_at, finished_at FROM runs WHERE id = ?", [run_id]
    ).fetchone()
    keys = ("id", "kind", "status", "error", "started_at", "finished_at")
    return dict(zip(keys, row, strict=True)) if row else None


def run_ids(db: Database, kind: str) -> list[int]:
    return [int(r[0]) for r in db.execute("SELECT id FROM runs WHERE kind = ? ORDER BY id", [kind])]


def query_results(db: Database, run_id: int) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT arm, query_id, first_rank, metrics_json FROM query_results WHERE run_id = ? ORDER BY query_id, arm",
        [run_id],
    )
    return [{"arm": a, "query_id": q, "first_rank": r, "metrics": json.loads(m)} for a, q, r, m in rows]


def run_events(db: Database, run_id: int, after_id: int = 0) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT id, ts, kind, payload_json FROM job_events WHERE run_id = ? AND id > ? ORDER BY id", [run_id, after_id]
    )
    return [{"id": i, "ts": ts, "kind": k, "payload": json.loads(p)} for i, ts, k, p in rows]


def latest_model_run(db: Database, kind: str) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT id, model_path FROM runs WHERE kind = ? AND status = 'finished' AND model_path IS NOT NULL "
        "ORDER BY id DESC LIMIT 1",
        [kind],
    ).fetchone()
    return {"id": int(row[0]), "model_path": row[1]} if row else None


def finish_model_run(db: Database, run_id: int, model_path: str, result: dict[str, Any]) -> None:
    with write(db):
        db.execute(
            f"UPDATE runs SET status = 'finished', model_path = ?, result_json = ?, finished_at = {NOW} WHERE id = ?",
            [model_path, json.dumps(result), run_id],
        )


def model_run(db: Database, run_id: int) -> dict[str, Any] | None:
    """A run that produced a model (kind, status, model_path relative to the project root), or None."""
    if not known_id(run_id):
        return None
    row = db.execute(
        "SELECT id, kind, status, model_path FROM runs WHERE id = ? AND model_path IS NOT NULL", [run_id]
    ).fetchone()
    return dict(zip(("id", "kind", "status", "model_path"), row, strict=True)) if row else None


def train_activity(db: Database) -> tuple[Any, ...]:
    """A cheap token that changes whenever any training run changes (a new run, a status, a cancel request, a
    checkpoint, a heartbeat, a new event or metric): a screen re-reads the runs only when it changes."""
    row = db.execute(
        "SELECT (SELECT max(id) FROM job_events), (SELECT max(rowid) FROM metrics), "
        "(SELECT group_concat(id || status || coalesce(cancel_requested_at, '') || coalesce(checkpoint_path, '') "
        "|| coalesce(heartbeat_at, ''), ',') FROM runs WHERE kind = 'train')"
    ).fetchone()
    return tuple(row)


def eval_summaries(db: Database, run_ids: list[int], key: str = "ndcg@10") -> dict[int, tuple[float, float, int]]:
    """Per run: (best, last, last step) of its dev-split `key` evaluations after step 0 (step 0: the base model)."""
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    rows = db.execute(
        f"SELECT run_id, max(value), (SELECT value FROM metrics l WHERE l.run_id = m.run_id AND l.key = m.key "
        f"AND l.split = 'dev' ORDER BY l.step DESC LIMIT 1), max(step) FROM metrics m "
        f"WHERE run_id IN ({marks}) AND key = ? AND split = 'dev' AND step > 0 GROUP BY run_id",
        [*run_ids, key],
    )
    return {int(r): (float(best), float(last), int(step)) for r, best, last, step in rows}


def last_values(db: Database, run_ids: list[int], key: str, split: str) -> dict[int, float]:
    """Per run: the value of `key` at its newest step (e.g. the last training loss)."""
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    rows = db.execute(
        f"SELECT run_id, value FROM metrics m WHERE run_id IN ({marks}) AND key = ? AND split = ? "
        "AND step = (SELECT max(step) FROM metrics l "
        "WHERE l.run_id = m.run_id AND l.key = m.key AND l.split = m.split)",
        [*run_ids, key, split],
    )
    return {int(r): float(v) for r, v in rows}
