"""Reads evaluation needs beyond engine.store.runs: the models a project can evaluate and its past evaluations."""

from __future__ import annotations

import json
from typing import Any

from engine.store._sqlite_utils import Database


def trained_models(db: Database, kind: str = "train") -> list[dict[str, Any]]:
    """Finished runs of `kind` that left a model folder, oldest first: (id, model_path, finished_at, config)."""
    rows = db.execute(
        "SELECT id, model_path, finished_at, config_json FROM runs WHERE kind = ? AND status = 'finished' "
        "AND model_path IS NOT NULL ORDER BY id",
        [kind],
    )
    return [
        {"id": int(i), "model_path": path, "finished_at": at or "", "config": json.loads(config or "{}")}
        for i, path, at, config in rows
    ]


def eval_results(db: Database, limit: int = 20) -> list[tuple[int, str, dict[str, Any]]]:
    """(run id, finished_at, result) of the newest finished evaluations, newest first."""
    rows = db.execute(
        "SELECT id, finished_at, result_json FROM runs WHERE kind = 'eval' AND status = 'finished' "
        "AND result_json IS NOT NULL ORDER BY id DESC LIMIT ?",
        [limit],
    )
    return [(int(i), at or "", json.loads(result)) for i, at, result in rows]


def eval_result(db: Database, run_id: int) -> tuple[int, str, dict[str, Any]] | None:
    row = db.execute(
        "SELECT id, finished_at, result_json FROM runs WHERE id = ? AND kind = 'eval' "
        "AND status = 'finished' AND result_json IS NOT NULL",
        [run_id],
    ).fetchone()
    return (int(row[0]), row[1] or "", json.loads(row[2])) if row else None
