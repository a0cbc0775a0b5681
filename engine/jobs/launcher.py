"""Detached jobs, every kind (training, index builds): queue a run, launch its worker in its own session, tell a
live run from a dead one, cancel, logs.

`queue` records the run (status queued) and makes its folder runs/<id>/; `launch` starts the worker
(`python -m engine.jobs.worker ROOT RUN_ID`, which runs the entry point of the run's kind) with
start_new_session=True, so closing the TUI or losing the SSH session (SIGHUP to the terminal's process group) does
not stop it. Its stdout and stderr go to runs/<id>/worker.log.

Every run, detached or done in-process (a CLI command, a TUI thread), records the process that owns it: its pid and
that process's start time, which together name one process even after the pid is reused. `reap_stale` marks a run
interrupted when its owner is gone, or, for a detached run, when its heartbeat is older than STALE_SECONDS (the
worker beats from a thread of its own every few seconds, so a long step, batch or evaluation never looks stale).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine.errors import EmbtuneError
from engine.project import Project
from engine.store import jobs as store
from engine.store import runs

STALE_SECONDS = 120.0
QUEUED_GRACE = 60.0  # a queued run whose worker never reported within this long is dead too
RUNS_DIR = "runs"
LOG_NAME = "worker.log"
WORKER_MODULE = "engine.jobs.worker"
UNREADABLE = b"?"  # what _process_state says of a process it cannot look into


class JobError(EmbtuneError):
    """A job request that cannot be honoured (unknown run, run not resumable...)."""


def run_dir(project: Project, run_id: int) -> Path:
    return project.root / RUNS_DIR / str(run_id)


def log_path(project: Project, run_id: int) -> Path:
    return run_dir(project, run_id) / LOG_NAME


def queue(
    project: Project, kind: str, config: dict[str, Any], parent_id: int | None = None, *, alone: bool = False
) -> int:
    """Record a queued run of `kind` for a worker, with its folder: the folder marks it as detached (a worker that
    beats, so a silent one is dead too). `alone`: store.RunConflict while another run of `kind` is active."""
    run_id = store.create_queued_run(project.db, kind, config, parent_id, alone=alone)
    run_dir(project, run_id).mkdir(parents=True, exist_ok=True)
    return run_id


def launch(project: Project, run_id: int, launcher: list[str] | None = None) -> int:
    """Start the detached worker for a queued run; returns its pid (also stored on the run).

    `launcher` replaces the interpreter for multi-GPU runs, e.g. ["torchrun", "--nproc_per_node", "4"] or
    ["accelerate", "launch", "--multi_gpu"]: both take `-m engine.jobs.worker ROOT RUN_ID` after it."""
    folder = run_dir(project, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parent.parent.parent  # the folder holding the engine package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    with open(folder / LOG_NAME, "ab") as log:
        process = subprocess.Popen(
            [*(launcher or [sys.executable]), "-m", WORKER_MODULE, str(project.root), str(run_id)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(project.root),
            env=env,
            close_fds=True,
        )
    store.set_pid(project.db, run_id, process.pid)
    return process.pid


def process_alive(pid: int | None) -> bool:
    """True when `pid` is a running process (not gone, not a zombie), whatever program it runs."""
    return _process_state(pid) is not None


def pid_alive(pid: int | None) -> bool:
    """True when `pid` may run an embtune worker (not gone, not a zombie, not another program's): the check for a
    run recorded without its owner's start marker."""
    cmdline = _process_state(pid)
    # An empty cmdline is a process inside execve: Popen returns once the new program is mapped (vfork), a moment
    # before the kernel sets its arguments. Reading it then as "not a worker" reaped runs just launched.
    return cmdline is not None and (cmdline in (b"", UNREADABLE) or WORKER_MODULE.encode() in cmdline)


def _process_state(pid: int | None) -> bytes | None:
    """None when `pid` is gone or a zombie, else its command line (UNREADABLE where it cannot be read: another
    user's process, or no procfs as on macOS — existence is all we know there)."""
    if not pid:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return UNREADABLE
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return UNREADABLE
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return None
    return None if state == "Z" else cmdline


def owner_gone(pid: int, start: int | None, detached: bool) -> str | None:
    """Why the process that owns a run is no longer it ('gone', 'reused'), or None while it may be."""
    if _process_state(pid) is None:
        return "gone"
    if start is not None:
        # The start time read at creation is fixed for the process's life (execve keeps it), so a just-launched
        # worker matches at once and any later process given the same pid does not.
        now = runs.process_start(pid)
        return "reused" if now is not None and now != start else None
    return "reused" if detached and not pid_alive(pid) else None  # no marker: a worker is told by its cmdline


def reap_stale(project: Project, stale_seconds: float = STALE_SECONDS) -> list[int]:
    """Mark queued/running runs of any kind whose owner is gone (a detached worker also when silent) as
    interrupted; returns their ids. A run done in-process lives as long as its process: never reaped before."""
    if project.read_only:  # nothing can be marked: readers show the stored status
        return []
    reaped = []
    for run in store.live_runs(project.db):
        why = _dead_because(run, run_dir(project, run.id).is_dir(), stale_seconds)
        silent = stale_seconds if why and why.startswith("no heartbeat") else None
        if why and store.mark_interrupted(project.db, run.id, why, silent):
            reaped.append(run.id)
    return reaped


def _dead_because(run: store.LiveRun, detached: bool, stale_seconds: float) -> str | None:
    if run.pid is None:  # queued: `launch` records the worker's pid the moment it starts
        return "its worker never started" if run.age > QUEUED_GRACE else None
    owner = "worker" if detached else "process"
    gone = owner_gone(run.pid, run.pid_start, detached)
    if gone == "reused":
        return f"{owner} pid {run.pid} is gone (its pid was reused by another process)"
    if gone:
        return f"{owner} pid {run.pid} is gone"
    if detached and run.age > stale_seconds:  # only workers beat; an in-process run may be silent for hours
        return f"no heartbeat for {run.age:.0f} s"
    return None


CANCELLABLE = ("train", "index")  # the kinds that poll the store's cancel request


def cancel(project: Project, run_id: int) -> str:
    """Ask a training run (at its next step, after a checkpoint) or an index build (after its current batch) to
    stop; returns its status now."""
    run = runs.get_run(project.db, run_id)
    if run is None:
        raise JobError(f"no run {run_id} (see `embtune runs {project.root} --all`)")
    if run["kind"] not in CANCELLABLE:
        raise JobError(f"run {run_id} is a {run['kind']} run: only training runs and index builds can be cancelled")
    if run["status"] not in ("queued", "running"):
        return str(run["status"])
    return store.request_cancel(project.db, run_id) or "unknown"


def read_log(project: Project, run_id: int, tail: int = 200) -> list[str]:
    """The last `tail` lines of a run's worker log ([] before the worker wrote any)."""
    path = log_path(project, run_id)
    if not path.is_file():
        return []
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 256 * 1024))
        text = f.read().decode("utf-8", errors="replace")
    return text.splitlines()[-tail:]
