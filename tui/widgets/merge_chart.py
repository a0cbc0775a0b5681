"""The merge sweep as a text chart: domain and general nDCG@10 as two lines over α (0 = the base, 1 = the tuned
run), on one zoomed y axis, with the recommended α (★) and the chosen one (✓) marked under the α axis.

Two lines over α read better in a terminal than a domain-against-general scatter: α runs left to right in order,
both scores share one scale, and the trade-off (domain rising, general falling) is the gap between the lines.
The layout is pure (rows of (text, kind) runs, like tui.widgets.gate_chart); every kind has its own glyph, so the
chart reads without colour.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from tui.widgets.gate_chart import Run, merge

DOMAIN, GENERAL, BOTH, AXIS, LABEL, MUTED, EMPTY, MARK = (
    "domain",
    "general",
    "both",
    "axis",
    "label",
    "muted",
    "",
    "mark",
)
GLYPHS = {DOMAIN: "●", GENERAL: "◆", BOTH: "◉"}
TRAILS = {DOMAIN: "·", GENERAL: "∙"}
Y_LABEL = 6  # "0.653┤"
MIN_PLOT_ROWS, MAX_PLOT_ROWS = 3, 14
MIN_WIDTH = 20


@dataclass(frozen=True)
class ChartPoint:
    alpha: float
    domain: float
    general: float | None

    @classmethod
    def from_json(cls, point: dict[str, Any]) -> ChartPoint:
        return cls(float(point["alpha"]), float(point["ndcg@10"]), point.get("general_ndcg@10"))


def scale(points: list[ChartPoint]) -> tuple[float, float]:
    """The y range: every value with a little room, at least 0.02 wide so noise does not look like a cliff."""
    values = [v for p in points for v in (p.domain, p.general) if v is not None and math.isfinite(v)]
    low, high = min(values), max(values)
    pad = max(0.01, (high - low) * 0.1)
    low, high = max(0.0, low - pad), min(1.0, high + pad)
    if high - low < 0.02:
        mid = (high + low) / 2
        low, high = mid - 0.01, mid + 0.01
    return low, high


def column(alpha: float, width: int) -> int:
    return round(min(1.0, max(0.0, alpha)) * (width - 1))


def row_of(value: float, rows: int, low: float, high: float) -> int:
    """The plot row holding `value`, 0 at the top."""
    share = (value - low) / ((high - low) or 1.0)
    return rows - 1 - min(rows - 1, max(0, round(share * (rows - 1))))


def series(points: list[ChartPoint], kind: str) -> list[tuple[int, float]]:
    """(alpha order index, value) pairs of one line; general points may be missing."""
    value = (lambda p: p.domain) if kind == DOMAIN else (lambda p: p.general)
    return [(i, v) for i, p in enumerate(points) if (v := value(p)) is not None and math.isfinite(v)]


def plot(points: list[ChartPoint], width: int, rows: int, low: float, high: float) -> list[list[Run]]:
    """The plot area: a trail between neighbouring points of each line, the points drawn over the trails."""
    grid: list[list[Run]] = [[(" ", EMPTY)] * width for _ in range(rows)]
    cols = [column(p.alpha, width) for p in points]
    for kind in (GENERAL, DOMAIN):  # the domain line is drawn last: it is what the run was trained for
        line = series(points, kind)
        for (i, a), (j, b) in itertools.pairwise(line):
            for c in range(cols[i] + 1, cols[j]):
                t = (c - cols[i]) / max(1, cols[j] - cols[i])
                grid[row_of(a + (b - a) * t, rows, low, high)][c] = (TRAILS[kind], kind)
    drawn: dict[tuple[int, int], str] = {}
    for kind in (GENERAL, DOMAIN):
        for i, value in series(points, kind):
            at = (row_of(value, rows, low, high), cols[i])
            drawn[at] = BOTH if at in drawn and drawn[at] != kind else kind
    for (r, c), kind in drawn.items():
        grid[r][c] = (GLYPHS[kind], kind)
    return [merge(row) for row in grid]


def alpha_axis(points: list[ChartPoint], width: int) -> list[Run]:
    """Each α's value under its column, where it fits beside its left neighbour's."""
    cells = [" "] * width
    end = -2
    for p in points:
        text = f"{p.alpha:g}"
        start = max(0, min(column(p.alpha, width) - len(text) // 2, width - len(text)))
        if start > end + 1:
            cells[start : start + len(text)] = list(text)
            end = start + len(text) - 1
    return [("".join(cells), MUTED)]


def marks(points: list[ChartPoint], width: int, recommended: float | None, chosen: float | None) -> list[Run]:
    """★ under the recommended α, ✓ under the chosen one (beside the ★ when they are the same α)."""
    cells: list[Run] = [(" ", EMPTY)] * width
    if recommended is not None:
        cells[column(recommended, width)] = ("★", MARK)
    if chosen is not None:
        c = column(chosen, width)
        if cells[c][0] == "★":
            c = c + 1 if c + 1 < width else c - 1
        cells[c] = ("✓", MARK)
    return merge(cells)


def chart(
    points: list[ChartPoint], width: int, height: int, recommended: float | None, chosen: float | None
) -> list[list[Run]]:
    """Every line at `width` × `height`: a legend, the plot with its y axis, the α axis and the marks row."""
    if not points:
        return []
    points = sorted(points, key=lambda p: p.alpha)
    plot_width = max(MIN_WIDTH, width - Y_LABEL - 3)
    rows = max(MIN_PLOT_ROWS, min(MAX_PLOT_ROWS, height - 4))
    low, high = scale(points)
    lines: list[list[Run]] = [legend(points, recommended, chosen)]
    for r, row in enumerate(plot(points, plot_width, rows, low, high)):
        value = high - (high - low) * r / max(1, rows - 1)
        label = f"{value:.3f}" if (rows - 1 - r) % 2 == 0 else ""  # every other row, from the bottom
        lines.append([(f"{label:>{Y_LABEL - 1}}" + ("┤" if label else "│"), AXIS), *row])
    lines.append([(" " * (Y_LABEL - 1) + "└" + "─" * plot_width, AXIS)])
    lines.append([(" " * Y_LABEL, EMPTY), *alpha_axis(points, plot_width), (" α", LABEL)])
    if recommended is not None or chosen is not None:
        lines.append([(" " * Y_LABEL, EMPTY), *marks(points, plot_width, recommended, chosen)])
    return lines


def legend(points: list[ChartPoint], recommended: float | None, chosen: float | None) -> list[Run]:
    runs: list[Run] = [("nDCG@10  ", LABEL), (GLYPHS[DOMAIN], DOMAIN), (" domain (held-out)", MUTED)]
    if any(p.general is not None for p in points):
        runs += [("  ", EMPTY), (GLYPHS[GENERAL], GENERAL), (" general", MUTED)]
    else:
        runs.append(("  (no general queries)", MUTED))
    if recommended is not None:
        runs += [("  ", EMPTY), ("★", MARK), (" recommended", MUTED)]
    if chosen is not None:
        runs += [("  ", EMPTY), ("✓", MARK), (" chosen", MUTED)]
    return runs


CHART_STYLES = {
    DOMAIN: "$primary bold",
    GENERAL: "$warning",
    BOTH: "$success bold",
    AXIS: "$text-muted",
    LABEL: "bold",
    MUTED: "$text-muted",
    MARK: "$success bold",
    EMPTY: "",
}


class MergeChart(Widget):
    """Domain and general nDCG@10 over α for the newest merge sweep, drawn for the widget's size (see chart())."""

    DEFAULT_CSS = "MergeChart { height: 1fr; max-height: 20; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: list[ChartPoint] = []
        self.recommended: float | None = None
        self.chosen: float | None = None

    def show(self, sweep: dict[str, Any] | None) -> None:
        self.points = [ChartPoint.from_json(p) for p in sweep["points"]] if sweep else []
        self.recommended = sweep.get("recommended") if sweep else None
        self.chosen = sweep.get("chosen") if sweep else None
        self.refresh(layout=True)

    def lines(self, width: int, height: int) -> list[list[Run]]:
        return chart(self.points, width, height, self.recommended, self.chosen)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width, MAX_PLOT_ROWS + 4))

    def render(self) -> Content:
        lines = self.lines(self.content_size.width, self.content_size.height)
        return Content("\n").join(
            Content.assemble(*((text, CHART_STYLES[kind]) for text, kind in line)) for line in lines
        )
