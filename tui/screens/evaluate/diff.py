"""The Evaluate screen's tables as plain data: compare cells (absolute or deltas, best in bold) and the per-query
diff (first relevant rank before → after), with sorting and filters. Pure, so it is tested without a terminal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config import EVAL_METRICS
from engine.evaluate.verdict import IMPROVED, REGRESSED, UNCHANGED, rank_change

GLYPHS = {IMPROVED: "▲", REGRESSED: "▼", UNCHANGED: ""}
NOT_FOUND = "—"
QUERY_COLUMNS = ("change", "id", "query", "before", "after")
FILTERS = ("all", IMPROVED, REGRESSED, "changed")


@dataclass(frozen=True)
class Cell:
    text: str
    bold: bool = False


def compare_cells(
    models: dict[str, dict[str, Any]], baseline: str, deltas: bool, compared: set[str]
) -> dict[str, dict[str, Cell]]:
    """Per measured model and metric, the value (or its difference from the baseline's); the best value among the
    compared models is bold. The baseline row always shows absolute values."""
    best = {key: max((m[key] for name, m in models.items() if name in compared), default=None) for key in EVAL_METRICS}
    base = models.get(baseline)
    out: dict[str, dict[str, Cell]] = {}
    for name, m in models.items():
        row = {}
        for key in EVAL_METRICS:
            value = m[key]
            text = f"{value - base[key]:+.4f}" if deltas and base is not None and name != baseline else f"{value:.4f}"
            row[key] = Cell(text, name in compared and best[key] is not None and value >= best[key] - 1e-12)
        out[name] = row
    return out


@dataclass(frozen=True)
class DiffRow:
    id: str
    text: str
    before: int | None
    after: int | None
    change: str

    @property
    def shift(self) -> int:
        """How many places the first relevant document moved up (not found counts as rank 101)."""
        return (self.before or 101) - (self.after or 101)


def diff_rows(queries: list[Any], baseline: str, model: str, show: str = "all") -> list[DiffRow]:
    rows = [
        DiffRow(
            q.id,
            q.text,
            q.ranks.get(baseline),
            q.ranks.get(model),
            rank_change(q.ranks.get(baseline), q.ranks.get(model)),
        )
        for q in queries
        if baseline in q.ranks and model in q.ranks
    ]
    if show == "changed":
        return [r for r in rows if r.change != UNCHANGED]
    return rows if show == "all" else [r for r in rows if r.change == show]


def counts(rows: list[DiffRow]) -> dict[str, int]:
    out = {IMPROVED: 0, REGRESSED: 0, UNCHANGED: 0}
    for row in rows:
        out[row.change] += 1
    return out


def _rank_key(rank: int | None) -> tuple[bool, int]:
    return (rank is None, rank or 0)


def sort_rows(rows: list[DiffRow], column: str, reverse: bool = False) -> list[DiffRow]:
    """change: biggest improvement first; ranks best first with not-found last; ties by query id."""
    keys = {
        "change": lambda r: (-r.shift, r.id),
        "id": lambda r: (r.id,),
        "query": lambda r: (r.text.casefold(), r.id),
        "before": lambda r: (*_rank_key(r.before), r.id),
        "after": lambda r: (*_rank_key(r.after), r.id),
    }
    return sorted(rows, key=keys[column], reverse=reverse)


def rank_text(rank: int | None) -> str:
    return NOT_FOUND if rank is None else str(rank)


def change_text(row: DiffRow) -> str:
    return f"{GLYPHS[row.change]} {row.shift:+d}" if row.change != UNCHANGED else "="


def next_in(values: tuple[str, ...], current: str) -> str:
    return values[(values.index(current) + 1) % len(values)] if current in values else values[0]
