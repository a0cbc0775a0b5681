"""Runs (issue #14): every run is reaped when the process that owns it is gone, and only then; one active training
run per project (`--allow-parallel` to opt out), a run resumed once; run ids too large for SQLite are unknown runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.jobs.launcher import reap_stale
from engine.project import Project, init_project, open_project
from engine.store import jobs as store
from engine.store import runs
from engine.train.run import TrainingError, resume_training, settings_for, start_training
from tests.projects import make_project

IN_PROCESS_KINDS = ("mine", "index", "gate", "eval", "reranker")

# A process that does work in-process as the CLI's commands and the TUI's thread workers do: it records runs of
# every kind (one from a thread, as the TUI does), says their ids, then works until it is killed.
OWNER = """
import sys, threading, time
from engine.project import open_project
from engine.store import runs
project = open_project(sys.argv[1])
ids = [runs.create_run(project.db, kind, {}) for kind in sys.argv[2:]]
thread = threading.Thread(target=lambda: ids.append(runs.create_run(project.db, "gate", {"thread": True})))
thread.start()
thread.join()
print(" ".join(map(str, ids)), flush=True)
time.sleep(600)
"""


def embtune(*args: object) -> tuple[int, str, bool]:
    """(exit code, stdout + stderr, whether an exception escaped the CLI: a traceback)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout + result.stderr, escaped


def status_of(project: Project, run_id: int) -> str:
    run = store.job_run(project.db, run_id)
    assert run is not None
    return str(run["status"])


def test_a_killed_process_s_runs_of_every_kind_are_reaped_and_a_live_one_s_never(tmp_path: Path) -> None:
    project = init_project(tmp_path / "p")
    root = Path(__file__).resolve().parents[2]
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(project.root), *IN_PROCESS_KINDS],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert owner.stdout is not None
        ids = [int(i) for i in owner.stdout.readline().split()]
        assert len(ids) == len(IN_PROCESS_KINDS) + 1
        assert reap_stale(project) == []  # its owner works on: never reaped, however long it is silent
        assert reap_stale(project, stale_seconds=0.0) == []
        assert {status_of(project, i) for i in ids} == {"running"}
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert sorted(reap_stale(project)) == ids
    for run_id in ids:
        run = store.job_run(project.db, run_id)
        assert run is not None
        assert run["status"] == "interrupted"
        assert f"pid {owner.pid} is gone" in run["error"]
    project.close()


def test_a_run_of_this_process_is_never_reaped_and_a_reused_pid_is_not_its_owner(tmp_path: Path) -> None:
    project = init_project(tmp_path / "p")
    try:
        mine = runs.create_run(project.db, "mine", {})
        assert reap_stale(project, stale_seconds=0.0) == []
        # The same pid, but a process started at another time: the owner died and its pid went to a new program.
        store.set_pid(project.db, mine, os.getpid(), start=1)
        assert reap_stale(project) == [mine]
        run = store.job_run(project.db, mine)
        assert run is not None
        assert "reused" in run["error"]
    finally:
        project.close()


@pytest.fixture
def root(tmp_path: Path, tiny_embedder_path: Path) -> Path:
    project = make_project(tmp_path, tiny_embedder_path, train_per_doc=3)
    project.close()
    return project.root


def test_one_active_training_run_per_project_unless_allow_parallel(root: Path) -> None:
    project = open_project(root)
    try:
        first, _ = start_training(project, settings_for(project, batch_size=8), launch=False)
        with pytest.raises(TrainingError, match=rf"run {first} is queued.*embtune cancel .* {first}"):
            start_training(project, settings_for(project, batch_size=8), launch=False)
        second, _ = start_training(project, settings_for(project, batch_size=8), launch=False, allow_parallel=True)
        assert second == first + 1
    finally:
        project.close()
    code, out, escaped = embtune("train", root, "--batch-size", "8", "--json")
    assert (code, escaped) == (2, False), out
    error = json.loads(out.splitlines()[0])["error"]
    assert f"run {first} is queued" in error
    assert "--allow-parallel" in error


def test_two_concurrent_train_starts_cannot_both_pass(root: Path) -> None:
    """The check and the insert are one write transaction: of several starts at once, exactly one is recorded."""
    projects = [open_project(root) for _ in range(4)]
    started: list[int] = []
    refused: list[str] = []
    barrier = threading.Barrier(len(projects))

    def start(project: Project) -> None:
        settings = settings_for(project, batch_size=8)
        barrier.wait()
        try:
            started.append(start_training(project, settings, launch=False)[0])
        except TrainingError as e:
            refused.append(str(e))

    threads = [threading.Thread(target=start, args=(p,)) for p in projects]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for p in projects:
        p.close()
    assert len(started) == 1, (started, refused)
    assert len(refused) == len(projects) - 1


def _cancelled_with_checkpoint(project: Project) -> int:
    """A training run cancelled at step 2 with its checkpoint on disk: what `embtune resume` continues."""
    run_id, _ = start_training(project, settings_for(project, batch_size=8), launch=False)
    checkpoint = f"runs/{run_id}/checkpoints/checkpoint-2"
    (project.root / checkpoint).mkdir(parents=True)
    store.set_checkpoint(project.db, run_id, checkpoint)
    store.end_run(project.db, run_id, "cancelled", {"steps": 2})
    return run_id


def test_a_run_is_resumed_once(root: Path) -> None:
    project = open_project(root)
    try:
        parent = _cancelled_with_checkpoint(project)
        child = resume_training(project, parent, launch=False)
        with pytest.raises(TrainingError, match=rf"run {child} is queued.*embtune cancel .* {child}"):
            resume_training(project, parent, launch=False)  # while its resume is queued or running
        store.end_run(project.db, child, "failed", {}, "OSError: disk full")
        again = resume_training(project, parent, launch=False)  # the resume died before it got anywhere: allowed
        runs.finish_model_run(project.db, again, f"models/run-{again}", {"steps": 4})
        with pytest.raises(TrainingError, match=rf"already resumed by run {again}, which finished"):
            resume_training(project, parent, launch=False)
    finally:
        project.close()
    code, out, escaped = embtune("resume", root, parent)
    assert (code, escaped) == (2, False)
    assert f"already resumed by run {again}" in out


@pytest.mark.parametrize("command", ["logs", "cancel", "resume"])
@pytest.mark.parametrize("run_id", ["99999999999999999999999", "9223372036854775808"])
def test_a_run_id_beyond_sqlite_s_integers_is_an_unknown_run(tmp_path: Path, command: str, run_id: str) -> None:
    init_project(tmp_path / "p").close()
    code, out, escaped = embtune(command, tmp_path / "p", run_id)
    assert not escaped, out
    assert code == 2
    assert f"no {'training ' if command == 'resume' else ''}run {run_id}" in out
