"""The Ray engine (`embtune index DIR --engine ray`) on a local Ray with 2 CPUs and the tiny model: the table it
builds equals the local build's row by row, and it is registered like one (live, searchable, incremental, rolled
back, listed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.index.build import build_index, connect, index_history, list_indexes, rollback
from engine.index.ray_build import RayEngineError, build_index_ray
from engine.index.search import Searcher
from engine.project import Project
from engine.store import indexes, runs
from engine.store import jobs as store_jobs
from tests.engine.index.test_build import edit_chunk
from tests.projects import cli, make_project

QUERY = "when do we use indemnity"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray head with 2 CPUs for the module (it takes seconds to start), connected to by address as a
    cluster would be. Started by `ray start` with fixed agent ports: ray.init's dynamic ports make the raylet give
    its agents 20 s to report, which a loaded CI machine can miss."""
    import ray

    ports = [free_port() for _ in range(5)]
    command = [
        *(str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--disable-usage-stats"),
        *("--num-cpus", "2", "--include-dashboard", "false", "--port", str(ports[0])),
        *("--dashboard-agent-grpc-port", str(ports[1]), "--dashboard-agent-listen-port", str(ports[2])),
        *("--metrics-export-port", str(ports[3]), "--runtime-env-agent-port", str(ports[4])),
    ]
    saved_auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a loopback head for this test: no token to share with the driver
    head = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                ray.init(address=f"127.0.0.1:{ports[0]}", log_to_driver=False, configure_logging=False)
                break
            except (ConnectionError, RuntimeError):
                if time.monotonic() > deadline or head.poll() is not None:
                    raise
                time.sleep(2)
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield
    finally:
        ray.shutdown()
        head.terminate()  # `ray start --block` stops the head's processes on SIGTERM
        head.wait(60)
        if saved_auth is None:  # later modules in this worker see the environment they started with
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved_auth


def table_columns(project: Project, name: str) -> tuple[Any, dict[str, list[Any]], np.ndarray]:
    table = connect(project).open_table(name)
    data = table.to_arrow().sort_by("chunk_id")
    others = {c: data.column(c).to_pylist() for c in data.column_names if c != "vector"}
    return table.schema, others, np.stack(data.column("vector").to_numpy(zero_copy_only=False))


def test_ray_build_equals_the_local_build_and_is_registered_like_one(
    tmp_path: Path, tiny_embedder_path: Path, local_ray: None
) -> None:
    local_project = make_project(tmp_path / "local", tiny_embedder_path)
    ray_project = make_project(tmp_path / "ray", tiny_embedder_path)
    local = build_index(local_project)
    built = build_index_ray(ray_project)
    assert (built.rows, built.embedded, built.skipped_unchanged, built.live) == (40, 40, 0, True)
    assert built.max_seq_length == local.max_seq_length
    assert (built.targets["engine"], built.targets["actors"]) == ("ray", 1)

    local_schema, local_rows, local_vectors = table_columns(local_project, local.table)
    ray_schema, ray_rows, ray_vectors = table_columns(ray_project, built.table)
    assert ray_schema == local_schema
    assert ray_schema.metadata == local_schema.metadata
    assert ray_rows == local_rows  # chunk ids, doc ids, text hashes and texts, row by row
    assert len(set(ray_rows["chunk_id"])) == 40
    assert np.allclose(ray_vectors, local_vectors, atol=1e-5)

    live = indexes.live(ray_project.db)
    assert live is not None
    assert (live["table_name"], live["status"]) == (built.table, "ready")
    run, local_run = (
        store_jobs.job_run(ray_project.db, built.run_id),
        store_jobs.job_run(local_project.db, local.run_id),
    )
    assert run is not None
    assert local_run is not None
    assert (run["kind"], run["status"]) == ("index", "finished")
    assert run["config"]["prompts"] == local_run["config"]["prompts"]
    hits = [h["doc_id"] for h in Searcher(ray_project).search(QUERY).to_json()["hits"]]
    assert hits == [h["doc_id"] for h in Searcher(local_project).search(QUERY).to_json()["hits"]]

    # a second Ray build copies the unchanged vectors and encodes only the edited chunk; rollback returns
    edit_chunk(ray_project, "d03", "A brand new passage about storm damage to the garden fence.")
    second = build_index_ray(ray_project)
    assert (second.rows, second.embedded, second.skipped_unchanged) == (40, 1, 39)
    assert indexes.live(ray_project.db)["table_name"] == second.table  # type: ignore[index]
    assert rollback(ray_project)["live"] == built.table
    assert Searcher(ray_project).search(QUERY).to_json()["hits"][0]["doc_id"] == hits[0]
    assert [h["reason"] for h in index_history(ray_project)] == ["rollback", "build", "build"]
    assert {r["table"] for r in list_indexes(ray_project)} == {built.table, second.table}
    local_project.close()
    ray_project.close()


def test_cli_index_engine_ray_wait_json(tmp_path: Path, tiny_embedder_path: Path, local_ray: None) -> None:
    project = make_project(tmp_path, tiny_embedder_path)
    root = str(project.root)
    code, out = cli("index", root, "--model", "base", "--engine", "ray", "--actors", "2", "--wait", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert (result["rows"], result["embedded"], result["live"]) == (40, 40, True)
    assert (result["targets"]["engine"], result["targets"]["actors"]) == ("ray", 2)
    code, out = cli("index", "list", root, "--json")
    assert [r["table"] for r in json.loads(out)["indexes"] if r["live"]] == [result["table"]]
    code, out = cli("index", root, "--engine", "local", "--address", "ray://head:10001", "--wait", "--json")
    assert code == 2
    assert "--engine ray" in json.loads(out)["error"]
    project.close()


def test_missing_ray_names_the_extra(tmp_path: Path, tiny_embedder_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path, tiny_embedder_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra installed
    with pytest.raises(RayEngineError, match=r"pip install 'embtune\[ray\]'"):
        build_index_ray(project)
    assert runs.run_ids(project.db, "index") == []  # refused before any run is recorded
    project.close()
