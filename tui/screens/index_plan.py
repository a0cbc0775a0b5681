"""The Index screen's plan panel: the latest `embtune index plan` (engine.index.plan) as a table of what was tried,
with the pick starred and options below `index.min_recall` dimmed, its verdict, and the job that measures a new one."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from engine.index.plan import label
from engine.project import Project
from tui.jobs import Cancelled, JobText, Progress

PLAN_JOB = JobText(
    name="plan",
    group="index-plan",
    starting="starting: encoding the queries…",
    question="Cancel the running plan?",
    detail="Nothing is stored: the last plan stays as it was.",
    cancelling="cancelling after this step…",
)
PLAN_STAGES = ("encode queries", "exact search", "index types", "compressions")
PLAN_CANCELLED = "Plan cancelled: nothing was stored; the last plan stays."
NO_PLAN = (
    "No plan yet. p measures index types (IVF_FLAT, IVF_PQ, IVF_HNSW_SQ, IVF_RQ) and compressions (int8, binary, "
    "Matryoshka) on the live table: recall@10 against exact search, bytes per vector, latency."
)
COLUMNS = ("", "option", "kind", "recall@10", "bytes/vec", "p50 ms", "p95 ms", "build s", "settings")


def plan_job(project: Project, progress: Progress, cancelled: Cancelled) -> dict[str, Any] | None:
    """The plan job: every option measured on the live table and stored as a run; returns the stored view."""
    from engine.index.plan import plan_index, plan_view  # numpy, LanceDB and the model load only for a plan

    plan_index(project, progress, cancelled)
    return plan_view(project)


def headline(view: dict[str, Any] | None, live: str | None) -> str:
    if view is None:
        return NO_PLAN
    when = (view.get("measured_at") or "")[:16].replace("T", " ")
    stale = "" if view["table"] == live else " (not the live table now)"
    return (
        f"Plan (run {view['run_id']}, {when}): {view['table']}{stale}, {view['rows']:,} rows × {view['dim']} dims, "
        f"{view['queries']} queries · ★ pick · dimmed: below recall@10 {view['min_recall']}"
    )


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _settings(option: dict[str, Any]) -> str:
    shown = {k: v for k, v in option.get("settings", {}).items() if v is not None and k != "index_bytes_on_disk"}
    return " ".join(f"{k}={v}" for k, v in shown.items())


class PlanTable(DataTable[Text]):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns(*COLUMNS)

    def show(self, options: list[dict[str, Any]]) -> None:
        self.clear()
        for o in options:
            style = "bold" if o["picked"] else "" if o["meets"] else "dim"
            cells = (
                (label(o["name"]), "left"),
                (o["family"], "left"),
                (f"{o['recall_at_10']:.3f}", "right"),
                (_number(o["bytes_per_vector"], 1).removesuffix(".0"), "right"),
                (_number(o["p50_ms"], 2), "right"),
                (_number(o["p95_ms"], 2), "right"),
                (_number(o["build_seconds"], 1), "right"),
                (_settings(o), "left"),
            )
            mark = Text("★" if o["picked"] else "", style="bold")
            self.add_row(mark, *(Text(text, style=style, justify=side) for text, side in cells), key=o["name"])


class PlanPanel(Vertical):
    """The headline, the options and the verdict; only the headline (how to measure one) before the first plan, and
    nothing while no table is live (nothing to measure)."""

    DEFAULT_CSS = """
    PlanPanel { height: auto; margin: 1 0 0 0; display: none; }
    PlanPanel > Label { width: 100%; padding: 0 1; }
    PlanPanel > #plan-title { color: $text-muted; }
    PlanPanel > PlanTable { height: auto; max-height: 12; display: none; }
    PlanPanel > #plan-verdict { text-style: bold; display: none; }
    """

    def compose(self) -> ComposeResult:
        yield Label(NO_PLAN, id="plan-title", markup=False)
        yield PlanTable(id="plan-table")
        yield Label("", id="plan-verdict", markup=False)

    def show(self, view: dict[str, Any] | None, live: str | None) -> None:
        self.display = view is not None or live is not None  # no table yet: the screen's own note says build one
        self.query_one("#plan-title", Label).update(headline(view, live))
        table, verdict = self.query_one(PlanTable), self.query_one("#plan-verdict", Label)
        table.display = verdict.display = view is not None
        table.show(view["options"] if view else [])
        verdict.update(view["verdict"] if view else "")
