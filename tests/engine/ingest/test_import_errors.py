"""Every kind of bad input fails with file:line and field, and leaves the database exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.ingest import importing
from engine.ingest.readers import InputError
from engine.project import Project, init_project
from tests.beir_files import CORPUS, QRELS, QUERIES, beir_files, dump, jsonl, write_tree


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = init_project(tmp_path / "proj")
    importing.import_beir(project, write_tree(tmp_path / "base", beir_files()))
    return project


BEIR_CASES = {
    "truncated json": (
        {"corpus.jsonl": jsonl(CORPUS) + b'{"_id": "d3", "text": "cut of'},
        r"corpus\.jsonl:3: invalid JSON: Unterminated string",
    ),
    "bad utf-8": (
        {"corpus.jsonl": jsonl(CORPUS) + b'{"_id": "d3", "text": "caf\xe9"}\n'},
        r"corpus\.jsonl:3: not valid UTF-8 \(byte 0xe9",
    ),
    "byte-order mark": ({"queries.jsonl": b"\xef\xbb\xbf" + jsonl(QUERIES)}, r"queries\.jsonl:1: .*byte-order mark"),
    "missing field": (
        {"corpus.jsonl": jsonl([*CORPUS, {"_id": "d3", "title": "t"}])},
        r"corpus\.jsonl:3: field 'text': missing",
    ),
    "empty field": (
        {"queries.jsonl": jsonl([*QUERIES, {"_id": "q3", "text": "   "}])},
        r"queries\.jsonl:3: field 'text': empty",
    ),
    "duplicate id": (
        {"corpus.jsonl": jsonl([*CORPUS, {"_id": "d1", "text": "again"}])},
        r"corpus\.jsonl:3: field '_id': duplicate id 'd1' \(first on line 1\)",
    ),
    "qrels unknown document": (
        {"qrels/test.tsv": b"query-id\tcorpus-id\tscore\nq1\td9\t1\n"},
        r"qrels/test\.tsv:2: field 'corpus-id': unknown document 'd9'",
    ),
    "qrels unknown query": (
        {"qrels/test.tsv": b"query-id\tcorpus-id\tscore\nq7\td1\t1\n"},
        r"qrels/test\.tsv:2: field 'query-id': unknown query 'q7'",
    ),
    "qrels wrong delimiter": (
        {"qrels/train.tsv": b"query-id,corpus-id,score\nq1,d1,1\n"},
        r"qrels/train\.tsv:1: expected 3 tab-separated columns, found 1; the line looks comma-separated",
    ),
    "qrels bad score": (
        {"qrels/train.tsv": b"query-id\tcorpus-id\tscore\nq1\td1\thigh\n"},
        r"qrels/train\.tsv:2: field 'score': expected a number",
    ),
    "unknown split file": ({"qrels/holdout.tsv": QRELS.encode()}, r"qrels/holdout\.tsv: unknown split 'holdout'"),
    "json not an object": (
        {"queries.jsonl": jsonl(QUERIES) + b"[1, 2]\n"},
        r"queries\.jsonl:3: expected a JSON object",
    ),
    "conflicting document": (
        {"corpus.jsonl": jsonl([{"_id": "d1", "text": "different text"}, CORPUS[1]])},
        r"corpus\.jsonl:1: field '_id': document 'd1' already exists in the project with other text",
    ),
}


@pytest.mark.parametrize("case", list(BEIR_CASES))
def test_bad_beir_input_names_file_line_field_and_writes_nothing(project: Project, tmp_path: Path, case: str) -> None:
    overrides, expected = BEIR_CASES[case]
    # Valid new rows next to the bad one prove the whole import is rolled back, not just the bad line.
    extra_doc = {"_id": "d5", "text": "A brand new passage that must not be half-imported."}
    files = beir_files(**{"corpus.jsonl": jsonl([*CORPUS, extra_doc])})
    files.update(overrides)
    folder = write_tree(tmp_path / "bad", files)
    before = dump(project)
    with pytest.raises(InputError, match=expected) as info:
        importing.import_beir(project, folder)
    assert "nothing was imported" in str(info.value)
    assert dump(project) == before


PAIRS_CASES = {
    "pairs.jsonl": (
        b'{"query": "q", "positive": "p"}\n{"query": "no positive"}\n',
        r"pairs\.jsonl:2: field 'positive': missing",
    ),
    "flag.jsonl": (b'{"query": "q", "pos": [], "neg": ["n"]}\n', r"flag\.jsonl:1: field 'pos': missing or empty list"),
    "semi.csv": (
        b"query;positive\nq;p\n",
        r"semi\.csv:1: field 'query': header lacks column\(s\) query, positive "
        r"\(the header looks semicolon-separated; use commas\)",
    ),
    "cells.csv": (b"query,positive\nq,p,extra\n", r"cells\.csv:2: expected 2 comma-separated cells, found 3"),
    "split.jsonl": (
        b'{"query": "q", "positive": "p", "split": "validation"}\n',
        r"split\.jsonl:1: field 'split': unknown split",
    ),
    "empty.csv": (b"query,positive\n,p\n", r"empty\.csv:2: field 'query': empty"),
}


@pytest.mark.parametrize("name", list(PAIRS_CASES))
def test_bad_pairs_input(project: Project, tmp_path: Path, name: str) -> None:
    data, expected = PAIRS_CASES[name]
    path = tmp_path / name
    path.write_bytes(data)
    before = dump(project)
    with pytest.raises(InputError, match=expected):
        importing.import_pairs(project, path)
    assert dump(project) == before


def test_queries_with_unknown_judgment_write_nothing(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "gate.jsonl"
    path.write_text(
        json.dumps({"text": "ok", "relevant": ["d1"]}) + "\n" + json.dumps({"text": "bad", "relevant": ["nope"]}) + "\n"
    )
    before = dump(project)
    with pytest.raises(InputError, match=r"gate\.jsonl:2: field 'relevant': unknown document or chunk 'nope'"):
        importing.import_queries(project, path, "gate")
    assert dump(project) == before


def test_many_problems_are_reported_together(project: Project, tmp_path: Path) -> None:
    bad = jsonl([{"_id": "x"}, {"text": "no id"}, {"_id": "d1", "text": ""}])
    folder = write_tree(tmp_path / "bad", beir_files(**{"corpus.jsonl": bad}))
    with pytest.raises(InputError) as info:
        importing.import_beir(project, folder)
    lines = [str(p) for p in info.value.problems]
    assert [line.split(": ", 1)[0].rsplit("/", 1)[-1] for line in lines[:3]] == [
        "corpus.jsonl:1",
        "corpus.jsonl:2",
        "corpus.jsonl:3",
    ]
