"""The arms chart and the drill-down's rules on plain data: bars, whiskers, markers, clipping, widths, sorting."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.tui.charts import plain
from tui.screens.gate.drilldown import LOSS, WIN, Changes, next_column, rank_text, short_arm, sorted_outcomes
from tui.widgets.gate_chart import (
    BAR,
    FINETUNE,
    STOP,
    WHISKER,
    ChartArm,
    axis,
    bar_length,
    chart,
    layout,
    position,
    track,
)

THRESHOLDS = {FINETUNE: 0.7, STOP: 0.8}


def cells(arm: ChartArm, width: int = 20, thresholds: dict[str, float] | None = None) -> list[tuple[str, str]]:
    """The track one cell at a time (text, kind)."""
    runs = track(arm, width, THRESHOLDS if thresholds is None else thresholds)
    return [(char, kind) for text, kind in runs for char in text]


def test_bar_length_is_the_value_on_a_0_to_1_track() -> None:
    assert [bar_length(v, 20) for v in (0.0, 0.25, 0.5, 0.833, 1.0)] == [0, 5, 10, 17, 20]
    row = cells(ChartArm("base", 0.5, 0.5, 0.5, 0, 0), thresholds={})
    assert [kind for _, kind in row[:10]] == [BAR] * 10
    assert row[10] == ("┤", WHISKER)  # a zero-width interval still shows its end
    assert all(char == " " for char, _ in row[11:])


def test_whiskers_mark_the_interval() -> None:
    row = "".join(char for char, _ in cells(ChartArm("a", 0.3, 0.2, 0.5, 0, 0), thresholds={}))
    assert row == "████├█────┤         "
    assert (row.index("├"), row.index("┤")) == (position(0.2, 20), position(0.5, 20)) == (4, 10)


def test_thresholds_are_markers_where_the_bar_does_not_reach() -> None:
    low = "".join(char for char, _ in cells(ChartArm("a", 0.2, 0.1, 0.3, 0, 0)))
    assert (low[14], low[16]) == ("┊", "│")  # fine-tune 0.70, stop 0.80 on 20 cells
    across = cells(ChartArm("a", 0.6, 0.5, 0.9, 0, 0))
    assert across[14] == ("┼", FINETUNE)  # a marker inside the interval crosses its whisker
    assert across[16] == ("┼", STOP)
    assert "".join(c for c, _ in across) == "██████████├█──┼─┼─┤ "
    high = cells(ChartArm("a", 0.95, 0.9, 1.0, 0, 0))
    assert high[14] == high[16] == ("█", BAR)  # passed: the bar covers them


@pytest.mark.parametrize(("value", "low", "high"), [(1.2, 0.9, 1.5), (-0.1, -0.3, 0.05)])
def test_values_outside_0_1_are_clipped(value: float, low: float, high: float) -> None:
    row = cells(ChartArm("a", value, low, high, 0, 0), thresholds={})
    assert len(row) == 20
    text = "".join(c for c, _ in row)
    if value > 1:
        assert text == "██████████████████├┤"
    else:
        assert text.startswith("├")
        assert "█" not in text
    line = plain(chart([ChartArm("a", value, low, high, 0, 0)], 80, THRESHOLDS, 5)[1])
    assert (" 1.000" if value > 1 else " 0.000") in line


def test_chart_scales_to_the_width_and_drops_the_interval_figures_when_narrow() -> None:
    arms = [
        ChartArm("base", 0.5, 0.3, 0.7, 0, 0),
        ChartArm("rerank", 0.9, 0.8, 1.0, 4, 1, "project.yaml reranker: /models/ce"),
    ]
    wide, narrow = chart(arms, 116, THRESHOLDS, 5), chart(arms, 76, THRESHOLDS, 5)
    assert layout(arms, 116).track > layout(arms, 76).track >= 10
    for lines, width in ((wide, 116), (narrow, 76)):
        assert all(len(plain(line)) <= width for line in lines)
        assert len(lines) == 1 + len(arms) + 1 + 1  # legend, arms, axis, re-ranker legend
    assert "[0.30–0.70]" in plain(wide[1])
    assert "[0.30–0.70]" not in plain(narrow[1])
    rerank = plain(narrow[2])
    assert rerank.startswith("rerank ")
    assert "+4  −1 ↻A" in rerank  # wins/losses vs base and which re-ranker
    assert plain(narrow[-1]) == "↻A re-ranker: project.yaml reranker: /models/ce"
    assert "Recall@5" in plain(wide[0])
    assert "fine-tune 0.70" in plain(wide[0])
    assert "stop 0.80" in plain(wide[0])


def test_axis_labels_the_ends_and_the_thresholds_where_they_fit() -> None:
    assert plain(axis(60, THRESHOLDS)) == "0" + " " * 41 + "0.70" + " " * 2 + "0.80" + " " * 7 + "1"
    assert plain(axis(40, THRESHOLDS)) == "0" + " " * 27 + "0.70" + " " * 7 + "1"  # 0.80 would touch 0.70
    assert plain(axis(12, THRESHOLDS)) == "0          1"  # no room: the legend line names both


# --- drill-down rules ---------------------------------------------------------------------------------------


@dataclass
class Q:
    id: str
    text: str
    ranks: dict[str, int | None]
    expected: tuple[str, ...] = ("d1",)
    titles: tuple[str, ...] = ("Doc",)


def test_rank_columns_sort_best_first_with_not_found_last() -> None:
    rows = [Q("q1", "b", {"base": None}), Q("q2", "a", {"base": 3}), Q("q3", "C", {"base": 1})]
    assert [q.id for q in sorted_outcomes(rows, "base")] == ["q3", "q2", "q1"]
    assert [q.id for q in sorted_outcomes(rows, "base", reverse=True)] == ["q1", "q2", "q3"]
    assert [q.id for q in sorted_outcomes(rows, "query")] == ["q2", "q1", "q3"]  # case-insensitive
    assert next_column("id", ["base", "hybrid"]) == "query"
    assert next_column("hybrid", ["base", "hybrid"]) == "id"


def test_marks_follow_the_reports_wins_and_losses() -> None:
    changes = Changes.from_arms(
        [{"name": "base", "wins": [], "losses": []}, {"name": "hybrid", "wins": ["q1"], "losses": ["q2"]}]
    )
    assert (changes.mark("hybrid", "q1"), changes.mark("hybrid", "q2"), changes.mark("hybrid", "q3")) == (WIN, LOSS, "")
    assert changes.differs("q1")
    assert not changes.differs("q3")
    assert rank_text(None) == "—"
    assert rank_text(4, WIN) == "4 ▲"
    assert short_arm("chunking:paragraph+rerank") == "ch:paragraph+rr"
    assert short_arm("expansion+rerank") == "exp+rr"
