"""Boundaries from docs/architecture.md, checked: the import-linter contracts in pyproject.toml hold; no import
circle inside engine/; every engine module imports without textual and without the model libraries; SQL is written
only in engine/store (bench/ included)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "sentence_transformers", "transformers", "lancedb", "textual")
ENGINE_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in ROOT.joinpath("engine").rglob("*.py")
)


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_engine_module_imports_nothing_heavy(module: str) -> None:
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()} at import time"


def test_import_contracts_hold() -> None:
    """pyproject.toml's [tool.importlinter] contracts: engine headless, tui without SQL, store at the bottom..."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def engine_import_graph() -> dict[str, set[str]]:
    """module -> engine modules it imports (at module level or inside functions), from grimp (import-linter's)."""
    import grimp

    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("engine")
    return {
        m: {d for d in graph.find_modules_directly_imported_by(m) if d.startswith("engine.")} for m in graph.modules
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path [a, b, …, a], or None. Iterative DFS with colours."""
    colour: dict[str, int] = {}  # 1 on the stack, 2 done
    for start in sorted(edges):
        if colour.get(start):
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(edges.get(start, ())))]
        path = [start]
        colour[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if colour.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not colour.get(nxt):
                colour[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(edges.get(nxt, ()))))
    return None


def test_find_cycle_sees_a_circle_and_a_clean_graph() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_inside_engine() -> None:
    # Package __init__ files are empty, so a package never imports its modules: module arrows are the whole story.
    assert find_cycle(engine_import_graph()) is None


SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE FROM|CREATE TABLE)\b")


def test_sql_is_written_only_in_engine_store() -> None:
    offenders = []
    for folder in ("engine", "tui", "bench"):
        for path in ROOT.joinpath(folder).rglob("*.py"):
            if "store" in path.relative_to(ROOT).parts:
                continue
            text = path.read_text()
            if SQL.search(text) or re.search(r"^\s*(import sqlite3|import sqlite_utils|from sqlite)", text, re.M):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_engine_package_init_files_are_empty() -> None:
    """Importing any engine module stays light: a package's __init__ holds a docstring at most."""
    busy = []
    for path in ROOT.joinpath("engine").rglob("__init__.py"):
        body = ast.parse(path.read_text()).body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        if body:
            busy.append(str(path.relative_to(ROOT)))
    assert busy == []
