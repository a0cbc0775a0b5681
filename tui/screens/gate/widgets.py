"""The gate screen's parts: verdict summary, metrics table and per-query drill-down table."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Static

from engine.gate.costs import cost_lines, short_cost
from engine.gate.results import GateResult, QueryOutcome
from tui.screens.gate.drilldown import LOSS, WIN, Changes, expected_text, rank_text, short_arm

# glyph and headline per verdict: the banner reads without colour too
VERDICTS = {
    "STOP": ("✓", "don't fine-tune: a cheaper fix is good enough"),
    "FINE_TUNE": ("▶", "the cheaper fixes fall short and there is enough data to fine-tune"),
    "GREY": ("~", "in between: adopt the best cheap fix and measure again"),
    "COLLECT_MORE": ("+", "fine-tuning would help, but collect more training pairs first"),
    "INCOMPLETE": ("?", "an arm the rules need could not run: see below how to supply it"),
}
METRICS = (
    ("recall@1", "R@1"),
    ("recall@5", "R@5"),
    ("recall@10", "R@10"),
    ("mrr@10", "MRR@10"),
    ("ndcg@10", "nDCG@10"),
)


def banner_text(verdict: str) -> str:
    glyph, headline = VERDICTS.get(verdict, ("?", "unknown verdict"))
    return f"{glyph} {verdict}  ·  {headline}"


class GateSummary(Vertical):
    """Verdict banner, the reasons behind it, the arms that could not run and how to fix them, the hints."""

    def compose(self) -> ComposeResult:
        yield Static("", id="verdict", markup=False)
        yield Static("", id="reasons", markup=False)
        yield Static("", id="costs", markup=False)
        yield Static("", id="skipped")
        yield Static("", id="hints")

    def show(self, result: GateResult) -> None:
        report = result.report
        verdict = self.query_one("#verdict", Static)
        verdict.update(banner_text(result.verdict))
        for name in VERDICTS:
            verdict.set_class(name == result.verdict, f"-{name.lower().replace('_', '-')}")
        rule = [f"rule: {report['rule']}"] if report.get("rule") else []
        self.query_one("#reasons", Static).update("\n".join(f"• {line}" for line in [*rule, *report["reasons"]]))
        costs = cost_lines(report)
        self.query_one("#costs", Static).update("\n".join(["Cost of each fix", *(f"  {line}" for line in costs)]))
        self.query_one("#costs", Static).display = bool(costs)
        skipped = self.query_one("#skipped", Static)
        skipped.update(
            Content("\n").join(
                [
                    Content.styled("Arms that could not run", "bold"),
                    *(
                        Content.assemble(("✗ ", "$text-error"), (name, "bold"), f": {why}")
                        for name, why in report["skipped"].items()
                    ),
                ]
            )
        )
        skipped.display = bool(report["skipped"])
        hints = self.query_one("#hints", Static)
        hints.update(
            Content("\n").join([Content.styled("Hints", "bold"), *(Content(f"› {hint}") for hint in report["hints"])])
        )
        hints.display = bool(report["hints"])


def _number(value: float) -> Text:
    return Text(f"{value:.3f}", justify="right")


class MetricsTable(DataTable[Any]):
    """The arms' metrics; the last column ("what it measures") takes the width left and wraps, so it is never cut."""

    MIN_TEXT = 24  # below this the description column scrolls sideways rather than wrap a word per line

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.result: GateResult | None = None

    def on_resize(self) -> None:
        if self.result is not None:
            self.show(self.result)

    def show(self, result: GateResult) -> None:
        self.result = result
        self.clear(columns=True)
        k = result.k
        metrics = [*METRICS, *([(f"recall@{k}", f"R@{k}")] if k not in (1, 5, 10) else [])]
        labels = ["arm", *(label for _, label in metrics), f"R@{k} 95% CI*", "wins", "losses", "cost", "re-ranker"]
        rows = [self._cells(arm, k, metrics) for arm in result.arms]  # * simultaneous: what the verdict's rules read
        if not any(arm.get("reranker") for arm in result.arms):  # an empty column's width goes to the text
            labels, rows = labels[:-1], [cells[:-1] for cells in rows]
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in labels]
        pairs = zip(labels, columns, strict=True)
        widths = [max([len(label), *(cell.cell_len for cell in column)]) for label, column in pairs]
        padding = 2 * self.cell_padding
        left = self.size.width - self.styles.scrollbar_size_vertical - sum(w + padding for w in widths) - padding
        for label, width in zip(labels, widths, strict=True):
            self.add_column(label, width=width)
        self.add_column("what it measures", width=max(self.MIN_TEXT, left))
        for arm, cells in zip(result.arms, rows, strict=True):
            self.add_row(*cells, Text(arm.get("description", "")), key=arm["name"], height=None)

    @staticmethod
    def _cells(arm: dict[str, Any], k: int, metrics: list[tuple[str, str]]) -> list[Text]:
        low, high = arm.get(f"recall@{k}_ci_simultaneous", arm[f"recall@{k}_ci"])
        base = arm["name"] == "base"
        return [
            Text(arm["name"]),
            *(_number(arm[key]) for key, _ in metrics),
            Text(f"{low:.3f}–{high:.3f}"),
            Text("" if base else str(len(arm["wins"])), justify="right"),
            Text("" if base else str(len(arm["losses"])), justify="right"),
            Text(short_cost(arm.get("cost"))),
            Text(arm.get("reranker") or ""),
        ]


class QueryTable(DataTable[Any]):
    """Gate queries with the first relevant rank under each arm; ▲/▼ where an arm wins or loses against base."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.fixed_columns = 3  # marker, id and query stay in view while the arms scroll sideways

    def show(
        self, outcomes: list[QueryOutcome], arm_names: list[str], changes: Changes, sort: str, reverse: bool
    ) -> None:
        kept = self.cursor_row_key()
        self.clear(columns=True)
        # the table may still be hidden in its tab (width 0): size the text columns from the terminal
        query_width = max(14, min(40, self.app.size.width // 5))
        expected_width = max(10, min(24, self.app.size.width // 8))
        arrow = " ↓" if not reverse else " ↑"
        self.add_column("±", key="±", width=1)
        for key, label, width in (
            ("id", "id", None),
            ("query", "query", query_width),
            ("expected", "expected", expected_width),
        ):
            self.add_column(label + (arrow if sort == key else ""), key=key, width=width)
        for name in arm_names:
            self.add_column(short_arm(name) + (arrow if sort == name else ""), key=name)
        colours = self.app.theme_variables
        styles = {WIN: colours.get("text-success", "green"), LOSS: colours.get("text-error", "red")}
        for outcome in outcomes:
            differs = changes.differs(outcome.id)
            cells: list[Text] = [
                Text("●" if differs else ""),
                Text(outcome.id, style="bold" if differs else ""),
                _cut(outcome.text, query_width),
                _cut(expected_text(outcome), expected_width),
            ]
            for name in arm_names:
                mark = changes.mark(name, outcome.id)
                cells.append(
                    Text(rank_text(outcome.ranks.get(name), mark), style=styles.get(mark, ""), justify="right")
                )
            self.add_row(*cells, key=outcome.id)
        if kept is not None and kept in self.rows:
            self.move_cursor(row=self.get_row_index(kept))

    def cursor_row_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


def _cut(text: str, width: int) -> Text:
    flat = " ".join(text.split())
    return Text(flat if len(flat) <= width else flat[: width - 1] + "…")
