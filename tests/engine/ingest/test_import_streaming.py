"""A BEIR corpus streams into staging tables (issue 19): still all or nothing, the write lock free while staging,
and nothing left behind by an import that is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.ingest import importing
from engine.ingest.readers import InputError
from engine.project import Project, init_project, open_project
from engine.store import jobs as store
from engine.store.db import DB_NAME, integrity_check, open_db, write
from tests.beir_files import dump

ROOT = Path(__file__).resolve().parents[3]
ROWS = 5000


@pytest.fixture
def project(tmp_path: Path) -> Project:
    made = init_project(tmp_path / "p")
    yield made
    made.close()


def write_beir(folder: Path, rows: int, *, bad: dict[int, dict] | None = None) -> Path:
    """`rows` passages (line n holds c{n}), three judged queries; `bad` replaces the object on a line."""
    (folder / "qrels").mkdir(parents=True)
    lines = [
        {"_id": f"c{n}", "title": f"T{n}", "text": f"passage {n} about topic {n % 37}"} for n in range(1, rows + 1)
    ]
    for line, obj in (bad or {}).items():
        lines[line - 1] = obj
    (folder / "corpus.jsonl").write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"q {i}"}) + "\n" for i in range(3))
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\tc{i + 1}\t1\n" for i in range(3))
    )
    return folder


def counts(project: Project) -> dict[str, int]:
    tables = ("texts", "documents", "chunks", "queries", "pairs", "imports")
    return {t: project.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def temp_tables(project: Project) -> int:
    return project.db.execute("SELECT count(*) FROM temp.sqlite_master").fetchone()[0]


def test_a_large_corpus_imports_whole_and_reimports_as_a_no_op(project: Project, tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir", ROWS)
    result = importing.import_beir(project, folder)
    assert result["added"] == {"documents": ROWS, "chunks": ROWS, "queries": 3, "pairs": 3, "negatives": 0}
    assert result["in_file"]["documents"] == ROWS
    row = project.db.execute(
        "SELECT d.title, t.text FROM documents d JOIN texts t ON t.hash = d.text_hash WHERE d.id = 'c4321'"
    )
    assert row.fetchone() == ("T4321", "passage 4321 about topic 29")
    before = dump(project)
    again = importing.import_beir(project, folder)
    assert not any(again["added"].values())
    assert dump(project) == before
    assert temp_tables(project) == 0


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({ROWS - 3: {"_id": "x", "title": "no text"}}, rf"corpus\.jsonl:{ROWS - 3}: field 'text': missing"),
        (
            {ROWS - 1: {"_id": "c17", "text": "again"}},
            rf"corpus\.jsonl:{ROWS - 1}: field '_id': duplicate id 'c17' \(first on line 17\)",
        ),
    ],
    ids=["missing field", "duplicate id"],
)
def test_a_bad_line_near_the_end_writes_nothing_and_names_the_line(
    project: Project, tmp_path: Path, bad: dict[int, dict], expected: str
) -> None:
    before = dump(project)
    with pytest.raises(InputError, match=expected):
        importing.import_beir(project, write_beir(tmp_path / "beir", ROWS, bad=bad))
    assert dump(project) == before
    assert temp_tables(project) == 0


def test_a_conflict_with_the_store_near_the_end_names_the_line(project: Project, tmp_path: Path) -> None:
    first = {10: {"_id": f"c{ROWS - 2}", "text": "the text the project holds"}}
    importing.import_beir(project, write_beir(tmp_path / "first", 10, bad=first))
    before = dump(project)
    expected = rf"corpus\.jsonl:{ROWS - 2}: field '_id': document 'c{ROWS - 2}' already exists in the project"
    with pytest.raises(InputError, match=expected):
        importing.import_beir(project, write_beir(tmp_path / "second", ROWS))
    assert dump(project) == before


def test_while_an_import_stages_another_process_writes_and_sees_none_of_it(project: Project, tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir", ROWS)
    other = open_db(project.root / DB_NAME)
    run_id = store.create_queued_run(other, "train", {})
    seen: list[tuple[int, int]] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "documents" and done < ROWS:  # mid-corpus: the staging tables hold `done` documents
            store.heartbeat(other, run_id)  # would wait for the import if it held the lock
            with write(other, patience=0.1):
                other.execute("INSERT INTO job_events (run_id, kind) VALUES (?, 'beat')", [run_id])
            seen.append((done, other.execute("SELECT count(*) FROM documents").fetchone()[0]))

    result = importing.import_beir(project, folder, progress=progress)
    assert len(seen) == 2  # after 2,000 and 4,000 documents
    assert all(staged > 0 and visible == 0 for staged, visible in seen)
    assert result["added"]["documents"] == ROWS
    assert other.execute("SELECT count(*) FROM job_events WHERE kind = 'beat'").fetchone()[0] == len(seen)
    other.close()


KILLED_CHILD = """
import sys, time
from pathlib import Path
from engine.ingest.importing import import_beir
from engine.project import open_project

marker = Path(sys.argv[3])

def progress(stage, done, total):
    if stage == "chunks" and done >= 2000:
        marker.touch()
        time.sleep(120)  # killed here, halfway through staging

import_beir(open_project(Path(sys.argv[1])), Path(sys.argv[2]), progress)
"""


def test_a_killed_import_leaves_no_staged_rows_behind(project: Project, tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir", ROWS)
    marker = tmp_path / "staging"
    before = dump(project)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, str(project.root), str(folder), str(marker)], cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the child never reached staging"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    reopened = open_project(project.root)
    try:
        assert dump(reopened) == before
        assert integrity_check(reopened.db) == ["ok"]
        assert importing.import_beir(reopened, folder)["added"]["documents"] == ROWS  # and it runs again cleanly
    finally:
        reopened.close()


def test_a_staged_reference_to_no_row_stops_the_copy_before_it_starts(project: Project) -> None:
    """The copy runs without SQLite's per-row foreign-key checks; the staged references are checked first."""
    from engine.store.staging import Staging

    with Staging(project.db) as staging:
        staging.add_document("d1", "", "body", "src", (Path("x"), 1))
        staging.add("chunks", {"id": "d9", "doc_id": "d9", "strategy": "source", "position": 0, "text_hash": "h"})
        staging.sort()
        with pytest.raises(RuntimeError, match=r"chunks\.doc_id = 'd9', which names no documents row"):
            staging.check_references()
    assert counts(project)["documents"] == 0
