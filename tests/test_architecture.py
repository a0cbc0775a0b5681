"""Boundaries from ARCHITECTURE.md, checked: engine never imports textual; startup paths never import torch;
SQL lives in engine/store only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "sentence_transformers", "transformers", "lancedb", "textual")
ENGINE_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for p in (ROOT / "engine").rglob("*.py")
    if p.name != "__init__.py"
)


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_engine_module_imports_nothing_heavy(module: str) -> None:
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()} at import time"


SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE FROM|CREATE TABLE)\b")


def test_sql_is_written_only_in_engine_store() -> None:
    offenders = []
    for path in [*ROOT.joinpath("engine").rglob("*.py"), *ROOT.joinpath("tui").rglob("*.py")]:
        if "store" in path.relative_to(ROOT).parts:
            continue
        if SQL.search(path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
