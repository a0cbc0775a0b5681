"""The training curves as text: a multi-row loss chart with a y axis, and one-row learning-rate and dev-metric
strips under it, all on the same step axis.

The layout is pure (rows are lists of (text, kind) runs like tui.widgets.gate_chart); TrainChart maps kinds to
theme colours and the chart still reads without colour (the curve is drawn with block glyphs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from tui.widgets.gate_chart import Run, merge

CURVE, AXIS, LABEL, MUTED, EMPTY, EVAL = "curve", "axis", "label", "muted", "empty", "eval"
BLOCKS = " ▁▂▃▄▅▆▇█"
Y_LABEL = 9  # cells for the y-axis figures
RIGHT = 26  # cells right of the plot for the strips' latest values


def bucket(points: Sequence[tuple[int, float]], width: int, first: int, last: int) -> list[float | None]:
    """The mean value per column of a `width`-cell step axis from `first` to `last` (None: no point there)."""
    sums = [0.0] * width
    counts = [0] * width
    span = max(1, last - first)
    for step, value in points:
        if not math.isfinite(value):
            continue
        col = min(width - 1, max(0, int((step - first) / span * (width - 1) + 0.5)))
        sums[col] += value
        counts[col] += 1
    return [s / n if n else None for s, n in zip(sums, counts, strict=True)]


def fill_gaps(values: list[float | None]) -> list[float | None]:
    """Carry the last value over empty columns between points, so a sparse curve stays a curve."""
    out: list[float | None] = []
    last: float | None = None
    seen_after = [False] * len(values)
    later = False
    for i in range(len(values) - 1, -1, -1):
        seen_after[i] = later
        later = later or values[i] is not None
    for i, value in enumerate(values):
        if value is not None:
            last = value
            out.append(value)
        else:
            out.append(last if last is not None and seen_after[i] else None)
    return out


def area_rows(values: list[float | None], height: int, low: float, high: float) -> list[str]:
    """`height` text rows drawing each column as a bar of eighth-blocks, top row first."""
    span = (high - low) or 1.0
    rows = [[" "] * len(values) for _ in range(height)]
    for col, value in enumerate(values):
        if value is None:
            continue
        eighths = round((value - low) / span * height * 8)
        eighths = max(1, min(height * 8, eighths))
        for row in range(height):
            level = eighths - row * 8
            glyph = BLOCKS[8] if level >= 8 else BLOCKS[max(0, level)]
            rows[height - 1 - row][col] = glyph
    return ["".join(r) for r in rows]


def strip(values: list[float | None]) -> str:
    """A one-row sparkline scaled to its own range."""
    known = [v for v in values if v is not None]
    if not known:
        return " " * len(values)
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    return "".join(" " if v is None else BLOCKS[1 + round((v - low) / span * 7)] for v in values)


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.2e}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4g}"


def chart(
    loss: Sequence[tuple[int, float]],
    lr: Sequence[tuple[int, float]],
    dev: Sequence[tuple[int, float]],
    width: int,
    height: int,
    max_steps: int | None,
) -> list[list[Run]]:
    """Every line: the loss area chart with its y axis, the step axis, then the lr and dev nDCG@10 strips."""
    plot = max(10, width - Y_LABEL - 1 - RIGHT)
    last = max([max_steps or 0, *(s for s, _ in loss), *(s for s, _ in dev), 1])
    first = 0
    if not loss:
        return [[("loss: no points yet", MUTED)]]
    values = fill_gaps(bucket(loss, plot, first, last))
    known = [v for v in values if v is not None]
    low, high = min(0.0, min(known)), max(known)
    lines: list[list[Run]] = [[(f"{'loss':>{Y_LABEL}} ", LABEL), (f"last {fmt(loss[-1][1])}", MUTED)]]
    for i, row in enumerate(area_rows(values, height, low, high)):
        label = fmt(high) if i == 0 else (fmt(low) if i == height - 1 else "")
        lines.append([(f"{label:>{Y_LABEL}}┤", AXIS), *merge([(c, CURVE if c != " " else EMPTY) for c in row])])
    axis_text = f"step 0{'':<{max(0, plot - 6 - len(str(last)))}}{last}"
    lines.append([(" " * Y_LABEL + "└", AXIS), (axis_text[:plot], MUTED)])
    if lr:
        lr_values = fill_gaps(bucket(lr, plot, first, last))
        lines.append([(f"{'lr':>{Y_LABEL}} ", LABEL), (strip(lr_values), CURVE), (f" {fmt(lr[-1][1])}", MUTED)])
    if dev:
        dev_values = bucket(dev, plot, first, last)
        best = max(v for _, v in dev)
        lines.append(
            [
                (f"{'dev nDCG':>{Y_LABEL}} ", LABEL),
                (strip(dev_values), EVAL),
                (f" {dev[-1][1]:.4f} (best {best:.4f})", MUTED),
            ]
        )
    return lines


CHART_STYLES = {
    CURVE: "$primary",
    EVAL: "$success",
    AXIS: "$text-muted",
    LABEL: "bold",
    MUTED: "$text-muted",
    EMPTY: "",
}


class TrainChart(Widget):
    """Loss (with y axis), learning rate and dev nDCG@10 over steps, drawn for the widget's width."""

    DEFAULT_CSS = "TrainChart { height: auto; }"
    PLOT_ROWS = 8

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series: dict[str, dict[int, float]] = {"loss": {}, "lr": {}, "dev": {}}
        self.max_steps: int | None = None

    def reset(self) -> None:
        self.series = {"loss": {}, "lr": {}, "dev": {}}
        self.refresh(layout=True)

    def add(self, rows: list[tuple[str, str, int, float]]) -> None:
        for key, split, step, value in rows:
            name = {"loss": "loss", "lr": "lr"}.get(key) if split == "train" else ("dev" if key == "ndcg@10" else None)
            if name:
                self.series[name][step] = value
        self.refresh(layout=True)

    def points(self, name: str) -> list[tuple[int, float]]:
        return sorted(self.series[name].items())

    def lines(self, width: int) -> list[list[Run]]:
        return chart(self.points("loss"), self.points("lr"), self.points("dev"), width, self.PLOT_ROWS, self.max_steps)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Content:
        return Content("\n").join(
            Content.assemble(*((text, CHART_STYLES[kind]) for text, kind in line))
            for line in self.lines(self.content_size.width)
        )
