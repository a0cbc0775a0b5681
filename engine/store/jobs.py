"""Detached jobs in the store (engine.jobs runs them): the queued row a launcher creates for any kind, the worker's
pid and heartbeat, cancel requests, interrupted runs, and the live runs a reaper checks; for training also its
batched metrics and events, checkpoints, and the listing `embtune runs` and the Train screen read.

An interrupted run (its worker died: pid gone or heartbeat stale) keeps the schema's status 'failed' with an
error starting 'interrupted', so the runs CHECK needs no table rebuild; readers show it as 'interrupted'.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from engine.store._sqlite_utils import Database
from engine.store.db import write
from engine.store.runs import known_id, process_start

NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
INTERRUPTED = "interrupted"
TRAIN_KIND = "train"

MetricRow = tuple[str, str, int, float]  # (key, split, step, value)


class RunConflict(Exception):
    """A run that `create_queued_run(alone=True)` refused to add: `run_id` (its `status`) is active, or it already
    continued the parent and finished (`resumed`). Not a user error here: the store names no commands."""

    def __init__(self, run_id: int, status: str, resumed: bool) -> None:
        super().__init__(f"run {run_id} is {status}")
        self.run_id, self.status, self.resumed = run_id, status, resumed


def create_queued_run(
    db: Database, kind: str, config: dict[str, Any], parent_id: int | None = None, *, alone: bool = False
) -> int:
    """A run waiting for its worker: the id exists before the detached process starts. `alone`: refused
    (RunConflict) while another run of `kind` is queued or running, or when a run of `kind` continuing
    `parent_id` finished; checked in the insert's write transaction, so of two starts at once one is refused."""
    with write(db):
        if alone:
            _refuse_conflict(db, kind, parent_id)
        cursor = db.execute(
            "INSERT INTO runs (kind, status, config_json, parent_id) VALUES (?, 'queued', ?, ?)",
            [kind, json.dumps(config), parent_id],
        )
    return int(cursor.lastrowid)


def _refuse_conflict(db: Database, kind: str, parent_id: int | None) -> None:
    row = db.execute(
        "SELECT id, status FROM runs WHERE kind = ? AND status IN ('queued', 'running') ORDER BY id LIMIT 1", [kind]
    ).fetchone()
    if row:
        raise RunConflict(int(row[0]), row[1], resumed=False)
    row = db.execute(
        "SELECT id FROM runs WHERE kind = ? AND parent_id = ? AND status = 'finished' ORDER BY id LIMIT 1",
        [kind, parent_id],
    ).fetchone()
    if row:
        raise RunConflict(int(row[0]), "finished", resumed=True)


def set_pid(db: Database, run_id: int, pid: int, start: int | None = None) -> None:
    """The process that owns a run from now on, with its start marker (`start`, else read now: a launcher calls
    this right after starting it, when the pid cannot have been reused yet)."""
    start = start if start is not None else process_start(pid)
    with write(db):
        db.execute(f"UPDATE runs SET pid = ?, pid_start = ?, heartbeat_at = {NOW} WHERE id = ?", [pid, start, run_id])


def mark_running(db: Database, run_id: int, pid: int) -> bool:
    """queued → running by the worker itself; False when the run is no longer queued (cancelled meanwhile)."""
    with write(db):
        cursor = db.execute(
            f"UPDATE runs SET status = 'running', pid = ?, pid_start = ?, started_at = {NOW}, heartbeat_at = {NOW} "
            "WHERE id = ? AND status = 'queued'",
            [pid, process_start(pid), run_id],
        )
    return cursor.rowcount == 1


def update_config(db: Database, run_id: int, config: dict[str, Any], parent_id: int | None = None) -> None:
    """Replace a run's config (and set its parent, when given: what the worker found it continues)."""
    with write(db):
        db.execute(
            "UPDATE runs SET config_json = ?, parent_id = coalesce(?, parent_id) WHERE id = ?",
            [json.dumps(config), parent_id, run_id],
        )


def heartbeat(db: Database, run_id: int) -> None:
    with write(db):
        db.execute(f"UPDATE runs SET heartbeat_at = {NOW} WHERE id = ?", [run_id])


def flush(db: Database, run_id: int, metrics: list[MetricRow], events: list[tuple[str, dict[str, Any]]]) -> None:
    """Metrics (upserts: a resumed step overwrites, never duplicates) and events in one transaction."""
    with write(db):
        db.conn.executemany(
            "INSERT OR REPLACE INTO metrics (run_id, key, split, step, value) VALUES (?, ?, ?, ?, ?)",
            [(run_id, key, split, step, value) for key, split, step, value in metrics],
        )
        db.conn.executemany(
            "INSERT INTO job_events (run_id, kind, payload_json) VALUES (?, ?, ?)",
            [(run_id, kind, json.dumps(payload)) for kind, payload in events],
        )
        db.execute(f"UPDATE runs SET heartbeat_at = {NOW} WHERE id = ?", [run_id])


def set_checkpoint(db: Database, run_id: int, path: str) -> None:
    with write(db):
        db.execute("UPDATE runs SET checkpoint_path = ? WHERE id = ?", [path, run_id])


def copy_metrics(db: Database, parent_id: int, child_id: int, up_to_step: int) -> None:
    """A resumed run starts with its parent's curve up to the checkpoint, so its chart is whole."""
    with write(db):
        db.execute(
            "INSERT OR IGNORE INTO metrics (run_id, key, split, step, value, ts) "
            "SELECT ?, key, split, step, value, ts FROM metrics WHERE run_id = ? AND step <= ?",
            [child_id, parent_id, up_to_step],
        )


def request_cancel(db: Database, run_id: int) -> str | None:
    """Ask a run to stop; a queued run is cancelled at once. Returns the status after the request."""
    with write(db):
        db.execute(
            f"UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, {NOW}) "
            "WHERE id = ? AND status IN ('queued', 'running')",
            [run_id],
        )
        db.execute(
            f"UPDATE runs SET status = 'cancelled', finished_at = {NOW} WHERE id = ? AND status = 'queued'", [run_id]
        )
        row = db.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()
    return row[0] if row else None


def cancel_requested(db: Database, run_id: int) -> bool:
    row = db.execute("SELECT cancel_requested_at IS NOT NULL FROM runs WHERE id = ?", [run_id]).fetchone()
    return bool(row and row[0])


def end_run(db: Database, run_id: int, status: str, result: dict[str, Any], error: str | None = None) -> None:
    """A final status other than finished-with-model (cancelled, failed), with what is known."""
    with write(db):
        db.execute(
            f"UPDATE runs SET status = ?, result_json = ?, error = ?, finished_at = {NOW} WHERE id = ? "
            "AND status IN ('queued', 'running')",
            [status, json.dumps(result), error, run_id],
        )


def mark_interrupted(db: Database, run_id: int, why: str, silent_for: float | None = None) -> bool:
    """A live-looking run whose worker is gone becomes failed('interrupted: …'); False if it ended meanwhile.

    `silent_for`: reaped for silence, so re-check inside the write lock that it is still silent that long — the
    age was read before waiting for the lock, and a worker may have beaten while another process held it."""
    silence = (
        ""
        if silent_for is None
        else " AND (julianday('now') - julianday(coalesce(heartbeat_at, created_at))) * 86400.0 > ?"
    )
    with write(db):
        cursor = db.execute(
            f"UPDATE runs SET status = 'failed', error = ?, finished_at = {NOW} "
            f"WHERE id = ? AND status IN ('queued', 'running'){silence}",
            [f"{INTERRUPTED}: {why}", run_id, *([] if silent_for is None else [silent_for])],
        )
    return cursor.rowcount == 1


_RUN_COLUMNS = (
    "id",
    "kind",
    "status",
    "config_json",
    "parent_id",
    "pid",
    "heartbeat_at",
    "cancel_requested_at",
    "checkpoint_path",
    "model_path",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "result_json",
)


def _run_dict(row: tuple[Any, ...], heartbeat_age: float | None, step: int | None) -> dict[str, Any]:
    run = dict(zip(_RUN_COLUMNS, row, strict=True))
    run["config"] = json.loads(run.pop("config_json") or "{}")
    run["result"] = json.loads(run.pop("result_json") or "null")
    run["heartbeat_age"] = heartbeat_age
    run["step"] = step
    if run["status"] == "failed" and (run["error"] or "").startswith(INTERRUPTED):
        run["status"] = INTERRUPTED
    return run


def _select_runs(where: str) -> str:
    columns = ", ".join(f"r.{c}" for c in _RUN_COLUMNS)
    return (
        f"SELECT {columns}, (julianday('now') - julianday(r.heartbeat_at)) * 86400.0, "
        "(SELECT max(step) FROM metrics m WHERE m.run_id = r.id AND m.key = 'loss') "
        f"FROM runs r WHERE {where}"
    )


def list_runs(db: Database, limit: int = 200, kind: str | None = TRAIN_KIND) -> list[dict[str, Any]]:
    """Runs of `kind` (None: every kind), newest first, with status ('interrupted' shown as such), config,
    result and last logged training step."""
    where = "r.kind = ? ORDER BY r.id DESC LIMIT ?" if kind else "? IS NULL ORDER BY r.id DESC LIMIT ?"
    rows = db.execute(_select_runs(where), [kind, limit]).fetchall()
    return [_run_dict(r[:-2], r[-2], r[-1]) for r in rows]


def job_run(db: Database, run_id: int, kind: str | None = None) -> dict[str, Any] | None:
    """A run of any kind (or only of `kind`) with its config, result, heartbeat age and last training step."""
    if not known_id(run_id):
        return None
    row = db.execute(_select_runs("r.id = ? AND coalesce(?, r.kind) = r.kind"), [run_id, kind]).fetchone()
    return _run_dict(row[:-2], row[-2], row[-1]) if row else None


def train_run(db: Database, run_id: int) -> dict[str, Any] | None:
    return job_run(db, run_id, TRAIN_KIND)


class LiveRun(NamedTuple):
    """A run queued or running, as a reaper sees it."""

    id: int
    kind: str
    status: str
    pid: int | None  # its owner: the worker, or the process that does it in-process (None: not launched yet)
    pid_start: int | None  # the owner's start marker (None: unknown, or a run recorded before it was kept)
    age: float  # seconds since its last heartbeat (or its creation)


def live_runs(db: Database) -> list[LiveRun]:
    """The runs queued or running, any kind."""
    rows = db.execute(
        "SELECT id, kind, status, pid, pid_start, "
        "(julianday('now') - julianday(coalesce(heartbeat_at, created_at))) * 86400.0 "
        "FROM runs WHERE status IN ('queued', 'running')"
    )
    return [LiveRun(int(i), k, s, p, ps, float(age or 0.0)) for i, k, s, p, ps, age in rows]


def metric_series(db: Database, run_id: int, after_step: int = -1) -> list[tuple[str, str, int, float]]:
    """(key, split, step, value) of a run after `after_step`, in step order."""
    rows = db.execute(
        "SELECT key, split, step, value FROM metrics WHERE run_id = ? AND step > ? ORDER BY step, key",
        [run_id, after_step],
    )
    return [(k, s, int(st), float(v)) for k, s, st, v in rows]
