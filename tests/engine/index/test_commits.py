"""The Committer: a build's rows reach LanceDB as few versions (by time or rows waiting), nothing is lost on a
flush, and a finished table is compacted to its newest version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa

from engine.index.build import build_index, connect
from engine.index.stream import Committer
from engine.project import Project
from tests.projects import set_index_config


def rows(start: int, n: int) -> Any:
    return pa.table({"chunk_id": [f"c{i}" for i in range(start, start + n)], "x": list(range(start, start + n))})


def new_table(folder: Path) -> Any:
    return lancedb.connect(str(folder)).create_table("t", schema=rows(0, 1).schema)


def test_rows_wait_until_enough_are_waiting_and_a_flush_commits_the_rest(tmp_path: Path) -> None:
    table = new_table(tmp_path)
    out = Committer(table, seconds=3600, max_rows=10)
    for start in range(0, 12, 3):
        out.add(rows(start, 3))
    assert (table.count_rows(), out.rows) == (12, 0)  # the fourth add reached 10 waiting rows: one commit
    out.add(rows(12, 3))
    assert table.count_rows() == 12
    out.flush()
    assert sorted(table.to_arrow().column("x").to_pylist()) == list(range(15))
    assert out.commits == 2


def test_zero_seconds_commits_every_add_and_compact_keeps_one_fragment_and_version(tmp_path: Path) -> None:
    table = new_table(tmp_path)
    out = Committer(table, seconds=0, max_rows=1000)
    for start in range(0, 15, 3):
        out.add(rows(start, 3))
        assert table.count_rows() == start + 3
    assert len(table.list_versions()) == 6  # the empty table, then one version per add
    assert len(list((Path(table.uri) / "data").iterdir())) == 5
    out.compact()
    assert len(table.list_versions()) == 1
    assert len(list((Path(table.uri) / "data").iterdir())) == 1
    assert sorted(table.to_arrow().column("x").to_pylist()) == list(range(15))


def test_a_build_commits_few_versions_and_keeps_one(project: Project) -> None:
    """40 chunks at batch 4 are 10 batches: committed by time they are one fragment, and the finished table keeps
    only its newest version."""
    project = set_index_config(project, batch_size=4)
    built = build_index(project)
    assert built.embedded == 40
    table = connect(project).open_table(built.table)
    assert len(table.list_versions()) == 1
    assert len(list((Path(table.uri) / "data").iterdir())) == 1
