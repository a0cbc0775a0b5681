"""Mined negatives for review tests, written with plain SQL as a miner would (tests may write SQL; engine may not)."""

from __future__ import annotations

from pathlib import Path

from engine.project import Project
from engine.store.db import write
from tests.projects import make_project

NO_MODEL = Path("no-model")  # review never loads the base model, so these projects need none built


def review_project(tmp: Path, **beir: int) -> Project:
    return make_project(tmp, NO_MODEL, **beir)


def add_negatives(project: Project, margins: list[float | None], miner: str = "test-miner") -> list[int]:
    """One negative per margin, for train queries tr-dNN-0 in turn: the chunk of the next document, scored so that
    positive_score - score == margin (None: unscored). Returns their ids in insertion order."""
    ids = []
    with write(project.db):
        for i, margin in enumerate(margins):
            query, chunk = f"tr-d{i:02d}-0", f"d{(i + 1) % 40:02d}"
            score, positive = (None, None) if margin is None else (0.5, 0.5 + margin)
            cursor = project.db.execute(
                "INSERT INTO negatives (query_id, chunk_id, score, positive_score, miner) VALUES (?, ?, ?, ?, ?)",
                [query, chunk, score, positive, miner],
            )
            ids.append(int(cursor.lastrowid))
    return ids
