"""One writer at a time, and nobody dies waiting (issue 14, defect 1).

Before: a write lock held past SQLite's 30 s busy timeout (a big import, the sqlite3 shell) made every other writer
raise 'database is locked': a training job's heartbeat thread and metric flush died, small imports exited 1. Here the
busy timeout is shortened (EMBTUNE_BUSY_TIMEOUT_MS) and a helper process holds the lock a few seconds past it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.ingest import importing
from engine.jobs import worker
from engine.project import Project, init_project, open_project
from engine.store import jobs as store
from engine.store import runs
from engine.store.db import DB_NAME, StoreBusy, open_db, write
from engine.train.callbacks import Reporter
from tests.reliability import lockholder

BUSY_MS = 300  # the shortened busy timeout: a lock held HOLD_S is ~6 timeouts long
HOLD_S = 2.0


@pytest.fixture(autouse=True)
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBTUNE_BUSY_TIMEOUT_MS", str(BUSY_MS))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    made = init_project(tmp_path / "p")
    yield made
    made.close()


def cli(*args: Any) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def write_pairs(path: Path, n: int, prefix: str = "q") -> Path:
    rows = [{"query": f"{prefix} question {i}", "positive": f"{prefix} passage number {i} text"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_write_waits_out_a_lock_held_past_the_busy_timeout_and_says_why(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = lockholder.start(project.root / DB_NAME, HOLD_S)
    started = time.monotonic()
    run_id = runs.create_run(project.db, "gate", {})  # any store write
    waited = time.monotonic() - started
    assert holder.wait() == 0
    assert waited > HOLD_S * 0.7
    assert runs.get_run(project.db, run_id) is not None
    err = capsys.readouterr().err
    assert "waiting for another embtune process to finish writing" in err
    assert "holder unknown" in err  # the sqlite3 shell leaves no note


def test_the_notice_names_the_embtune_process_holding_the_lock(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = lockholder.start(project.root / DB_NAME, HOLD_S, owner="import of big.jsonl")
    runs.create_run(project.db, "gate", {})
    assert holder.wait() == 0
    err = capsys.readouterr().err
    assert f"import of big.jsonl, pid {holder.pid}" in err
    assert not (project.root / "project.db-writer").exists()  # the note goes with the lock


def test_patience_gives_up_quickly_and_writes_nothing(project: Project) -> None:
    holder = lockholder.start(project.root / DB_NAME, HOLD_S)
    started = time.monotonic()
    with pytest.raises(StoreBusy), write(project.db, patience=0.2):
        project.db.execute("INSERT INTO runs (kind) VALUES ('gate')")
    assert time.monotonic() - started < 1.0
    holder.wait()
    assert runs.run_ids(project.db, "gate") == []


def test_import_waits_out_the_sqlite3_shell_holding_the_lock(project: Project, tmp_path: Path) -> None:
    """Was: `import` exited 1 with a traceback after the busy timeout."""
    pairs = write_pairs(tmp_path / "pairs.jsonl", 20)
    holder = lockholder.start(project.root / DB_NAME, HOLD_S)
    code, _out, err = cli("import", project.root, "--pairs", pairs)
    holder.wait()
    assert code == 0, err
    assert "waiting for another embtune process" in err
    counts = json.loads(cli("status", project.root, "--json")[1])
    assert counts["pairs"] == 20


def test_small_imports_beside_each_other_all_succeed(project: Project, tmp_path: Path) -> None:
    files = [write_pairs(tmp_path / f"p{i}.jsonl", 30, prefix=f"f{i}") for i in range(4)]
    holder = lockholder.start(project.root / DB_NAME, 1.0)
    results: list[Any] = []

    def one(path: Path) -> None:
        p = open_project(project.root)
        try:
            results.append(importing.import_pairs(p, path)["added"]["pairs"])
        except Exception as e:  # collected: the assertion below names it
            results.append(e)
        finally:
            p.close()

    threads = [threading.Thread(target=one, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    holder.wait()
    assert results == [30, 30, 30, 30]


def test_an_import_stages_its_rows_without_holding_the_write_lock(project: Project, tmp_path: Path) -> None:
    """Another process writes (heartbeats, metrics) while an import is staging its rows: the lock is free until
    the short copy at the end."""
    pairs = write_pairs(tmp_path / "pairs.jsonl", 5000)
    other = open_db(project.root / DB_NAME)
    run_id = store.create_queued_run(other, "train", {})
    beats: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage in ("texts", "documents", "chunks") and len(beats) < 3:
            store.heartbeat(other, run_id)  # would wait for the whole import if it held the lock
            with write(other, patience=0.1):
                pass
            beats.append(stage)

    result = importing.import_pairs(project, pairs, progress=progress)
    other.close()
    assert beats
    assert result["added"]["pairs"] == 5000


def test_an_import_failing_while_staging_writes_nothing_and_leaves_no_temp_tables(
    project: Project, tmp_path: Path
) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", 50)

    def broken(stage: str, done: int, total: int) -> None:
        if stage == "chunks":
            raise KeyboardInterrupt  # Ctrl-C halfway through

    with pytest.raises(KeyboardInterrupt):
        importing.import_pairs(project, pairs, progress=broken)
    counts = json.loads(cli("status", project.root, "--json")[1])
    assert counts["pairs"] == 0
    assert counts["documents"] == 0
    assert project.db.execute("SELECT count(*) FROM temp.sqlite_master").fetchone()[0] == 0
    assert importing.import_pairs(project, pairs)["added"]["pairs"] == 50  # and the same import works after


def test_a_conflict_written_between_the_checks_and_the_lock_still_rolls_the_import_back(
    project: Project, tmp_path: Path
) -> None:
    from engine.ingest.readers import InputError

    corpus = tmp_path / "beir"
    corpus.mkdir()
    (corpus / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "one"}) + "\n")
    (corpus / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "what"}) + "\n")
    (corpus / "qrels").mkdir()
    (corpus / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    other = open_project(project.root)
    rival = tmp_path / "rival"
    rival.mkdir()
    (rival / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "other text"}) + "\n")
    (rival / "queries.jsonl").write_text("")
    (rival / "qrels").mkdir()
    (rival / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    raced: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "documents" and not raced:
            raced.append(stage)
            importing.import_beir(other, rival)  # gets in after the checks, before the lock

    with pytest.raises(InputError, match=r"corpus\.jsonl:1"):
        importing.import_beir(project, corpus, progress=progress)
    other.close()
    counts = json.loads(cli("status", project.root, "--json")[1])
    assert counts["documents"] == 1
    assert not any(counts["queries"].values())


def test_a_metric_flush_keeps_its_buffer_while_the_lock_is_held(project: Project) -> None:
    run_id = store.create_queued_run(project.db, "train", {})
    reporter = Reporter(project.db, run_id, str(project.root))
    reporter.training = True
    holder = lockholder.start(project.root / DB_NAME, HOLD_S)
    reporter.metrics.append(("loss", "train", 1, 0.5))
    started = time.monotonic()
    reporter.event("eval", {"step": 1}, now=True)  # inside the training loop: must not stall
    assert time.monotonic() - started < 1.0
    reporter.checkpoint = "runs/1/checkpoint-1"
    assert reporter.flush(wait=False) is False
    assert reporter.metrics
    assert reporter.events
    assert reporter.flush() is True  # the end of training waits for the lock
    holder.wait()
    assert store.metric_series(project.db, run_id) == [("loss", "train", 1, 0.5)]
    assert store.job_run(project.db, run_id)["checkpoint_path"] == "runs/1/checkpoint-1"


def test_the_heartbeat_thread_outlives_a_held_lock(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "HEARTBEAT_SECONDS", 0.1)
    run_id = store.create_queued_run(project.db, "train", {})
    stop = threading.Event()
    beat = threading.Thread(target=worker._beat, args=(project.root, run_id, stop), daemon=True)
    beat.start()
    time.sleep(0.3)
    holder = lockholder.start(project.root / DB_NAME, HOLD_S)
    holder.wait()
    time.sleep(0.5)
    assert beat.is_alive()
    age = store.job_run(project.db, run_id)["heartbeat_age"]
    stop.set()
    beat.join(5)
    assert age is not None
    assert age < 1.0


def _train_beside_a_lock(root: Path, hold_s: float, max_steps: int) -> tuple[dict[str, Any], str]:
    code, out, err = cli("train", root, "--max-steps", max_steps, "--batch-size", 8, "--json")
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the trainer is stepping (metrics flowing)
        project = open_project(root)
        row = store.train_run(project.db, run_id)
        project.close()
        if (row["step"] or 0) >= 1 or row["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    holder = lockholder.start(root / DB_NAME, hold_s)
    assert holder.wait() == 0
    while time.monotonic() < deadline + 120:
        project = open_project(root)
        row = store.train_run(project.db, run_id)
        project.close()
        if row["status"] not in ("queued", "running"):
            return row, (root / "runs" / str(run_id) / "worker.log").read_text()
        time.sleep(0.3)
    raise AssertionError("the run did not end")


@pytest.fixture
def train_root(tmp_path: Path, tiny_embedder_path: Path) -> Path:
    from tests.projects import make_project

    made = make_project(tmp_path, tiny_embedder_path, train_per_doc=3)
    made.close()
    with (made.root / "project.yaml").open("a") as f:
        f.write("training:\n  dev_min_queries: 10\n")
    return made.root


def test_a_training_run_survives_a_write_lock_held_past_the_busy_timeout(train_root: Path) -> None:
    """The command contract, shortened: the worker inherits the 300 ms busy timeout; the lock lasts longer than a
    heartbeat period, so the heartbeat (or the end of the run) surely waits for it."""
    row, log = _train_beside_a_lock(train_root, worker.HEARTBEAT_SECONDS + 1.5, 8)
    assert row["status"] == "finished", row["error"]
    assert "waiting for another embtune process" in log


@pytest.mark.slow
def test_a_training_run_survives_a_write_lock_held_45_s(train_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command contract as filed: the default busy timeout, a 45 s lock."""
    monkeypatch.delenv("EMBTUNE_BUSY_TIMEOUT_MS")
    row, _ = _train_beside_a_lock(train_root, 45.0, 30)
    assert row["status"] == "finished", row["error"]
