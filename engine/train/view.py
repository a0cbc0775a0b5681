"""What the Train screen shows, read from the store only (no torch): the run, its curves, its progress and log.

Each poll asks for what is new since the last one (metrics after a step, events after an id), so following a
long run stays cheap. Reading first marks dead workers as interrupted, so a run never shows as running forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.jobs import launcher as jobs
from engine.project import Project
from engine.store import jobs as store
from engine.store import runs
from engine.train.callbacks import log_line

ACTIVE = ("queued", "running")


@dataclass
class TrainUpdate:
    run: dict[str, Any] | None
    metrics: list[tuple[str, str, int, float]] = field(default_factory=list)  # new (key, split, step, value)
    events: list[dict[str, Any]] = field(default_factory=list)  # new events
    log: list[str] = field(default_factory=list)  # new lines for the log pane

    @property
    def active(self) -> bool:
        return self.run is not None and self.run["status"] in ACTIVE


def pick_run(project: Project) -> int | None:
    """The run to show on open: a live one if any (re-attach), else the newest."""
    jobs.reap_stale(project)
    listed = store.list_runs(project.db, limit=50)
    live = [r for r in listed if r["status"] in ACTIVE]
    return (live or listed or [{"id": None}])[0]["id"]


def poll(project: Project, run_id: int, after_step: int = -1, after_event: int = 0) -> TrainUpdate:
    jobs.reap_stale(project)
    run = store.train_run(project.db, run_id)
    if run is None:
        return TrainUpdate(None)
    events = runs.run_events(project.db, run_id, after_event)
    log = [f"{e['ts'][11:19]} {log_line(e['kind'], e['payload'])}" for e in events if e["kind"] != "progress"]
    return TrainUpdate(run, store.metric_series(project.db, run_id, after_step), events, log)


def worker_log(project: Project, run_id: int, tail: int = 40) -> list[str]:
    return jobs.read_log(project, run_id, tail)
