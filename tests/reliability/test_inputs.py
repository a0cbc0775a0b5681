"""Hostile input through `embtune import --json`: every bad file exits 2 with {"error": …} naming file, line and
field, never a traceback, and leaves the store exactly as it was (no half-import).

CASES is the table the issue's closing note counts (`python -m tests.reliability.test_inputs` prints it): bad
inputs tried per category, and how many gave a clear error, a traceback or a half-import.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.ingest import importing
from engine.project import Project, init_project, open_project
from engine.store.db import open_db
from tests.beir_files import CORPUS, beir_files, dump, jsonl, write_tree

Setup = Callable[[pytest.MonkeyPatch, Path], None]

LIMIT_YAML = """name: limits
ingest:
  max_document_chars: 1000
chunking:
  default: paragraph
  strategies:
    paragraph: {kind: paragraph, max_words: 50}
    whole: {kind: whole}
"""


@dataclass(frozen=True)
class Case:
    category: str
    files: dict[str, bytes]  # under the input folder IN
    args: tuple[str, ...]  # `embtune import ROOT ARGS --json`; "IN" is replaced by the input folder
    error: str  # a regex the {"error": …} must match
    setup: Setup | None = None


def _pairs(*rows: str) -> bytes:
    return "".join(row + "\n" for row in rows).encode()


def _beir(**overrides: bytes) -> dict[str, bytes]:
    return {f"b/{name}": data for name, data in beir_files(**overrides).items()}


def _limit(_: pytest.MonkeyPatch, root: Path) -> None:
    (root / "project.yaml").write_text(LIMIT_YAML)


def _unreadable(name: str) -> Setup:
    """Root reads every file whatever its mode (these tests run as root on CI), so refuse reads by path."""

    def setup(monkeypatch: pytest.MonkeyPatch, _: Path) -> None:
        read_bytes, scandir, path_open = Path.read_bytes, os.scandir, Path.open

        def refuse_read(path: Path) -> bytes:
            if path.name == name:
                raise PermissionError(13, "Permission denied", str(path))
            return read_bytes(path)

        def refuse_open(path: Path, *args: Any, **kwargs: Any) -> Any:  # the readers stream with Path.open
            if path.name == name:
                raise PermissionError(13, "Permission denied", str(path))
            return path_open(path, *args, **kwargs)

        def refuse_scan(path: Any = ".") -> Any:
            if Path(path).name == name:
                raise PermissionError(13, "Permission denied", str(path))
            return scandir(path)

        monkeypatch.setattr(Path, "read_bytes", refuse_read)
        monkeypatch.setattr(Path, "open", refuse_open)
        monkeypatch.setattr(os, "scandir", refuse_scan)

    return setup


def _disk_full(monkeypatch: pytest.MonkeyPatch, _: Path) -> None:
    """The database may grow by 2 pages only: SQLite then fails with SQLITE_FULL, as on a full disk."""
    import engine.cli.project as cli_project

    def tight(directory: Path) -> Project:
        project = open_project(directory)
        pages = project.db.execute("PRAGMA page_count").fetchone()[0]
        project.db.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        return project

    monkeypatch.setattr(cli_project, "open_project", tight)


BIG_PAIRS = _pairs(*(json.dumps({"query": f"q{i}", "positive": f"passage {i} " + "x" * 500}) for i in range(300)))
LONG = "word " * 1000  # 5,000 characters: over the 1,000 of LIMIT_YAML
DOC = b"# A document\n\nSome text about first notice of loss.\n"
# One generator per docs case that needs something a dict of bytes cannot hold (links, pipes, odd names).
SPECIAL: dict[str, Callable[[Path], None]] = {
    "broken link": lambda d: os.symlink("nowhere.md", d / "gone.md"),
    "named pipe": lambda d: os.mkfifo(d / "pipe.txt"),
    "non-UTF-8 file name": lambda d: open(os.fsencode(d) + b"/caf\xe9.txt", "wb").close(),
    "link to a folder": lambda d: os.symlink("..", d / "up"),
}

CASES: dict[str, Case] = {
    # --- encoding
    "surrogate in pairs query": Case(
        "encoding",
        {"p.jsonl": b'{"query": "a \\ud800 b", "positive": "p"}\n'},
        ("--pairs", "IN/p.jsonl"),
        r"p\.jsonl:1: field 'query': lone surrogate escape \\ud800",
    ),
    "surrogate in FlagEmbedding list": Case(
        "encoding",
        {"f.jsonl": b'{"query": "q", "pos": ["ok", "x\\udfff"], "neg": []}\n'},
        ("--pairs", "IN/f.jsonl"),
        r"f\.jsonl:1: field 'pos': lone surrogate escape \\udfff",
    ),
    "surrogate in corpus text": Case(
        "encoding",
        _beir(**{"corpus.jsonl": jsonl(CORPUS) + b'{"_id": "d3", "text": "\\udc00"}\n'}),
        ("--beir", "IN/b"),
        r"corpus\.jsonl:3: field 'text': lone surrogate",
    ),
    "surrogate in queries file": Case(
        "encoding",
        {"q.jsonl": b'{"text": "ok"}\n{"text": "\\ud83d alone"}\n'},
        ("--queries", "IN/q.jsonl", "--tag", "gate"),
        r"q\.jsonl:2: field 'text': lone surrogate",
    ),
    "surrogate in a key": Case(
        "encoding",
        {"p.jsonl": b'{"query": "q", "positive": "p", "\\ud800": 1}\n'},
        ("--pairs", "IN/p.jsonl"),
        r"p\.jsonl:1: lone surrogate",
    ),
    "bad UTF-8 in CSV": Case(
        "encoding",
        {"p.csv": b"query,positive\nq,p\nq2,caf\xe9\n"},
        ("--pairs", "IN/p.csv"),
        r"p\.csv:3: not valid UTF-8 \(byte 0xe9",
    ),
    "BOM in CSV": Case(
        "encoding",
        {"p.csv": b"\xef\xbb\xbfquery,positive\nq,p\n"},
        ("--pairs", "IN/p.csv"),
        r"p\.csv:1: starts with a UTF-8 byte-order mark",
    ),
    "UTF-16 JSONL": Case(
        "encoding",
        {"p.jsonl": '{"query": "q", "positive": "p"}\n'.encode("utf-16")},
        ("--pairs", "IN/p.jsonl"),
        r"p\.jsonl:1: not valid UTF-8",
    ),
    # --- JSON
    "unterminated string": Case(
        "JSON",
        {"p.jsonl": b'{"query": "q", "positive": "cut\n'},
        ("--pairs", "IN/p.jsonl"),
        r"p\.jsonl:1: invalid JSON: Unterminated string starting at column 28",
    ),
    "NaN constant": Case(
        "JSON",
        {"p.jsonl": b'{"query": NaN, "positive": "p"}\n'},
        ("--pairs", "IN/p.jsonl"),
        r"p\.jsonl:1: invalid JSON: NaN is not a JSON value",
    ),
    "Infinity constant": Case(
        "JSON",
        _beir(**{"corpus.jsonl": jsonl(CORPUS) + b'{"_id": Infinity, "text": "t"}\n'}),
        ("--beir", "IN/b"),
        r"corpus\.jsonl:3: invalid JSON: Infinity",
    ),
    "duplicate key": Case(
        "JSON",
        {"p.jsonl": b'{"query": "q", "positive": "p", "positive": "other"}\n'},
        ("--pairs", "IN/p.jsonl"),
        r"p\.jsonl:1: invalid JSON: key 'positive' appears twice",
    ),
    "deep nesting": Case(
        "JSON", {"p.jsonl": b"[" * 100_000 + b"\n"}, ("--pairs", "IN/p.jsonl"), r"p\.jsonl:1: .*nested too deeply"
    ),
    "number as passage": Case(
        "JSON",
        {"p.jsonl": b'{"query": "q", "positive": 12345}\n'},
        ("--pairs", "IN/p.jsonl"),
        r"p\.jsonl:1: field 'positive': expected a string, got a number",
    ),
    "boolean as query": Case(
        "JSON",
        {"p.jsonl": b'{"query": true, "positive": "p"}\n'},
        ("--pairs", "IN/p.jsonl"),
        r"p\.jsonl:1: field 'query': expected a string, got true/false",
    ),
    "object as corpus text": Case(
        "JSON",
        _beir(**{"corpus.jsonl": jsonl([*CORPUS, {"_id": "d3", "text": {"en": "t"}}])}),
        ("--beir", "IN/b"),
        r"corpus\.jsonl:3: field 'text': expected a string, got an object",
    ),
    "number as query text": Case(
        "JSON",
        {"q.jsonl": b'{"text": 3.5}\n'},
        ("--queries", "IN/q.jsonl", "--tag", "gate"),
        r"q\.jsonl:1: field 'text': expected a string, got a number",
    ),
    "array line": Case(
        "JSON", {"p.jsonl": b'["q", "p"]\n'}, ("--pairs", "IN/p.jsonl"), r"p\.jsonl:1: expected a JSON object"
    ),
    "boolean id": Case(
        "JSON",
        _beir(**{"corpus.jsonl": jsonl([*CORPUS, {"_id": True, "text": "t"}])}),
        ("--beir", "IN/b"),
        r"corpus\.jsonl:3: field '_id': expected a string",
    ),
    # --- CSV
    "unclosed quote": Case(
        "CSV",
        {"p.csv": b'query,positive\nq,p\n"never closed,p\nq3,p3\n'},
        ("--pairs", "IN/p.csv"),
        r"p\.csv:3: invalid CSV in the record starting here",
    ),
    "text after closing quote": Case(
        "CSV",
        {"p.csv": b'query,positive\n"q"x,p\n'},
        ("--pairs", "IN/p.csv"),
        r"p\.csv:2: invalid CSV",
    ),
    "line number after a quoted newline": Case(
        "CSV",
        {"p.csv": b'query,positive\n"two\nlines",p\n"three\n\nlines",\n'},
        ("--pairs", "IN/p.csv"),
        r"p\.csv:4: field 'positive': empty",
    ),
    "extra cell": Case(
        "CSV",
        {"p.csv": b"query,positive\nq,p,x\n"},
        ("--pairs", "IN/p.csv"),
        r"p\.csv:2: expected 2 comma-separated cells, found 3",
    ),
    "semicolon header": Case(
        "CSV",
        {"p.csv": b"query;positive\nq;p\n"},
        ("--pairs", "IN/p.csv"),
        r"p\.csv:1: field 'query': header lacks column.*semicolon-separated",
    ),
    "empty CSV": Case("CSV", {"p.csv": b""}, ("--pairs", "IN/p.csv"), r"p\.csv: empty file"),
    "unknown column": Case(
        "CSV", {"p.csv": b"query,positive,score\nq,p,1\n"}, ("--pairs", "IN/p.csv"), r"p\.csv:1: field 'score'"
    ),
    # --- BEIR / qrels
    "qrels score nan": Case(
        "BEIR/qrels",
        _beir(**{"qrels/train.tsv": b"q1\td1\t1\nq2\td2\tnan\n"}),
        ("--beir", "IN/b"),
        r"train\.tsv:2: field 'score': expected a finite number, got 'nan'",
    ),
    "qrels score inf": Case(
        "BEIR/qrels",
        _beir(**{"qrels/train.tsv": b"q1\td1\tinf\n"}),
        ("--beir", "IN/b"),
        r"train\.tsv:1: field 'score': expected a finite number",
    ),
    "qrels score text": Case(
        "BEIR/qrels",
        _beir(**{"qrels/train.tsv": b"q1\td1\thigh\n"}),
        ("--beir", "IN/b"),
        r"train\.tsv:1: field 'score': expected a number",
    ),
    "unreadable corpus": Case(
        "BEIR/qrels",
        _beir(**{"qrels/train.tsv": b"".join(b"q1\td1\t1\n" for _ in range(30))}),
        ("--beir", "IN/b"),
        r"^1 problem\(s\).*\n.*corpus\.jsonl: cannot read: Permission denied$",
        _unreadable("corpus.jsonl"),
    ),
    "many unknown documents": Case(
        "BEIR/qrels",
        _beir(**{"qrels/train.tsv": b"".join(f"q1\tx{i}\t1\n".encode() for i in range(30))}),
        ("--beir", "IN/b"),
        r"^6 problem\(s\)(.|\n)*train\.tsv:5: field 'corpus-id'(.|\n)*and 25 more lines",
    ),
    "TREC 4-column qrels": Case(
        "BEIR/qrels",
        _beir(**{"qrels/test.tsv": b"q1\t0\td1\t1\n"}),
        ("--beir", "IN/b"),
        r"test\.tsv:1: expected 3 tab-separated columns, found 4",
    ),
    "missing queries.jsonl": Case(
        "BEIR/qrels", _beir(**{"queries.jsonl": None}), ("--beir", "IN/b"), r"queries\.jsonl: missing"
    ),
    "unknown split file": Case(
        "BEIR/qrels", _beir(**{"qrels/holdout.tsv": b"q1\td1\t1\n"}), ("--beir", "IN/b"), r"unknown split 'holdout'"
    ),
    "query in two splits": Case(
        "BEIR/qrels",
        _beir(**{"qrels/test.tsv": b"q1\td1\t1\n"}),
        ("--beir", "IN/b"),
        r"train\.tsv:2: field 'query-id': query 'q1' is already in split 'test'",
    ),
    # --- docs folder (skips are errors with --strict; without it they are named in the summary, tested below)
    "unreadable subfolder": Case(
        "docs folder",
        {"d/a.txt": DOC, "d/secret/b.txt": DOC},
        ("--docs", "IN/d", "--strict"),
        r"d/secret: skipped: cannot read folder: Permission denied \(--strict\)",
        _unreadable("secret"),
    ),
    "broken link": Case(
        "docs folder", {"d/a.txt": DOC}, ("--docs", "IN/d", "--strict"), r"gone\.md: skipped: not a regular file"
    ),
    "named pipe": Case(
        "docs folder", {"d/a.txt": DOC}, ("--docs", "IN/d", "--strict"), r"pipe\.txt: skipped: not a regular file"
    ),
    "non-UTF-8 file name": Case(
        "docs folder",
        {"d/a.txt": DOC},
        ("--docs", "IN/d", "--strict"),
        r"caf\\xe9\.txt: skipped: file or folder name is not valid UTF-8",
    ),
    "link to a folder": Case(
        "docs folder", {"d/a.txt": DOC}, ("--docs", "IN/d", "--strict"), r"d/up: skipped: link to a folder"
    ),
    "a PDF among the documents": Case(
        "docs folder",
        {"d/a.txt": DOC, "d/b.pdf": b"%PDF-1.4"},
        ("--docs", "IN/d", "--strict"),
        r"b\.pdf: skipped: not a \.txt",
    ),
    "empty document": Case(
        "docs folder", {"d/a.txt": DOC, "d/b.md": b"\n \n"}, ("--docs", "IN/d"), r"b\.md: empty document"
    ),
    "binary .txt": Case(
        "docs folder", {"d/a.txt": DOC, "d/b.txt": b"\x89PNG\r\n\x1a\n\xff"}, ("--docs", "IN/d"), r"b\.txt:1: not valid"
    ),
    "no documents": Case("docs folder", {"d/.keep": b""}, ("--docs", "IN/d"), r"d: no \.txt, \.md, \.markdown files"),
    "docs path is a file": Case("docs folder", {"d": DOC}, ("--docs", "IN/d"), r"d: no such folder"),
    # --- size limits (ingest.max_document_chars: 1000)
    "long corpus passage": Case(
        "size limits",
        _beir(**{"corpus.jsonl": jsonl([*CORPUS, {"_id": "d3", "text": LONG}])}),
        ("--beir", "IN/b"),
        r"corpus\.jsonl:3: field 'text': 5,000 characters, over ingest\.max_document_chars \(1,000\)",
        _limit,
    ),
    "long pairs passage": Case(
        "size limits",
        {"p.jsonl": jsonl([{"query": "q", "positive": "p"}, {"query": "q2", "positive": LONG}])},
        ("--pairs", "IN/p.jsonl"),
        r"p\.jsonl:2: field 'positive': 5,000 characters, over ingest\.max_document_chars",
        _limit,
    ),
    "long query": Case(
        "size limits",
        {"q.jsonl": jsonl([{"text": LONG}])},
        ("--queries", "IN/q.jsonl", "--tag", "gate"),
        r"q\.jsonl:1: field 'text': 5,000 characters",
        _limit,
    ),
    "long CSV cell (past csv's 128 KiB)": Case(
        "size limits",
        {"p.csv": b"query,positive\nq," + b"x" * 200_000 + b"\n"},
        ("--pairs", "IN/p.csv"),
        r"p\.csv:2: field 'positive': 200,000 characters, over ingest\.max_document_chars",
        _limit,
    ),
    "whole-document chunk over the limit": Case(
        "size limits",
        {"d/a.txt": DOC, "d/long.txt": LONG.encode()},
        ("--docs", "IN/d", "--chunking", "whole"),
        r"long\.txt: field 'chunk 1 \(whole\)': 4,999 characters, over ingest\.max_document_chars",
        _limit,
    ),
    "limit below a paragraph": Case(
        "size limits",
        {"p.jsonl": jsonl([{"query": "q", "positive": "p"}])},
        ("--pairs", "IN/p.jsonl"),
        r"project\.yaml:3: 'ingest\.max_document_chars' must be at least 1000, got 10",
        lambda _, root: (root / "project.yaml").write_text("name: x\ningest:\n  max_document_chars: 10\n"),
    ),
    # --- disk full (SQLite's page limit stands in for the disk)
    "disk full: pairs": Case(
        "disk", {"p.jsonl": BIG_PAIRS}, ("--pairs", "IN/p.jsonl"), r"^disk full while importing .*nothing", _disk_full
    ),
    "disk full: BEIR": Case(
        "disk",
        _beir(**{"corpus.jsonl": jsonl([{"_id": f"n{i}", "text": "y" * 400} for i in range(300)] + CORPUS)}),
        ("--beir", "IN/b"),
        r"^disk full while importing .*nothing was imported",
        _disk_full,
    ),
    "disk full: docs": Case(
        "disk",
        {f"d/{i}.txt": ("z " * 400).encode() for i in range(100)},
        ("--docs", "IN/d"),
        r"^disk full while importing .*nothing was imported",
        _disk_full,
    ),
}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = init_project(tmp_path / "proj")
    importing.import_beir(project, write_tree(tmp_path / "base", beir_files()))
    return project


def run_case(name: str, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(outcome, message): clear (exit 2, {"error": …} naming the expected file:line and field) | unclear (an
    error that does not) | traceback | half-import (the store changed) | accepted (exit 0)."""
    case = CASES[name]
    folder = write_tree(tmp_path / "in", case.files)
    if name in SPECIAL:
        SPECIAL[name](folder / "d")
    before = dump(project)
    project.close()
    if case.setup:
        case.setup(monkeypatch, project.root)
    args = [a.replace("IN", str(folder)) for a in case.args]
    result = CliRunner().invoke(main, ["import", str(project.root), *args, "--json"])
    monkeypatch.undo()
    # The database alone: a case may have left project.yaml invalid on purpose.
    after = open_db(project.root / "project.db", migrate=False)
    intact = list(after.conn.iterdump()) == before and after.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after.conn.close()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "traceback", repr(result.exception)
    if result.exit_code == 0:
        return "accepted", result.stdout  # a bad input taken in (the summary may still name it)
    if not intact:
        return "half-import", result.output
    try:
        message = json.loads(result.stdout)["error"]
    except (ValueError, KeyError, TypeError):
        return "unclear", result.output  # no {"error": …} on stdout under --json
    clear = result.exit_code == 2 and re.search(case.error, message)
    return ("clear" if clear else "unclear"), message


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_error_and_changes_nothing(
    name: str, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome, message = run_case(name, project, tmp_path, monkeypatch)
    assert outcome == "clear", f"{outcome}: {message}\nexpected: {CASES[name].error}"


def test_skipped_files_are_named_in_the_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    init_project(root).close()
    folder = write_tree(tmp_path / "d", {"a.txt": DOC, "secret/b.txt": DOC, "c.pdf": b"%PDF", ".hidden": b""})
    _unreadable("secret")(monkeypatch, root)
    result = CliRunner().invoke(main, ["import", str(root), "--docs", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["added"]["documents"] == 1
    assert out["skipped_count"] == 2
    assert {(Path(s["path"]).name, s["reason"].split(":")[0]) for s in out["skipped"]} == {
        ("c.pdf", "not a .txt, .md, .markdown file"),
        ("secret", "cannot read folder"),
    }
    text = CliRunner().invoke(main, ["import", str(root), "--docs", str(folder)]).stdout
    assert "skipped 2 file(s) or row(s) (--strict makes this an error):" in text
    assert "secret: cannot read folder: Permission denied" in text


def test_a_long_document_is_chunked_and_the_import_says_so(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    init_project(root).close()
    (root / "project.yaml").write_text(LIMIT_YAML)
    folder = write_tree(tmp_path / "d", {"long.txt": ("word " * 30 + "\n\n").encode() * 40})
    result = CliRunner().invoke(main, ["import", str(root), "--docs", str(folder)])
    assert result.exit_code == 0, result.output
    assert "note: long.txt: 6,077 characters, over ingest.max_document_chars (1,000); imported as 40 chunks" in (
        result.stdout
    )


def test_quoted_newlines_in_csv_cells_are_read(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b'query,positive\n"who takes\nthe call","Intake,\n\nat once"\nq2,"x' + b"y" * 200_000 + b'"\n')
    result = importing.import_pairs(project, path)
    assert result["added"]["pairs"] == 2
    texts = {row[0] for row in project.db.execute("SELECT text FROM queries")}
    assert "who takes\nthe call" in texts


def test_numeric_ids_are_still_accepted(project: Project, tmp_path: Path) -> None:
    corpus = jsonl([{"_id": 7, "text": "numbered passage"}])
    queries = jsonl([{"_id": 8, "text": "numbered query"}])
    folder = write_tree(tmp_path / "b", beir_files(**{"corpus.jsonl": corpus, "queries.jsonl": queries}))
    (folder / "qrels/train.tsv").write_bytes(b"8\t7\t1\n")
    assert importing.import_beir(project, folder)["added"]["pairs"] == 1


def test_disk_full_leaves_no_transaction_open(project: Project, tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_bytes(BIG_PAIRS)
    pages = project.db.execute("PRAGMA page_count").fetchone()[0]
    project.db.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(importing.DiskFullError):
        importing.import_pairs(project, tmp_path / "p.jsonl")
    assert not project.db.conn.in_transaction
    project.db.conn.execute("PRAGMA max_page_count = 1073741823")
    assert importing.import_pairs(project, tmp_path / "p.jsonl")["added"]["pairs"] == 300


def outcome_table(tmp_root: Path) -> dict[str, Counter[str]]:
    """Run every case outside pytest; {category: Counter(outcome)} for the closing note."""
    table: dict[str, Counter[str]] = {}
    for number, name in enumerate(CASES):
        tmp = tmp_root / str(number)
        proj = init_project(tmp / "proj")
        importing.import_beir(proj, write_tree(tmp / "base", beir_files()))
        with pytest.MonkeyPatch.context() as monkeypatch:
            outcome, _ = run_case(name, proj, tmp, monkeypatch)
        table.setdefault(CASES[name].category, Counter())[outcome] += 1
    return table


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = outcome_table(Path(tmp))
    print("| category | tried | clear errors | unclear errors | tracebacks | half-imports | accepted |")
    print("|---|---|---|---|---|---|---|")
    for category, counts in rows.items():
        cells = [counts[k] for k in ("clear", "unclear", "traceback", "half-import", "accepted")]
        print(f"| {category} | {sum(counts.values())} | " + " | ".join(map(str, cells)) + " |")
