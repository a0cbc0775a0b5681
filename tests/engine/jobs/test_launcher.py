"""Detached training through the CLI contract: train without --wait returns at once and the worker finishes on
its own; kill -9 mid-run turns into 'interrupted', resume continues from the last checkpoint as a child run
with no duplicate metric steps and an intact database; cancel from the CLI; logs. And the launcher itself: a
worker just launched is never reaped as dead, a killed one of any kind is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.jobs.launcher import WORKER_MODULE, launch, pid_alive, queue, reap_stale
from engine.project import init_project, open_project
from engine.store import jobs as store
from engine.store import runs
from engine.train.run import settings_for, start_training, wait
from tests.projects import make_project


def cli(*args: Any) -> tuple[int, dict[str, Any] | None, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    try:
        payload = json.loads(result.stdout)
    except json.JSONDecodeError:
        payload = None
    return result.exit_code, payload, result.stdout + result.stderr


@pytest.fixture
def root(tmp_path: Path, tiny_embedder_path: Path) -> Path:
    project = make_project(tmp_path, tiny_embedder_path, train_per_doc=3)
    project.close()
    with (project.root / "project.yaml").open("a") as f:
        f.write("training:\n  dev_min_queries: 10\n")  # the tiny project's 36 train queries get a dev slice
    return project.root


def wait_until(check: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def run_row(root: Path, run_id: int) -> dict[str, Any]:
    project = open_project(root)
    try:
        row = store.train_run(project.db, run_id)
        assert row is not None
        return row
    finally:
        project.close()


def test_train_without_wait_returns_at_once_and_the_detached_run_finishes(root: Path) -> None:
    started = time.monotonic()
    code, out, text = cli("train", root, "--batch-size", "8", "--max-steps", "4", "--json")
    assert code == 0, text
    assert out is not None
    assert out["status"] == "queued"
    assert time.monotonic() - started < 5  # no model loaded in the launching process
    run_id = out["run_id"]
    assert os.getpgid(run_row(root, run_id)["pid"]) != os.getpgid(0)  # its own session: survives a closed terminal
    wait_until(lambda: run_row(root, run_id)["status"] not in ("queued", "running"))
    row = run_row(root, run_id)
    assert row["status"] == "finished", row["error"]
    assert (root / row["model_path"] / "model.safetensors").is_file()
    code, listing, _ = cli("runs", root, "--json")
    assert code == 0
    assert listing is not None
    assert {k: listing["runs"][0][k] for k in ("run_id", "status", "kind", "step", "max_steps")} == {
        "run_id": run_id,
        "status": "finished",
        "kind": "train",
        "step": 4,
        "max_steps": 4,
    }
    code, _, log = cli("logs", root, run_id)
    assert "finished" in log


def test_kill_9_is_interrupted_and_resume_continues_from_the_checkpoint(root: Path) -> None:
    code, out, text = cli("train", root, "--batch-size", "8", "--max-steps", "24", "--json")
    assert code == 0, text
    assert out is not None
    run_id = out["run_id"]
    project = open_project(root)
    try:
        # the first checkpoint (every 6 steps: the dev slice is evaluated 4 times per run), then a few more steps
        wait_until(lambda: store.train_run(project.db, run_id)["checkpoint_path"])
        wait_until(lambda: (store.train_run(project.db, run_id)["step"] or 0) >= 8)
        pid = store.train_run(project.db, run_id)["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 10)
        assert reap_stale(project) == [run_id]
        killed = store.train_run(project.db, run_id)
        assert killed["status"] == "interrupted"
        checkpoint_step = int(killed["checkpoint_path"].rsplit("-", 1)[1])
    finally:
        project.close()
    code, listing, _ = cli("runs", root, "--json")
    assert listing is not None
    assert listing["runs"][0]["status"] == "interrupted"
    code, resumed, text = cli("resume", root, run_id, "--wait", "--json")  # the --wait --json contract
    assert code == 0, text
    assert resumed is not None
    assert resumed["status"] == "finished"
    assert resumed["parent_id"] == run_id
    assert resumed["steps"] == 24
    assert resumed["seconds"] > 0
    assert resumed["model_path"] == f"models/run-{resumed['run_id']}"
    project = open_project(root)
    try:
        child = resumed["run_id"]
        losses = [step for key, _, step, _ in store.metric_series(project.db, child) if key == "loss"]
        assert losses == list(range(1, 25))  # the parent's curve up to the checkpoint, then the child's: whole
        series = store.metric_series(project.db, child)
        assert len(series) == len({(key, split, step) for key, split, step, _ in series})  # no step twice
        assert checkpoint_step < 24
        assert project.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert runs.model_run(project.db, child)["status"] == "finished"
    finally:
        project.close()


def test_cancel_from_the_cli_leaves_a_resumable_checkpoint(root: Path) -> None:
    code, out, _ = cli("train", root, "--batch-size", "8", "--max-steps", "200", "--json")
    assert out is not None
    run_id = out["run_id"]
    wait_until(lambda: (run_row(root, run_id)["step"] or 0) >= 2)  # training, past the smoke step
    code, cancelled, _ = cli("cancel", root, run_id, "--json")
    assert code == 0
    assert cancelled == {"run_id": run_id, "status": "running"}
    wait_until(lambda: run_row(root, run_id)["status"] != "running", 60)
    row = run_row(root, run_id)
    assert row["status"] == "cancelled"
    assert (root / row["checkpoint_path"] / "model.safetensors").is_file()
    assert row["step"] < 200
    code, _, text = cli("resume", root, 999)
    assert code == 2
    assert "no training run 999" in text
    code, _, text = cli("logs", root, 999)
    assert code == 2
    assert "no run 999" in text


def test_a_just_launched_worker_is_never_taken_for_a_dead_one(tmp_path: Path) -> None:
    """Popen returns while the worker may still be inside execve, its /proc cmdline empty for a moment (about 1 in
    70 launches here): a reap right then called it gone. Then through the launcher: each launch reaped at once is
    left alone, and once killed it is reaped (an index run: reaping covers every kind the launcher starts)."""
    for _ in range(100):
        process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(tmp_path / "none"), "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert pid_alive(process.pid)
        process.kill()
        process.wait()
    project = init_project(tmp_path / "p")
    try:
        for _ in range(20):
            run_id = queue(project, "index", {"model": "base"})
            pid = launch(project, run_id)
            assert reap_stale(project) == [], store.job_run(project.db, run_id)
            os.killpg(pid, signal.SIGKILL)  # its own session: the group is its pid
            os.waitpid(pid, 0)
            assert reap_stale(project) == [run_id]
            assert store.job_run(project.db, run_id)["status"] == "interrupted"
    finally:
        project.close()


RACE_LAUNCHES = 40
KILL_AFTER = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)  # seconds after the launch: execve, Python's start-up, the imports
# `embtune runs` in a second terminal, as fast as it goes, until its stdin closes.
REAPER = """
import sys, threading
from engine.jobs.launcher import reap_stale
from engine.project import open_project
project = open_project(sys.argv[1])
closed = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
while not closed.is_set():
    reap_stale(project)
"""


def test_train_wait_never_reports_a_just_launched_worker_as_gone(root: Path) -> None:
    """`train --wait`'s exact path, many times: start_training (reap, plan, queue, launch), then at once the CLI's
    follow loop (engine.train.run.wait: events, status, reap_stale) polling as fast as it can, with another process
    reaping beside it. Each worker is killed a moment after its launch; the follow loop must see the run end only
    then, as interrupted. Reaping by the command line, a reap inside the worker's execve came back at once with
    'worker pid … is gone'."""
    project = open_project(root)
    settings = settings_for(project, batch_size=8, max_steps=2)
    reaper = subprocess.Popen([sys.executable, "-c", REAPER, str(root)], stdin=subprocess.PIPE)
    try:
        for i in range(RACE_LAUNCHES):
            killer = _Killer(root, store.list_runs(project.db, limit=1), KILL_AFTER[i % len(KILL_AFTER)])
            run_id, _ = start_training(project, settings)
            run = wait(project, run_id, poll=0.002)  # what `train --wait` runs next
            killed_before_the_end = killer.killed_pid
            killer.join()
            assert killed_before_the_end, f"launch {i}: run {run_id} ended before its worker was killed: {run}"
            assert run["status"] == "interrupted", run
            assert f"worker pid {killer.killed_pid} is gone" in run["error"]
    finally:
        reaper.communicate(timeout=30)
        project.close()


class _Killer(threading.Thread):
    """Kills the next run's worker (its session) `delay` seconds after its launch, from a connection of its own:
    the main thread goes from the launch straight into the follow loop, with nothing in between."""

    def __init__(self, root: Path, before: list[dict[str, Any]], delay: float) -> None:
        super().__init__()
        self.root, self.after_id, self.delay, self.killed_pid = root, before[0]["id"] if before else 0, delay, 0
        self.start()

    def run(self) -> None:
        project = open_project(self.root)
        try:
            newest = wait_until(lambda: [r for r in store.list_runs(project.db, limit=1) if r["id"] > self.after_id])
            pid = wait_until(lambda: store.train_run(project.db, newest[0]["id"])["pid"], 30)
        finally:
            project.close()
        time.sleep(self.delay)
        self.killed_pid = pid  # before the kill: the loop may see the run end the moment the signal lands
        os.killpg(pid, signal.SIGKILL)


def test_runs_done_in_process_are_never_reaped(tmp_path: Path) -> None:
    """A gate, eval or an index build with --wait or in the TUI runs in its caller's process, not a worker's."""
    project = init_project(tmp_path / "p")
    try:
        run_id = runs.create_run(project.db, "index", {})
        assert reap_stale(project) == []
        assert runs.get_run(project.db, run_id)["status"] == "running"
    finally:
        project.close()
