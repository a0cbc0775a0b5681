"""The detached worker of every job kind: `python -m engine.jobs.worker ROOT RUN_ID` (started by
engine.jobs.launcher.launch).

It reads the run's kind and calls that kind's entry point (ENTRY_POINTS), beats a heartbeat from a thread of its
own meanwhile (a long step, batch or evaluation never looks dead), and records any failure on the run. Each entry
point claims its queued run itself (queued → running), so a run cancelled before its worker started stays
cancelled. Under torchrun/accelerate only rank 0 writes to the store.
"""

from __future__ import annotations

import os

# Before the model libraries load: offline, no progress bars in the log, no tokenizer threads.
for _key, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("TQDM_DISABLE", "1"),
    ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
    ("TRANSFORMERS_VERBOSITY", "warning"),
):
    os.environ.setdefault(_key, _value)

import sys  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from engine.project import Project  # noqa: E402

HEARTBEAT_SECONDS = 5.0

EntryPoint = Callable[[Project, int, bool], dict[str, Any]]  # (project, run id, is_main) -> the run's result


def _train(project: Project, run_id: int, is_main: bool) -> dict[str, Any]:
    from engine.train.run import execute  # the model libraries load here, in the worker only

    return execute(project, run_id, is_main=is_main, echo=True)


def _index(project: Project, run_id: int, is_main: bool) -> dict[str, Any]:
    from engine.index.build import build_queued
    from engine.store.jobs import job_run

    run = job_run(project.db, run_id, "index")
    if run is not None and run["config"].get("engine") == "ray":  # `embtune index DIR --engine ray`, detached
        from engine.index.ray_build import build_queued_ray

        return build_queued_ray(project, run_id)
    return build_queued(project, run_id)


ENTRY_POINTS: dict[str, EntryPoint] = {"train": _train, "index": _index}


def _beat(root: Path, run_id: int, stop: threading.Event) -> None:
    """Beat until stopped, whatever happens: store writes wait out another process's write lock, and any other
    failure is logged and retried at the next beat (a dead heartbeat thread would get a live run reaped)."""
    from engine.store import jobs as store
    from engine.store.db import DB_NAME, open_db

    db = None
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            if db is None:  # a connection of its own: never inside the job's writes
                db = open_db(root / DB_NAME, migrate=False)
            store.heartbeat(db, run_id)
        except Exception as e:  # the beat must go on; the job itself reports its own failures
            print(f"heartbeat of run {run_id}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    if db is not None:
        db.close()


def main(argv: list[str]) -> int:
    from engine.project import open_project
    from engine.store import jobs as store

    root, run_id = Path(argv[0]).resolve(), int(argv[1])
    is_main = int(os.environ.get("RANK", "0")) == 0
    project = open_project(root)
    stop = threading.Event()
    if is_main:
        threading.Thread(target=_beat, args=(root, run_id, stop), daemon=True, name="heartbeat").start()
    print(f"embtune worker pid {os.getpid()} run {run_id} in {root}", flush=True)
    try:
        run = store.job_run(project.db, run_id)
        kind = run["kind"] if run else None
        if kind not in ENTRY_POINTS:
            raise ValueError(f"run {run_id} is {'missing' if run is None else f'a {kind} run'}: no worker runs it")
        result = ENTRY_POINTS[kind](project, run_id, is_main)
        print(f"run {run_id}: {result.get('status')} {result}", flush=True)
        return 0
    except BaseException as e:
        traceback.print_exc()
        if is_main:  # a failure before the entry point recorded one (a no-op on a run that already ended)
            store.end_run(project.db, run_id, "failed", {}, f"{type(e).__name__}: {e}")
        return 1
    finally:
        stop.set()
        project.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
