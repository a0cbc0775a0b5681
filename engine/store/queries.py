"""Read-only queries the CLI and the TUI show."""

from __future__ import annotations

from typing import Any

from engine.store._sqlite_utils import Database
from engine.store.schema import SPLITS

COUNTED = ("documents", "chunks", "pairs", "negatives", "runs")


def _count(db: Database, sql: str, params: list[Any] | None = None) -> int:
    return int(db.execute(sql, params or []).fetchone()[0])


def _by(db: Database, table: str, column: str) -> dict[str, int]:
    return {str(k): int(n) for k, n in db.execute(f"SELECT {column}, count(*) FROM {table} GROUP BY {column}")}


def status_counts(db: Database) -> dict[str, Any]:
    """Counts per table and split: the contract of `embtune status --json`."""
    counts: dict[str, Any] = {t: _count(db, f"SELECT count(*) FROM {t}") for t in COUNTED}
    queries = _by(db, "queries", "split")
    counts["queries"] = {split: queries.get(split, 0) for split in SPLITS}
    pairs = _by(db, "pairs", "split")
    counts["pairs_by_split"] = {split: pairs.get(split, 0) for split in SPLITS}
    counts["chunks_by_strategy"] = _by(db, "chunks", "strategy")
    counts["reviewed"] = _by(db, "pairs", "label")
    counts["texts"] = _count(db, "SELECT count(*) FROM texts")
    # What the gate and evaluation use: queries with a judgment review has not rejected.
    judged_sql = "SELECT count(DISTINCT query_id) FROM pairs WHERE split = ? AND label != 'rejected'"
    counts["judged_queries"] = {split: _count(db, judged_sql, [split]) for split in SPLITS}
    any_sql = "SELECT count(DISTINCT query_id) FROM pairs WHERE split = ?"
    counts["queries_excluded_by_review"] = {
        split: _count(db, any_sql, [split]) - counts["judged_queries"][split] for split in SPLITS
    }
    return counts


def imports(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM imports ORDER BY id DESC LIMIT ?", [limit]))
