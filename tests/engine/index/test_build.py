"""Re-indexing into LanceDB on a real tiny model: a new table per build, the live switch, incremental copies,
cancel/kill and resume without duplicates, rollback, the approximate index's recall check, the CLI contract."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.index.build import IndexingError, build_index, connect, list_indexes, make_live, rollback
from engine.index.search import Searcher
from engine.project import Project, open_project
from engine.store import indexes, runs
from engine.store.schema import text_hash
from tests.projects import cli, register_model, set_index_config

ROOT = Path(__file__).resolve().parents[3]


def table_rows(project: Project, name: str) -> dict[str, Any]:
    data = connect(project).open_table(name).to_arrow().sort_by("chunk_id")
    return {
        "ids": data.column("chunk_id").to_pylist(),
        "hashes": data.column("text_hash").to_pylist(),
        "vectors": np.stack(data.column("vector").to_numpy(zero_copy_only=False)),
    }


def edit_chunk(project: Project, chunk_id: str, text: str) -> None:
    """Change a chunk's text in place (what a re-import of an edited document amounts to)."""
    digest = text_hash(text)
    db = project.db
    db.execute("INSERT OR IGNORE INTO texts (hash, text) VALUES (?, ?)", [digest, text])
    db.execute("UPDATE chunks SET text_hash = ? WHERE id = ?", [digest, chunk_id])


def test_build_writes_every_chunk_to_a_new_live_table(project: Project, tiny_embedder_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    result = build_index(project)
    assert (result.rows, result.embedded, result.skipped_unchanged, result.live) == (40, 40, 0, True)
    live = indexes.live(project.db)
    assert live is not None
    assert live["table_name"] == result.table
    assert live["status"] == "ready"
    stored = table_rows(project, result.table)
    assert len(set(stored["ids"])) == 40
    texts = dict(
        zip(
            *[list(c) for c in zip(*[(r[0], r[3]) for r in indexes.index_chunks(project.db)], strict=True)], strict=True
        )
    )
    model = SentenceTransformer(str(tiny_embedder_path), device="cpu")
    expected = model.encode([texts[i] for i in stored["ids"]], normalize_embeddings=True)
    assert np.allclose(stored["vectors"], expected, atol=1e-5)
    run = runs.get_run(project.db, result.run_id)
    assert run is not None
    assert (run["kind"], run["status"]) == ("index", "finished")


def test_rebuild_copies_unchanged_chunks_and_embeds_only_edited_ones(project: Project) -> None:
    first = build_index(project)
    edit_chunk(project, "d03", "A brand new passage about storm damage to the garden fence.")
    second = build_index(project)
    assert second.table != first.table
    assert (second.rows, second.embedded, second.skipped_unchanged) == (40, 1, 39)
    old, new = table_rows(project, first.table), table_rows(project, second.table)
    assert old["ids"] == new["ids"]
    changed = [i for i, cid in enumerate(new["ids"]) if not np.allclose(old["vectors"][i], new["vectors"][i])]
    assert [new["ids"][i] for i in changed] == ["d03"]
    assert len(list_indexes(project)) == 2  # the old table is kept


def test_cancelled_build_leaves_live_untouched_and_resumes_without_duplicates(project: Project) -> None:
    project = set_index_config(project, batch_size=8)
    first = build_index(project)
    edits = [f"d{i:02d}" for i in range(20)]
    for cid in edits:
        edit_chunk(project, cid, f"Edited passage {cid} about a kitchen fire and a rental car.")
    seen: list[int] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "embed":
            seen.append(done)

    with pytest.raises(InterruptedError):
        build_index(project, progress=progress, cancelled=lambda: len(seen) >= 2 and seen[-1] >= 8)
    live = indexes.live(project.db)
    assert live is not None
    assert live["table_name"] == first.table
    assert Searcher(project).search("subrogation", k=3).table == first.table
    assert [r["status"] for r in list_indexes(project)] == ["incomplete", "ready"]
    resumed = build_index(project)
    # the 20 unchanged chunks were copied and one batch of 8 embedded before the cancel: both are kept
    assert (resumed.resumed, resumed.embedded, resumed.skipped_unchanged) == (28, 12, 0)
    stored = table_rows(project, resumed.table)
    assert len(stored["ids"]) == len(set(stored["ids"])) == 40
    assert indexes.live(project.db)["table_name"] == resumed.table  # type: ignore[index]


KILLED_BUILD = textwrap.dedent("""
    import sys, time
    from engine.index.build import build_index
    from engine.project import open_project

    def slow(stage, done, total):
        if stage == "embed" and done:
            print(done, flush=True)
            time.sleep(0.5)

    build_index(open_project(sys.argv[1]), progress=slow)
""")


def test_kill_9_during_build_keeps_live_searchable_and_resume_completes(project: Project) -> None:
    project = set_index_config(project, batch_size=4, commit_seconds=0)  # every batch committed as it is printed
    first = build_index(project)
    before = Searcher(project).search("when do we use salvage", k=5).to_json()["hits"]
    for i in range(40):
        edit_chunk(project, f"d{i:02d}", f"Rewritten passage {i} about flood repairs and the summer holiday.")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(project.root)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    assert child.stdout is not None
    for _ in range(3):  # three batches committed
        assert child.stdout.readline().strip()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    project.close()
    project = open_project(project.root)
    live = indexes.live(project.db)
    assert live is not None
    assert live["table_name"] == first.table
    assert Searcher(project).search("when do we use salvage", k=5).to_json()["hits"] == before
    assert list_indexes(project)[0]["status"] == "incomplete"
    resumed = build_index(project)
    assert resumed.resumed >= 12
    assert resumed.resumed + resumed.embedded == 40
    stored = table_rows(project, resumed.table)
    assert len(stored["ids"]) == len(set(stored["ids"])) == 40
    project.close()


def test_rollback_restores_the_previous_table_exactly(project: Project, tuned_model: Path) -> None:
    base = build_index(project)
    searcher = Searcher(project)
    before_rows = table_rows(project, base.table)
    before_hits = searcher.search("when do we use indemnity").to_json()["hits"]
    run_id = register_model(project, tuned_model)
    tuned = build_index(project, str(run_id))
    assert tuned.table != base.table
    assert tuned.model == f"run {run_id}"
    assert Searcher(project).search("when do we use indemnity").to_json()["hits"] != before_hits
    result = rollback(project)
    assert (result["live"], result["previous"]) == (base.table, tuned.table)
    after_rows = table_rows(project, base.table)
    assert after_rows["ids"] == before_rows["ids"]
    assert np.array_equal(after_rows["vectors"], before_rows["vectors"])
    assert Searcher(project).search("when do we use indemnity").to_json()["hits"] == before_hits
    with pytest.raises(IndexingError, match="nothing to roll back"):
        rollback(project)
    make_live(project, tuned.index_id)
    assert indexes.live(project.db)["table_name"] == tuned.table  # type: ignore[index]


def test_approximate_index_kept_only_with_enough_recall(project: Project) -> None:
    project = set_index_config(project, ann_min_rows=10)
    result = build_index(project)
    assert result.ann["kind"] == "ivf_flat"
    assert result.ann["recall_at_10"] >= 0.95
    assert result.ann["queries"] > 0
    assert list_indexes(project)[0]["ann_recall"] == result.ann["recall_at_10"]
    assert Searcher(project).search("when do we use tort", k=3).hits


def test_ann_below_min_recall_is_dropped_for_exact_search(tmp_path: Path) -> None:
    import lancedb
    import pyarrow as pa

    from engine.index.ann import build_ann

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    data = pa.table(
        {
            "chunk_id": [f"c{i}" for i in range(3000)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 16),
        }
    )
    table = lancedb.connect(str(tmp_path / "lance")).create_table("t", data)
    result = build_ann(table, vectors[:20], min_recall=1.01)  # unreachable on purpose
    assert result.kind == "exact"
    assert result.recall is None
    assert result.tried
    assert table.list_indices() == []


def test_build_errors_are_clear(tmp_path: Path, tiny_embedder_path: Path) -> None:
    from engine.project import init_project

    empty = init_project(tmp_path / "empty")
    (empty.root / "project.yaml").write_text(f"base_model: {tiny_embedder_path}\n")
    empty = open_project(empty.root)
    with pytest.raises(IndexingError, match="no corpus"):
        build_index(empty)
    with pytest.raises(IndexingError, match="no live index"):
        rollback(empty)
    empty.close()


def test_cli_index_rollback_list_contract(project: Project, tuned_model: Path) -> None:
    root = project.root
    run_id = register_model(project, tuned_model)
    code, out = cli("index", root, "--wait", "--json")
    assert code == 0
    first = json.loads(out)
    assert {"table", "rows", "embedded", "skipped_unchanged", "seconds", "live"} <= set(first)
    assert first["live"] is True
    assert first["rows"] == 40
    code, out = cli("index", root, "--model", f"run-{run_id}", "--wait", "--json")
    assert code == 0
    assert json.loads(out)["table"] != first["table"]
    code, out = cli("index", "rollback", root, "--json")
    assert code == 0
    assert json.loads(out)["live"] == first["table"]
    code, out = cli("index", "list", root, "--json")
    assert [r["live"] for r in json.loads(out)["indexes"]] == [False, True]
    code, out = cli("index", root, "--model", "run-999", "--wait", "--json")
    assert code == 2
    assert "run 999" in json.loads(out)["error"]


def test_cli_index_without_wait_runs_detached(project: Project) -> None:
    """The one launcher's worker builds it: a queued 'index' run with its pid, log and events, like training's."""
    from engine.store import jobs

    code, out = cli("index", project.root, "--json")
    assert code == 0
    started = json.loads(out)
    assert set(started) == {"started", "pid", "log", "model", "run_id"}
    run_id = started["run_id"]
    assert Path(started["log"]) == project.root / "runs" / str(run_id) / "worker.log"
    deadline = time.monotonic() + 180  # a fresh interpreter imports torch and the model libraries first
    while time.monotonic() < deadline and indexes.live(project.db) is None:
        time.sleep(0.3)
    assert indexes.live(project.db) is not None, Path(started["log"]).read_text()
    run = jobs.job_run(project.db, run_id)
    assert run is not None
    assert (run["kind"], run["status"], run["pid"]) == ("index", "finished", started["pid"])
    assert run["config"]["fingerprint"]  # the model as the build resolved it
    assert any(e["kind"] == "progress" for e in runs.run_events(project.db, run_id))  # what `index list` follows
    code, log = cli("logs", project.root, run_id)  # the same log command as training's
    assert code == 0
    assert f"run {run_id}" in log


def test_a_queued_build_cancelled_before_its_worker_starts_stays_cancelled(project: Project) -> None:
    from engine.index.build import build_queued
    from engine.jobs.launcher import cancel, queue

    run_id = queue(project, "index", {"model": "base"})
    assert cancel(project, run_id) == "cancelled"
    assert build_queued(project, run_id) == {"status": "cancelled"}
    assert indexes.all_indexes(project.db) == []


def test_index_settings_are_validated() -> None:
    from engine.config import ConfigError, config_from_dict

    assert config_from_dict({}).index.min_recall == 0.95
    with pytest.raises(ConfigError, match=r"'index\.min_recall' must be in \(0, 1\]"):
        config_from_dict({"index": {"min_recall": 1.5}})
    with pytest.raises(ConfigError, match=r"'index\.batch_size' must be a positive integer"):
        config_from_dict({"index": {"batch_size": 0}})


def test_cancel_from_another_process_stops_a_build_after_its_batch(project: Project) -> None:
    """`embtune cancel DIR RUN` on an index build: the build polls the store, stops, and resumes later."""
    from engine.jobs.launcher import JobError, cancel

    project = set_index_config(project, batch_size=8)
    first = build_index(project)
    for i in range(20):
        edit_chunk(project, f"d{i:02d}", f"Edited passage d{i:02d} about a hailstorm and a windscreen.")
    requested: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "embed" and done >= 8 and not requested:
            run_id = runs.run_ids(project.db, "index")[-1]  # as `embtune runs --all` would show it
            requested.append(cancel(project, run_id))

    with pytest.raises(InterruptedError):
        build_index(project, progress=progress)
    assert requested == ["running"]
    cancelled = runs.get_run(project.db, runs.run_ids(project.db, "index")[-1])
    assert cancelled is not None
    assert cancelled["status"] == "cancelled"
    assert indexes.live(project.db)["table_name"] == first.table  # type: ignore[index]
    assert cancel(project, cancelled["id"]) == "cancelled"  # asking again changes nothing
    resumed = build_index(project)
    assert resumed.resumed > 0
    assert resumed.resumed + resumed.embedded + resumed.skipped_unchanged == 40
    with pytest.raises(JobError, match="only training runs and index builds"):
        cancel(project, runs.create_run(project.db, "gate", {}))


def test_status_text_shows_a_builds_progress() -> None:
    from engine.index.build import status_text

    progress = {"stage": "embed", "done": 1024, "total": 5183}
    assert status_text({"status": "building", "progress": progress}) == "building 1,024/5,183"
    assert status_text({"status": "building", "progress": None}) == "building"
    assert status_text({"status": "ready", "progress": None}) == "ready"


def test_rollback_returns_to_the_table_that_was_live_before_not_the_one_built_before(
    project: Project, tuned_model: Path
) -> None:
    """The issue's repro: build run A, build base (live), make A live, build run A again (C), roll back → A is
    live (the build-order rollback went to base, the untuned model). A second rollback goes to base."""
    run_id = register_model(project, tuned_model)
    first = build_index(project, str(run_id))
    base = build_index(project, "base")
    code, out = cli("index", "use", project.root, str(first.index_id), "--json")
    assert code == 0, out
    assert json.loads(out)["live"] == first.table
    third = build_index(project, str(run_id))
    assert indexes.live(project.db)["table_name"] == third.table
    assert rollback(project)["live"] == first.table
    assert rollback(project)["live"] == base.table
    code, out = cli("index", "list", project.root, "--json")
    history = json.loads(out)["history"]
    assert [h["reason"] for h in history] == ["rollback", "rollback", "build", "use", "build", "build"]
    assert history[0]["to_table"] == base.table
    assert history[3] == {**history[3], "from_table": base.table, "to_table": first.table}


def test_index_use_names_the_tables_when_it_finds_none(project: Project) -> None:
    build_index(project, "base")
    code, _ = cli("index", "use", project.root, "nope")
    assert code == 2
