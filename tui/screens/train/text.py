"""What the Train screen says about a plan and a run: pure text from the engine's dicts."""

from __future__ import annotations

from typing import Any

from engine.train.view import eval_source, max_steps, steps_done
from tui.widgets.train_chart import eval_label

CANCELLING = "cancelling…"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def plan_text(plan: dict[str, Any]) -> str:
    """The pre-flight beside the form: data, schedule, evaluation and time, one fact a line (wraps in a panel)."""
    from engine.train.run import dev_text

    negatives = (
        f"{plan['mined_negatives']:,} rows with a mined hard negative"
        if plan["mined_negatives"]
        else "no hard negatives (off, or none mined: `embtune mine`)"
    )
    eta = (
        f"~{duration(plan['estimated_seconds'])} (last measured step)"
        if plan.get("estimated_seconds")
        else "measured by the smoke step"
    )
    return "\n".join(
        [
            f"rows: {plan['train_rows']:,} training rows from {plan['pairs']:,} reviewed pairs",
            f"negatives: {negatives}",
            f"steps: {plan['max_steps']:,} ({plan['steps_per_epoch']:,} per epoch) · {plan['loss']} · "
            f"batch {plan['batch_size']}",
            f"batches: {plan['duplicates_per_batch']} repeated texts per random batch → 0 with the no-duplicates "
            "sampler",
            f"evaluations: {dev_text(plan)}",
            *(f"recipe: {line}" for line in plan.get("recipe", [])),
            f"time: {eta}",
        ]
    )


def title(run: dict[str, Any], cancelling: bool) -> str:
    config, settings = run["config"], run["config"].get("settings", {})
    parent = f" · resumes run {run['parent_id']}" if run["parent_id"] else ""
    status = CANCELLING if cancelling and run["status"] in ("queued", "running") else run["status"]
    return (
        f"Train · run {run['id']} · {status}{parent} · {config.get('base_model', '?')} · "
        f"{settings.get('loss', '?')} · batch {settings.get('batch_size', '?')}"
    )


def status_line(run: dict[str, Any], progress: dict[str, Any], cancelling: bool = False) -> str:
    """Step (as `embtune runs` counts it), speed and ETA, heartbeat, time taken, and where the model is."""
    parts = [f"step {steps_done(run)}/{max_steps(run) or '?'}"]
    active = run["status"] in ("queued", "running")
    if active and cancelling:
        parts.insert(0, f"{CANCELLING} (it stops at its next step or phase)")
    elif run["status"] == "running" and progress.get("steps_per_s"):
        parts += [f"{progress['steps_per_s']:.2f} steps/s", f"ETA {duration(progress.get('eta_s'))}"]
    if active and progress.get("phase"):
        parts.append(progress["phase"])
    if "preflight" in progress:
        parts.append(f"smoke step {progress['preflight']['step_seconds']:.2f} s")
    if active and run["heartbeat_age"] is not None:
        parts.append(f"heartbeat {run['heartbeat_age']:.0f} s ago")
    result = run["result"] or {}
    if result.get("seconds"):
        parts.append(f"took {duration(result['seconds'])}")
    if run["model_path"]:
        parts.append(f"model {run['model_path']}")
    elif run["checkpoint_path"]:
        parts.append(f"checkpoint {run['checkpoint_path']}")
    return " · ".join(parts)


def evals_title(run: dict[str, Any], role: str) -> str:
    if role == "watch":
        return f"{eval_source(run)} queries (watched, never to choose)"
    return "dev evaluations" if role == "select" else "no evaluation"


def evals_text(points: list[tuple[int, float]], role: str) -> str:
    """The last evaluations (step, nDCG@10): step 0 is the base model; ★ marks the step the dev slice keeps, and
    only when it chooses one (watched held-out queries never choose)."""
    trained = [v for s, v in points if s > 0]
    best = max(trained) if trained and role == "select" else None
    head = f"{'step':>6}  {eval_label(role) if role == 'watch' else 'nDCG@10'}"
    lines = [head]
    for s, v in points[-12:]:
        mark = "  ★" if best is not None and s > 0 and v == best else ("  base" if s == 0 else "")
        lines.append(f"{s:>6}  {v:.4f}{mark}")
    return "\n".join(lines)


def started_text(stamp: str | None) -> str:
    return stamp[5:16].replace("T", " ") if stamp else "–"  # MM-DD HH:MM (UTC, as stored)


def steps_text(row: dict[str, Any]) -> str:
    return f"{row['step']}/{row['max_steps'] or '?'}"


def row_status(row: dict[str, Any]) -> str:
    return CANCELLING if row["cancelling"] else row["status"]
