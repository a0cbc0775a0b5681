"""A two-document BEIR folder as bytes, for import tests that break one file of it at a time."""

from __future__ import annotations

import json
from pathlib import Path

from engine.project import Project

CORPUS = [
    {"_id": "d1", "title": "FNOL", "text": "First notice of loss is taken by the intake team."},
    {"_id": "d2", "title": "SIU", "text": "Refer suspected fraud to the special investigations unit."},
]
QUERIES = [{"_id": "q1", "text": "who takes the first call"}, {"_id": "q2", "text": "fraud referral"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def beir_files(**overrides: bytes) -> dict[str, bytes]:
    """The folder's files by relative path; an override replaces one (None leaves it out)."""
    files = {"corpus.jsonl": jsonl(CORPUS), "queries.jsonl": jsonl(QUERIES), "qrels/train.tsv": QRELS.encode()}
    files.update(overrides)
    return {k: v for k, v in files.items() if v is not None}


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def dump(project: Project) -> list[str]:
    """The whole database as SQL, to show a failed import left it exactly as it was."""
    return list(project.db.conn.iterdump())
