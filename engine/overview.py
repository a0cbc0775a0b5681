"""Project-wide reads for a front end that never touches the store itself (the TUI may not import engine.store):
the counts behind `embtune status`, the latest imports, and a stage's last finished result."""

from __future__ import annotations

from typing import Any

from engine.project import Project
from engine.store import queries, runs


def counts(project: Project) -> dict[str, Any]:
    """Rows per table and split: the same figures as `embtune status --json`."""
    return queries.status_counts(project.db)


def recent_imports(project: Project, limit: int) -> list[dict[str, Any]]:
    """The newest imports first, as stored (counts_json holds what each added)."""
    return queries.imports(project.db, limit)


def last_summary(project: Project, kind: str) -> dict[str, Any] | None:
    """The result of the newest finished run of `kind` ("mine", "gate", …); None before the first."""
    latest = runs.latest_result(project.db, kind)
    return latest[1] if latest else None
