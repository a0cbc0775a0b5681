"""The training curves as text: a multi-row loss chart with a y axis (a second run overlaid as • marks), and
one-row learning-rate and eval-metric strips per run under it, all on the same step axis.

The layout is pure (rows are lists of (text, kind) runs like tui.widgets.gate_chart); TrainChart maps kinds to
theme colours and the chart still reads without colour (the curve is drawn with block glyphs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from tui.widgets.gate_chart import Run, merge

CURVE, AXIS, LABEL, MUTED, EMPTY, EVAL = "curve", "axis", "label", "muted", "empty", "eval"
OVERLAY = "overlay"
BLOCKS = " ▁▂▃▄▅▆▇█"
Y_LABEL = 9  # cells for the y-axis figures
RIGHT = 20  # cells right of the plot for the strips' latest values (" 0.5100 ★ 0.5200@10")


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


@dataclass
class Curves:
    """One run's curves for the chart: `role` is engine.train.view.eval_role ('select', 'watch' or '')."""

    run_id: int | None = None
    role: str = "select"
    series: dict[str, dict[int, float]] = field(default_factory=lambda: {"loss": {}, "lr": {}, "eval": {}})

    def add(self, rows: Sequence[tuple[str, str, int, float]]) -> None:
        for key, split, step, value in rows:
            name = {"loss": "loss", "lr": "lr"}.get(key) if split == "train" else ("eval" if key == "ndcg@10" else None)
            if name:
                self.series[name][step] = value

    def points(self, name: str) -> list[tuple[int, float]]:
        return sorted(self.series[name].items())


def eval_label(role: str) -> str:
    """What the eval strip is: the dev slice that chooses the kept step, or held-out queries only watched."""
    return "watched" if role == "watch" else "dev nDCG"


def best_eval(curves: Curves) -> tuple[int, float] | None:
    """The step the dev slice would keep (★): only when it chooses, and never the base model's step 0."""
    trained = [(s, v) for s, v in curves.points("eval") if s > 0]
    if curves.role != "select" or not trained:
        return None
    return max(trained, key=lambda sv: (sv[1], -sv[0]))


def chart(primary: Curves, overlay: Curves | None, width: int, height: int, max_steps: int | None) -> list[list[Run]]:
    """Every line: the loss area chart with its y axis (an overlaid run as • marks), the step axis, then one lr and
    one eval strip per run."""
    plot = max(10, width - Y_LABEL - 1 - RIGHT)
    both = [c for c in (primary, overlay) if c is not None]
    last = max([max_steps or 0, *(s for c in both for name in ("loss", "eval") for s, _ in c.points(name)), 1])
    loss = primary.points("loss")
    if not loss:
        return [[("loss: no points yet", MUTED)]]
    values = fill_gaps(bucket(loss, plot, 0, last))
    other = fill_gaps(bucket(overlay.points("loss"), plot, 0, last)) if overlay else [None] * plot
    known = [v for v in (*values, *other) if v is not None]
    low, high = min(0.0, min(known)), max(known)
    lines: list[list[Run]] = [[(f"{'loss':>{Y_LABEL}} ", LABEL), *legend(primary, overlay)]]
    marks = mark_rows(other, height, low, high)
    for i, row in enumerate(area_rows(values, height, low, high)):
        label = fmt(high) if i == 0 else (fmt(low) if i == height - 1 else "")
        cells = [cell(c, m) for c, m in zip(row, marks[i], strict=True)]
        lines.append([(f"{label:>{Y_LABEL}}┤", AXIS), *merge(cells)])
    axis_text = f"step 0{'':<{max(0, plot - 6 - len(str(last)))}}{last}"
    lines.append([(" " * Y_LABEL + "└", AXIS), (axis_text[:plot], MUTED)])
    lines += strips(primary, plot, last, overlay is not None, CURVE)
    if overlay is not None:
        lines += strips(overlay, plot, last, True, OVERLAY)
    return lines


def cell(area: str, mark: str) -> Run:
    """An overlaid run's mark wins over the area beneath it."""
    if mark != " ":
        return (mark, OVERLAY)
    return (area, CURVE if area != " " else EMPTY)


def legend(primary: Curves, overlay: Curves | None) -> list[Run]:
    loss = primary.points("loss")
    if overlay is None:
        return [(f"last {fmt(loss[-1][1])}", MUTED)]
    other = overlay.points("loss")
    return [
        (f"█ run {primary.run_id} last {fmt(loss[-1][1])}", CURVE),
        ("  ", EMPTY),
        (f"• run {overlay.run_id} " + (f"last {fmt(other[-1][1])}" if other else "no loss yet"), OVERLAY),
    ]


def strips(curves: Curves, plot: int, last: int, tagged: bool, kind: str) -> list[list[Run]]:
    """The run's lr strip and its eval strip (with the run id when two are drawn): '★ best' only where the dev
    slice chooses the kept step."""
    tag = f" {curves.run_id}" if tagged else ""
    lines: list[list[Run]] = []
    lr = curves.points("lr")
    if lr:
        values = fill_gaps(bucket(lr, plot, 0, last))
        lines.append([(f"{'lr' + tag:>{Y_LABEL}} ", LABEL), (strip(values), kind), (f" {fmt(lr[-1][1])}", MUTED)])
    evals = curves.points("eval")
    if evals:
        best = best_eval(curves)
        note = f" ★ {best[1]:.4f}@{best[0]}" if best else ""
        name = (eval_label(curves.role) if not tagged else eval_label(curves.role).split()[-1]) + tag
        lines.append(
            [
                (f"{name[:Y_LABEL]:>{Y_LABEL}} ", LABEL),
                (strip(bucket(evals, plot, 0, last)), EVAL),
                (f" {evals[-1][1]:.4f}{note}", MUTED),
            ]
        )
    return lines


def mark_rows(values: list[float | None], height: int, low: float, high: float) -> list[str]:
    """An overlaid curve as one • per column, at the row its value reaches (top row first)."""
    span = (high - low) or 1.0
    rows = [[" "] * len(values) for _ in range(height)]
    for col, value in enumerate(values):
        if value is not None:
            level = min(height - 1, max(0, math.ceil((value - low) / span * height) - 1))
            rows[height - 1 - level][col] = "•"
    return ["".join(r) for r in rows]


CHART_STYLES = {
    CURVE: "$primary",
    OVERLAY: "bold $warning",
    EVAL: "$success",
    AXIS: "$text-muted",
    LABEL: "bold",
    MUTED: "$text-muted",
    EMPTY: "",
}


class TrainChart(Widget):
    """Loss (with y axis), learning rate and the eval metric over steps for one run, another run overlaid."""

    DEFAULT_CSS = "TrainChart { height: auto; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.primary = Curves()
        self.overlay: Curves | None = None
        self.max_steps: int | None = None
        self.plot_rows = 8

    def reset(self, run_id: int | None = None, role: str = "select") -> None:
        self.primary = Curves(run_id, role)
        self.refresh(layout=True)

    def add(self, rows: list[tuple[str, str, int, float]]) -> None:
        self.primary.add(rows)
        self.refresh(layout=True)

    def set_role(self, role: str) -> None:
        if role != self.primary.role:
            self.primary.role = role
            self.refresh(layout=True)

    def set_overlay(self, curves: Curves | None) -> None:
        self.overlay = curves
        self.refresh(layout=True)

    def set_rows(self, rows: int) -> None:
        if rows != self.plot_rows:
            self.plot_rows = rows
            self.refresh(layout=True)

    def points(self, name: str) -> list[tuple[int, float]]:
        return self.primary.points("eval" if name == "dev" else name)

    def lines(self, width: int) -> list[list[Run]]:
        return chart(self.primary, self.overlay, width, self.plot_rows, self.max_steps)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Content:
        width = self.content_size.width
        return Content("\n").join(  # one row per line, never wrapped: the height counts lines
            Content.assemble(*((text, CHART_STYLES[kind]) for text, kind in line)).truncate(width)
            for line in self.lines(width)
        )
