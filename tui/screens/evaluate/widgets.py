"""The Evaluate screen's parts: the summary, the models table (marks, baseline, compare) and the per-query diff."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable, Static

from engine.config import EVAL_METRICS
from engine.evaluate.report import LABELS
from engine.evaluate.results import Candidate, EvalResult
from tui.screens.evaluate.diff import DiffRow, change_text, compare_cells, rank_text

VERDICT_GLYPHS = {"WIN": "✓", "MARGINAL": "~", "REGRESSION": "✗"}


def summary_text(result: EvalResult) -> str:
    """Headline per tuned model, then the general-query check and what the leakage guard found."""
    report = result.report
    lines = []
    for name, m in report["models"].items():
        if "verdict" not in m:
            continue
        c = m["per_query"]
        lines.append(
            f"{VERDICT_GLYPHS.get(m['verdict'], '?')} {name}: {m['verdict']} against base · "
            f"{c['improved']} improved, {c['regressed']} regressed, {c['unchanged']} unchanged"
        )
        lines += [f"    {reason}" for reason in m["reasons"]]
    if not lines:
        lines.append("Only the base model was measured: mark a trained model (space) and press r.")
    general = report["general"]
    if general.get("n_queries"):
        models = general.get("models", {})
        flagged = [n for n, v in models.items() if v.get("regressing")]
        scores = ", ".join(
            f"{n} {v[general['metric']]:.3f}"
            + (f" (change [{v['delta_ci'][0]:+.3f}, {v['delta_ci'][1]:+.3f}])" if v.get("delta_ci") else "")
            for n, v in models.items()
            if general["metric"] in v
        )
        lines.append(
            f"General queries ({general['n_queries']}): {general['metric']} {scores}; may drop at most "
            f"{general['max_drop']} beyond chance: "
            + (f"REGRESSING: {', '.join(flagged)}" if flagged else "no regression")
        )
    else:
        lines.append(f"General queries: {general.get('note', 'none')}")
    overlap = report["leakage"]["document_overlap"]
    lines.append(
        f"{overlap['documents']:,} evaluated documents ({overlap['queries']:,} queries) are also train "
        "positives: normal when splits share a corpus"
    )
    if report["leakage"]["queries"] or report["leakage"]["pairs"]:
        lines.append(
            f"LEAKAGE allowed: {report['leakage']['queries']} queries and {report['leakage']['pairs']} pairs "
            "repeat training"
        )
    return "\n".join(lines)


class EvalSummary(Static):
    def show(self, result: EvalResult) -> None:
        self.update(summary_text(result))


class ModelsTable(DataTable[Any]):
    """Every model the project can evaluate, marked or not, with the latest result's figures for those measured."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True

    def show(
        self, rows: list[Candidate], marked: set[str], baseline: str, deltas: bool, result: EvalResult | None
    ) -> None:
        kept = self.cursor_key()
        self.clear(columns=True)
        self.add_column("✓", key="mark", width=1)
        self.add_column("model", key="model")
        self.add_column("verdict", key="verdict")
        for key in EVAL_METRICS:
            self.add_column(LABELS[key] + (" Δ" if deltas else ""), key=key)
        self.add_column("▲/▼", key="changes")
        self.add_column("p", key="p")
        self.add_column("model folder", key="detail")
        measured = result.report["models"] if result else {}
        cells = (
            compare_cells(measured, baseline, deltas, {c.name for c in rows if c.name in marked}) if measured else {}
        )
        for candidate in rows:
            name = candidate.name
            m = measured.get(name)
            dim = "" if name in marked else "dim"
            label = name + (" (baseline)" if name == baseline else "")
            row: list[Text] = [
                Text("●" if name in marked else ""),
                Text(label, style="bold" if name == baseline else dim),
            ]
            row.append(Text(m.get("verdict", "—" if name != "base" else "") if m else "not measured", style=dim))
            for key in EVAL_METRICS:
                cell = cells.get(name, {}).get(key)
                row.append(
                    Text(cell.text if cell else "", style="bold" if cell and cell.bold else dim, justify="right")
                )
            changes = m.get("per_query") if m else None
            row.append(Text(f"{changes['improved']}/{changes['regressed']}" if changes else "", justify="right"))
            row.append(Text(f"{m['p_value']:.3g}" if m and "p_value" in m else "", justify="right"))
            row.append(Text(candidate.detail, style="dim"))
            self.add_row(*row, key=name)
        if kept is not None and kept in self.rows:
            self.move_cursor(row=self.get_row_index(kept))

    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


class DiffTable(DataTable[Any]):
    """One row per evaluated query: the first relevant rank under the baseline and under the chosen model."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True

    def show(self, rows: list[DiffRow], baseline: str, model: str, sort: str, reverse: bool) -> None:
        kept = self.cursor_key()
        self.clear(columns=True)
        arrow = " ↑" if reverse else " ↓"
        text_width = max(20, min(70, self.app.size.width - 45))
        for key, label, width in (
            ("change", "change", 7),
            ("id", "id", None),
            ("query", "query", text_width),
            ("before", baseline, None),
            ("after", model, None),
        ):
            self.add_column(label + (arrow if sort == key else ""), key=key, width=width)
        colours = self.app.theme_variables
        styles = {"improved": colours.get("text-success", "green"), "regressed": colours.get("text-error", "red")}
        for row in rows:
            flat = " ".join(row.text.split())
            text = flat if len(flat) <= text_width else flat[: text_width - 1] + "…"
            self.add_row(
                Text(change_text(row), style=styles.get(row.change, "")),
                Text(row.id),
                Text(text),
                Text(rank_text(row.before), justify="right"),
                Text(rank_text(row.after), justify="right", style=styles.get(row.change, "")),
                key=row.id,
            )
        if kept is not None and kept in self.rows:
            self.move_cursor(row=self.get_row_index(kept))

    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
