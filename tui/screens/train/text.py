"""What the Train screen says about a plan and a run: pure text from the engine's dicts."""

from __future__ import annotations

from typing import Any


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def plan_text(plan: dict[str, Any]) -> str:
    from engine.train.run import dev_text

    negatives = (
        f"{plan['mined_negatives']:,} rows with a mined hard negative"
        if plan["mined_negatives"]
        else "no hard negatives (run `embtune mine` for them)"
    )
    dev = dev_text(plan)
    eta = (
        f"~{duration(plan['estimated_seconds'])} (last measured step)"
        if plan.get("estimated_seconds")
        else "measured by the smoke step"
    )
    return (
        f"{plan['train_rows']:,} training rows from {plan['pairs']:,} reviewed pairs · {negatives}\n"
        f"{plan['loss']} · batch {plan['batch_size']} · {plan['max_steps']:,} steps "
        f"({plan['steps_per_epoch']:,} per epoch) · {plan['duplicates_per_batch']} repeated texts per random "
        f"batch → 0 with the no-duplicates sampler\n{dev}\ntime: {eta}"
    )


def status_line(run: dict[str, Any], progress: dict[str, Any], max_steps: int | None) -> str:
    """Step, speed and ETA, heartbeat, time taken, and where the model or checkpoint is."""
    step, total = progress.get("step", run["step"] or 0), max_steps or "?"
    parts = [f"step {step}/{total}"]
    if run["status"] == "running" and progress.get("steps_per_s"):
        parts += [f"{progress['steps_per_s']:.2f} steps/s", f"ETA {duration(progress.get('eta_s'))}"]
    if "preflight" in progress:
        parts.append(f"smoke step {progress['preflight']['step_seconds']:.2f} s")
    if run["status"] in ("queued", "running") and run["heartbeat_age"] is not None:
        parts.append(f"heartbeat {run['heartbeat_age']:.0f} s ago")
    result = run["result"] or {}
    if result.get("seconds"):
        parts.append(f"took {duration(result['seconds'])}")
    if run["model_path"]:
        parts.append(f"model {run['model_path']}")
    elif run["checkpoint_path"]:
        parts.append(f"checkpoint {run['checkpoint_path']}")
    return " · ".join(parts)


def evals_text(dev: list[tuple[int, float]]) -> str:
    """The last dev evaluations (step, nDCG@10), the best starred."""
    best = max(v for _, v in dev)
    lines = [f"{'step':>6}  nDCG@10"] + [f"{s:>6}  {v:.4f}{'  ★' if v == best else ''}" for s, v in dev[-12:]]
    return "\n".join(lines)
