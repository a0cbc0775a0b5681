"""The Evaluate screen's merge tab: the newest merge sweep (engine.train.merge) as a table beside the chart, its
headline, and the job that runs a sweep in the background."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from engine.project import Project
from tui.jobs import Cancelled, JobText, Progress

MERGE_JOB = JobText(
    name="merge",
    group="eval-merge",
    starting="starting: mixing the base and tuned weights…",
    question="Cancel the running merge?",
    detail="Mixes written so far stay as models; no merge result is stored.",
    cancelling="cancelling at the next step…",
)
NO_SWEEP = (
    "No merge yet. M mixes the base and a tuned run's weights at α = 0, 0.25, 0.5, 0.75 and 1 (LM-Cocktail), "
    "evaluates every mix on the held-out and the general queries, and recommends the best α that does not forget "
    "the general queries. The model under the cursor in the Models tab is merged (else the newest trained run)."
)


def sweep_job(project: Project, run: str, progress: Progress, cancelled: Cancelled) -> dict[str, Any]:
    """The merge job: every α written, evaluated and stored; returns the stored sweep."""
    from engine.train.merge import DEFAULT_ALPHAS, merge_run  # torch loads only when a merge runs

    return merge_run(project, run, DEFAULT_ALPHAS, progress, cancelled)


def point_model(sweep: dict[str, Any], alpha: float) -> str:
    return next(str(p["model"]) for p in sweep["points"] if p["alpha"] == alpha)


def model_name(model: str) -> str:
    return model if model == "base" else f"run {model}"


def headline(sweep: dict[str, Any] | None) -> str:
    if sweep is None:
        return NO_SWEEP
    rec, chosen = sweep.get("recommended"), sweep.get("chosen")
    first = (
        f"run {sweep['run']} mixed with the base at each α (merge {sweep['sweep_run']}; nDCG@10 on the "
        f"{sweep['split']} queries and {sweep['n_general']} general queries)"
    )
    parts = []
    if rec is None:
        parts.append("no α keeps the general queries")
    else:
        parts.append(f"★ recommended α {rec:g} ({model_name(point_model(sweep, rec))})")
    if chosen is None:
        parts.append("u: use the α under the cursor for Index and export")
    else:
        model = point_model(sweep, chosen)
        export = "" if model == "base" else f"; export: embtune export DIR {model} DEST"
        parts.append(f"✓ chosen α {chosen:g}: Index offers {model_name(model)}{export}")
    return first + "\n" + " · ".join(parts)


class MergeTable(DataTable[Any]):
    """One row per α of the newest sweep: its model, both scores, whether the general check regresses."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True

    def show(self, sweep: dict[str, Any] | None) -> None:
        kept = self.cursor_key()
        self.clear(columns=True)
        if sweep is None:
            return
        for key, label in (
            ("alpha", "α"),
            ("model", "model"),
            ("ndcg", "nDCG@10"),
            ("general", "general nDCG@10"),
            ("regressing", "general check"),
            ("mark", ""),
        ):
            self.add_column(label, key=key)
        best = max(p["ndcg@10"] for p in sweep["points"])
        for p in sweep["points"]:
            general, regressing = p["general_ndcg@10"], p["general_regressing"]
            marks = [("★ recommended", sweep.get("recommended")), ("✓ chosen", sweep.get("chosen"))]
            self.add_row(
                Text(f"{p['alpha']:.2f}", justify="right"),
                Text(model_name(str(p["model"]))),
                Text(f"{p['ndcg@10']:.4f}", justify="right", style="bold" if p["ndcg@10"] == best else ""),
                Text("—" if general is None else f"{general:.4f}", justify="right"),
                Text("✗ regresses" if regressing else "ok", style="bold" if regressing else "dim"),
                Text(" ".join(m for m, alpha in marks if alpha == p["alpha"]), style="bold"),
                key=str(p["alpha"]),
            )
        if kept is not None and kept in self.rows:
            self.move_cursor(row=self.get_row_index(kept))
        elif sweep.get("recommended") is not None:
            self.move_cursor(row=self.get_row_index(str(sweep["recommended"])))

    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def cursor_alpha(self) -> float | None:
        key = self.cursor_key()
        return None if key is None else float(key)
