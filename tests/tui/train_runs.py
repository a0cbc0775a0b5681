"""Training runs made without training, for the Train screen's tests and snapshots: recorded through the engine's
own store functions (queue, mark running, flush metrics and events, checkpoint, finish or end) as a worker would."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from engine.jobs import launcher
from engine.project import Project
from engine.store import jobs as store
from engine.store import runs
from engine.train.settings import TrainSettings

SOURCES = {"select": "train", "watch": "gate", "": ""}


def run_config(steps: int, role: str, base_model: str = "all-MiniLM-L6-v2") -> dict[str, Any]:
    """A run's config as start_training records it: settings, plan (its evaluation role) and base model."""
    settings = dataclasses.asdict(TrainSettings(batch_size=8, max_steps=steps))
    plan = {"max_steps": steps, "steps_per_epoch": steps, "eval_steps": 5, "dev_queries": 12 if role else 0}
    plan["dev_source"] = SOURCES[role]
    return {"settings": settings, "plan": plan, "base_model": base_model}


def curve(steps: int, scale: float = 1.0) -> list[store.MetricRow]:
    """A falling loss, a warmup-then-decay lr and an evaluation every 5 steps (step 0: the base model)."""
    rows: list[store.MetricRow] = []
    for s in range(1, steps + 1):
        rows.append(("loss", "train", s, round(scale * 2.4 / (1 + 0.25 * s), 4)))
        rows.append(("lr", "train", s, 2e-5 * min(1.0, s / 3) * (1 - s / (steps + 1))))
    evals = {0: 0.41, 5: 0.47, 10: 0.52, 15: 0.50, 20: 0.51}
    rows += [("ndcg@10", "dev", s, v * scale) for s, v in evals.items() if s <= steps]
    return rows


def stored_run(
    project: Project,
    *,
    status: str = "finished",
    steps: int = 15,
    logged: int | None = None,
    role: str = "select",
    checkpoint: int | None = None,
    scale: float = 1.0,
    parent: int | None = None,
) -> int:
    """A training run at `status` with `logged` steps of curves (default all), optionally a checkpoint folder."""
    run_id = launcher.queue(project, "train", run_config(steps, role), parent_id=parent)
    store.mark_running(project.db, run_id, os.getpid())
    done = steps if logged is None else logged
    rows = [r for r in curve(steps, scale) if r[2] <= done]
    events = [("phase", {"phase": "training"}), ("train_begin", {"step": 0, "max_steps": steps})]
    events += [("eval", {"step": s, "ndcg@10": v}) for k, _, s, v in rows if k == "ndcg@10"]
    store.flush(project.db, run_id, rows, events)
    if checkpoint is not None:
        path = f"runs/{run_id}/checkpoints/checkpoint-{checkpoint}"
        (project.root / path).mkdir(parents=True)
        store.set_checkpoint(project.db, run_id, path)
    if status == "finished":
        runs.finish_model_run(project.db, run_id, f"models/run-{run_id}", {"steps": done, "seconds": 42.0})
    elif status != "running":
        store.end_run(project.db, run_id, status, {"steps": done, "seconds": 12.0})
    return run_id
