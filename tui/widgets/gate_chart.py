"""The gate's arms as a text chart: one row per arm, a Recall@k bar on a 0–1 track, the 95% interval as
├──┤ whiskers and the fine-tune and stop thresholds as markers.

The layout is pure (rows are lists of (text, kind) runs, tested without a terminal); ArmChart maps each kind to
a theme colour, and every kind also has its own glyph, so the chart reads without colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from engine.gate.results import GateResult

Run = tuple[str, str]  # (text, kind)
BAR, WHISKER, EMPTY, LABEL, MUTED = "bar", "whisker", "empty", "label", "muted"
FINETUNE, STOP = "finetune", "stop"  # threshold kinds, also the keys of `thresholds`
MARKS = {FINETUNE: "┊", STOP: "│"}
NAME_MAX = 26
MIN_TRACK = 10
ROOM_FOR_EXTRAS = 40  # the interval's figures appear only if the track keeps this many cells


@dataclass(frozen=True)
class ChartArm:
    name: str
    value: float  # Recall@k
    low: float  # 95% interval
    high: float
    wins: int
    losses: int
    reranker: str | None = None

    @classmethod
    def from_report(cls, arm: dict[str, Any], k: int) -> ChartArm:
        low, high = arm[f"recall@{k}_ci"]
        return cls(
            arm["name"], arm[f"recall@{k}"], low, high, len(arm["wins"]), len(arm["losses"]), arm.get("reranker")
        )


@dataclass(frozen=True)
class Layout:
    name: int
    track: int
    interval: bool
    reranker: bool


def clip(x: float) -> float:
    return 0.0 if math.isnan(x) else min(1.0, max(0.0, x))


def position(x: float, width: int) -> int:
    """The cell holding x on a 0–1 track of `width` cells."""
    return min(width - 1, int(clip(x) * width))


def bar_length(value: float, width: int) -> int:
    return round(clip(value) * width)


def track(arm: ChartArm, width: int, thresholds: dict[str, float]) -> list[Run]:
    """The arm's track: bar, then whiskers over it, markers where nothing else is drawn."""
    cells: list[Run] = [(" ", EMPTY)] * width
    for kind, at in thresholds.items():
        cells[position(at, width)] = (MARKS[kind], kind)
    low, high = position(arm.low, width), position(arm.high, width)
    for i in range(low + 1, high):
        kind = cells[i][1]
        cells[i] = ("┼", kind) if kind in MARKS else ("─", WHISKER)
    for i in range(bar_length(arm.value, width)):
        cells[i] = ("█", BAR)
    cells[low], cells[high] = ("├", WHISKER), ("┤", WHISKER)  # the ends stay visible, even inside the bar
    return merge(cells)


def merge(cells: list[Run]) -> list[Run]:
    """Adjacent cells of one kind as one run."""
    out: list[Run] = []
    for text, kind in cells:
        if out and out[-1][1] == kind:
            out[-1] = (out[-1][0] + text, kind)
        else:
            out.append((text, kind))
    return out


def layout(arms: list[ChartArm], width: int) -> Layout:
    name = min(NAME_MAX, max((len(a.name) for a in arms), default=4))
    reranker = 3 if any(a.reranker for a in arms) else 0
    fixed = name + 1 + 6 + 8 + reranker + 1  # name and gap, value, wins/losses, re-ranker tag, a spare cell
    interval = 12
    if width - fixed - interval >= ROOM_FOR_EXTRAS:
        return Layout(name, width - fixed - interval, True, bool(reranker))
    return Layout(name, max(MIN_TRACK, width - fixed), False, bool(reranker))


def reranker_tags(arms: list[ChartArm]) -> dict[str, str]:
    """A letter per distinct re-ranker, so a row names it in three cells and a legend line spells it out."""
    distinct = list(dict.fromkeys(a.reranker for a in arms if a.reranker))
    return {r: chr(ord("A") + i) for i, r in enumerate(distinct)}


def chart(arms: list[ChartArm], width: int, thresholds: dict[str, float], k: int) -> list[list[Run]]:
    """Every line of the chart at `width` columns: a legend, one row per arm, an axis, the re-rankers."""
    shape = layout(arms, width)
    tags = reranker_tags(arms)
    lines = [_legend(thresholds, k)]
    for arm in arms:
        row: list[Run] = [(_fit(arm.name, shape.name) + " ", LABEL), *track(arm, shape.track, thresholds)]
        row.append((f" {clip(arm.value):5.3f}", LABEL))
        if shape.interval:
            row.append((f" [{clip(arm.low):.2f}–{clip(arm.high):.2f}]", MUTED))
        row.append((f" {'+' + str(arm.wins):>3} {'−' + str(arm.losses):>3}" if arm.name != "base" else "", MUTED))
        if shape.reranker and arm.reranker:
            row.append((f" ↻{tags[arm.reranker]}", MUTED))
        lines.append(row)
    lines += [[(" " * (shape.name + 1), EMPTY), *row] for row in axis_lines(shape.track, thresholds)]
    lines += [[(f"↻{tag} re-ranker: {name}", MUTED)] for name, tag in tags.items()]
    return lines


def axis(width: int, thresholds: dict[str, float]) -> list[Run]:
    """0 and 1 at the ends, each threshold's value under its marker where it fits (the legend has them all)."""
    cells = [" "] * width
    placed: list[tuple[int, int]] = []

    def put(text: str, at: int) -> None:
        start = max(0, min(at, width - len(text)))
        end = start + len(text)
        # a label needs one blank cell between it and the next
        if end <= width and not any(start <= e and s <= end for s, e in placed):
            cells[start:end] = list(text)
            placed.append((start, end))

    put("0", 0)
    put("1", width - 1)
    for at in sorted(thresholds.values()):
        put(f"{at:.2f}", position(at, width))
    return [("".join(cells), MUTED)]


def axis_lines(width: int, thresholds: dict[str, float]) -> list[list[Run]]:
    """The axis, and under it a second line for the threshold labels too close to fit on the first (0.70 and
    0.80 on a narrow track): each threshold keeps its figure under its marker while the track has room for it."""
    first = axis(width, thresholds)
    shown = first[0][0]
    dropped = {kind: at for kind, at in thresholds.items() if f"{at:.2f}" not in shown}
    if not dropped:
        return [first]
    second = axis(width, dropped)[0][0]
    labels = "".join(c if not (i == 0 or i == width - 1) else " " for i, c in enumerate(second))  # ends: once
    return [first, [(labels, MUTED)]] if labels.strip() else [first]


def _legend(thresholds: dict[str, float], k: int) -> list[Run]:
    runs: list[Run] = [(f"Recall@{k}  ├─┤ 95% interval", LABEL)]  # kept under 76 cells: it must fit at 80x24
    names = {FINETUNE: "fine-tune", STOP: "stop"}
    for kind, at in thresholds.items():
        runs += [("  ", EMPTY), (MARKS[kind], kind), (f" {names[kind]} {at:.2f}", MUTED)]
    runs.append(("  +wins −losses", MUTED))
    return runs


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


CHART_STYLES = {
    BAR: "$primary",
    WHISKER: "$text bold",
    FINETUNE: "$warning",
    STOP: "$success",
    LABEL: "",
    MUTED: "$text-muted",
    EMPTY: "",
}


class ArmChart(Widget):
    """One row per arm, drawn for the widget's current width (see chart())."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.arms: list[ChartArm] = []
        self.thresholds: dict[str, float] = {}
        self.k = 5

    def show(self, result: GateResult) -> None:
        self.k = result.k
        self.arms = [ChartArm.from_report(arm, result.k) for arm in result.arms]
        self.thresholds = {FINETUNE: result.finetune_recall, STOP: result.stop_recall}
        self.refresh(layout=True)

    def lines(self, width: int) -> list[list[Run]]:
        return chart(self.arms, width, self.thresholds, self.k) if self.arms else []

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Content:
        lines = self.lines(self.content_size.width)
        return Content("\n").join(
            Content.assemble(*((text, CHART_STYLES[kind]) for text, kind in line)) for line in lines
        )
