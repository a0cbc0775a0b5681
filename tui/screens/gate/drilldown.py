"""The gate's per-query drill-down as plain data: columns, sorting, and each arm's mark against the base.

Pure (no Textual), so sorting and marks are unit-tested without a terminal; the screen renders the cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

FIXED_COLUMNS = ("id", "query", "expected")
NOT_FOUND = "—"  # no relevant document in the arm's top 100
WIN, LOSS = "▲", "▼"
SHORT = (("chunking:", "ch:"), ("expansion", "exp"), ("+rerank", "+rr"))


class Outcome(Protocol):
    """The fields of engine.gate.results.QueryOutcome the drill-down reads."""

    id: str
    text: str
    titles: tuple[str, ...]
    expected: tuple[str, ...]
    ranks: dict[str, int | None]


@dataclass(frozen=True)
class Changes:
    """Per arm, the queries it wins and loses against the base at Recall@k (the report's own lists)."""

    wins: dict[str, frozenset[str]]
    losses: dict[str, frozenset[str]]

    @classmethod
    def from_arms(cls, arms: list[dict[str, Any]]) -> Changes:
        return cls({a["name"]: frozenset(a["wins"]) for a in arms}, {a["name"]: frozenset(a["losses"]) for a in arms})

    def mark(self, arm: str, query_id: str) -> str:
        if query_id in self.wins.get(arm, ()):
            return WIN
        if query_id in self.losses.get(arm, ()):
            return LOSS
        return ""

    def differs(self, query_id: str) -> bool:
        """Whether any arm wins or loses this query against the base: the rows worth reading first."""
        return any(query_id in ids for ids in (*self.wins.values(), *self.losses.values()))


def short_arm(name: str) -> str:
    """A column header narrow enough for nine arms side by side ("chunking:paragraph+rerank" → "ch:paragraph+rr")."""
    for long, short in SHORT:
        name = name.replace(long, short)
    return name


def rank_text(rank: int | None, mark: str = "") -> str:
    return (NOT_FOUND if rank is None else str(rank)) + (f" {mark}" if mark else "")


def expected_text(outcome: Outcome) -> str:
    """Titles of the expected documents (their ids where a title is empty)."""
    return " · ".join(title or doc for doc, title in zip(outcome.expected, outcome.titles, strict=True)) or NOT_FOUND


def columns(arm_names: list[str]) -> list[str]:
    return [*FIXED_COLUMNS, *arm_names]


def sort_key(outcome: Outcome, column: str) -> tuple[Any, ...]:
    """Text columns alphabetically, rank columns best first with 'not found' last; ties by query id."""
    if column == "id":
        return (outcome.id,)
    if column == "query":
        return (outcome.text.casefold(), outcome.id)
    if column == "expected":
        return (expected_text(outcome).casefold(), outcome.id)
    rank = outcome.ranks.get(column)
    return (rank is None, rank or 0, outcome.id)


def sorted_outcomes(outcomes: list[Any], column: str, reverse: bool = False) -> list[Any]:
    return sorted(outcomes, key=lambda o: sort_key(o, column), reverse=reverse)


def next_column(current: str, names: list[str]) -> str:
    order = columns(names)
    return order[(order.index(current) + 1) % len(order)] if current in order else order[0]
