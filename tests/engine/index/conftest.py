"""Fixtures of the index tests: a small project on the tiny embedder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.project import Project
from tests.projects import make_project


@pytest.fixture
def project(tmp_path: Path, tiny_embedder_path: Path) -> Iterator[Project]:
    p = make_project(tmp_path, tiny_embedder_path)
    yield p
    p.close()
