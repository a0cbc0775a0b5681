"""`embtune train / runs / cancel / resume / logs`: training as a detached job, from the command line.

Only engine.train.run and engine.jobs.launcher are imported here (no torch): the worker process loads the model
libraries.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click

from engine.cli._common import emit, handles_errors, json_option, project_dir
from engine.project import Project, open_project


def _plan_text(run_id: int | None, plan: dict[str, Any]) -> str:
    from engine.train.run import dev_text

    negatives = (
        f"{plan['mined_negatives']:,} mined hard negatives"
        if plan["mined_negatives"]
        else "pairs only (mined negatives join with --negatives after `embtune mine`)"
    )
    eta = (
        f"~{_duration(plan['estimated_seconds'])} (last measured step)"
        if plan.get("estimated_seconds")
        else "measured on the first step"
    )
    dev = dev_text(plan)
    recipe = "".join(f"\n  {line}" for line in plan.get("recipe", []))
    head = f"Run {run_id}" if run_id is not None else "Dry run (nothing started)"
    return (
        f"{head}: {plan['train_rows']:,} training rows from {plan['pairs']:,} reviewed pairs, "
        f"{negatives}\n  {plan['loss']}, batch {plan['batch_size']}, lr {plan['learning_rate']:g}, "
        f"{plan['epochs']} epoch(s) = {plan['max_steps']:,} steps ({plan['steps_per_epoch']:,}/epoch); "
        f"{plan['duplicates_per_batch']} repeated texts per random batch, 0 with the no-duplicates sampler"
        f"{recipe}\n  {dev}\n  time: {eta}; data {plan['data_hash']}"
        + (f"\n  memory: {plan['advice']}" if plan.get("advice") else "")
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _follow(project: Project, run_id: int) -> dict[str, Any]:
    """Print the run's progress on stderr until it ends; Ctrl-C stops watching, not the run."""
    from engine.train.run import outcome, wait

    def show(event: dict[str, Any]) -> None:
        kind, p = event["kind"], event["payload"]
        if kind == "phase":
            click.echo(f"  {p['phase']}…", err=True)
        elif kind == "preflight":
            click.echo(
                f"  first step {p['step_seconds']:.2f} s → about {_duration(p['estimated_seconds'])} for "
                f"{p['max_steps']:,} steps",
                err=True,
            )
        elif kind == "progress" and sys.stderr.isatty():
            click.echo(
                f"  step {p['step']}/{p['max_steps']} · {p['steps_per_s']:.2f} steps/s · ETA {_duration(p['eta_s'])}",
                err=True,
            )
        elif kind == "eval":
            click.echo(f"  step {p['step']}: held-out nDCG@10 {p.get('ndcg@10', float('nan')):.4f}", err=True)
        elif kind in ("cancelling", "cancelled"):
            click.echo(f"  {kind} at step {p['step']}", err=True)

    try:
        run = wait(project, run_id, show)
    except KeyboardInterrupt:
        click.echo(
            f"\nStopped watching; run {run_id} keeps running. Cancel it with `embtune cancel {project.root} {run_id}`.",
            err=True,
        )
        sys.exit(130)
    return outcome(project, run)


def _final(as_json: bool, result: dict[str, Any]) -> None:
    status = result["status"]
    text = {
        "finished": f"Run {result['run_id']} finished: {result['model_path']} ({result['steps']} steps, "
        f"{result['seconds']} s)",
        "cancelled": f"Run {result['run_id']} cancelled at step {result['steps']}; checkpoint "
        f"{result['checkpoint_path']} (resume with `embtune resume`)",
    }.get(status, f"Run {result['run_id']} {status}: {result['error']}")
    dev = result.get("dev") or {}
    if status == "finished" and dev:
        text += f"\n  dev nDCG@10: base {dev.get('base')} → kept {dev['best']} (step {dev['best_step']})"
        if dev.get("warning"):
            text += f"\n  note: {dev['warning']}"
    emit(as_json, result, text)
    if status == "failed" or status == "interrupted":
        sys.exit(1)


@click.command()
@project_dir
@click.option("--epochs", type=int, help="Passes over the training rows (training.epochs).")
@click.option("--batch-size", type=int, help="Rows per batch: the in-batch negatives of MNRL (training.batch_size).")
@click.option("--lr", "learning_rate", type=float, help="Peak learning rate (training.learning_rate).")
@click.option("--warmup", "warmup_ratio", type=float, help="Share of steps spent warming up (training.warmup_ratio).")
@click.option("--loss", type=click.Choice(["mnrl", "cached_mnrl", "matryoshka"]), help="Loss (training.loss).")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--max-seq-length", type=int, help="Token limit (default: fitted to the data).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), help="auto: bf16/fp16 on CUDA.")
@click.option("--seed", type=int, help="Seed for data order, dev slice and initialisation (project seed).")
@click.option("--no-negatives", is_flag=True, help="Train on pairs only, even when mined negatives exist.")
@click.option("--negatives", is_flag=True, help="Train on triplets with the mined negatives (training.hard_negatives).")
@click.option("--watch", help='Watched evaluations: auto (<= 10% of training time), off or "every N" (training.watch).')
@click.option("--dry-run", is_flag=True, help="Print the pre-flight (data, recipe, steps, watch) and start nothing.")
@click.option(
    "--adapter",
    type=click.Choice(["lora", "none"]),
    help="lora: train a LoRA adapter (peft; training.adapter's r, alpha, ...); none: every weight.",
)
@click.option(
    "--gradient-checkpointing/--no-gradient-checkpointing",
    default=None,
    help="Recompute activations in backward: less memory, slower steps (training.gradient_checkpointing).",
)
@click.option("--auto-batch", is_flag=True, help="Measure the largest batch that fits on this device, and use it.")
@click.option("--launcher", help="Multi-GPU launcher replacing python, e.g. 'torchrun --nproc_per_node 4'.")
@click.option("--wait", is_flag=True, help="Follow the run and print its outcome when it ends.")
@click.option("--allow-parallel", is_flag=True, help="Start even while another training run is queued or running.")
@json_option
@handles_errors
def train(
    directory: Path,
    epochs: int | None,
    batch_size: int | None,
    learning_rate: float | None,
    warmup_ratio: float | None,
    loss: str | None,
    max_steps: int | None,
    max_seq_length: int | None,
    precision: str | None,
    seed: int | None,
    no_negatives: bool,
    negatives: bool,
    watch: str | None,
    dry_run: bool,
    adapter: str | None,
    gradient_checkpointing: bool | None,
    auto_batch: bool,
    launcher: str | None,
    wait: bool,
    allow_parallel: bool,
    as_json: bool,
) -> None:
    """Fine-tune the base model on the reviewed pairs in a detached job (survives closing the terminal)."""
    from engine.train.run import TrainingError, plan, settings_for, start_training

    if negatives and no_negatives:
        raise TrainingError("--negatives and --no-negatives contradict each other: pick one")
    project = open_project(directory)
    settings = settings_for(
        project,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_ratio=warmup_ratio,
        loss=loss,
        max_steps=max_steps,
        max_seq_length=max_seq_length,
        precision=precision,
        seed=seed,
        hard_negatives=False if no_negatives else (True if negatives else None),
        watch=watch,
        adapter=_adapter(project, adapter),
        gradient_checkpointing=gradient_checkpointing,
    )
    if adapter == "none":
        settings = dataclasses.replace(settings, adapter=None)
    if auto_batch:
        settings = _auto_batch(project, settings)
    if dry_run:
        summary = plan(project, settings)
        emit(as_json, summary, _plan_text(None, summary))
        return
    run_id, plan = start_training(
        project, settings, launcher=shlex.split(launcher) if launcher else None, allow_parallel=allow_parallel
    )
    click.echo(_plan_text(run_id, plan), err=True)
    if not wait:
        emit(
            as_json,
            {"run_id": run_id, "status": "queued", "plan": plan},
            f"Run {run_id} started in the background. Follow it: embtune logs {directory} {run_id} --follow",
        )
        return
    _final(as_json, _follow(project, run_id))


def _adapter(project: Project, choice: str | None) -> dict[str, Any] | None:
    """--adapter lora: project.yaml's training.adapter settings when it has them, else LoRA's defaults."""
    if choice != "lora":
        return None
    return {**(project.config.training.adapter or {}), "kind": "lora"}


def _auto_batch(project: Project, settings: Any) -> Any:
    """Probe real steps on this device (engine.train.memory) and train with the largest batch that fits."""
    from engine.train.memory import probe_batch_size
    from engine.train.run import load_data, schedule

    click.echo("  measuring the largest batch that fits on this device…", err=True)
    found = probe_batch_size(project, settings, load_data(project, settings), schedule)
    tried = ", ".join(f"{p['batch_size']}: {p.get('peak_gb', p.get('error'))}" for p in found["probes"])
    click.echo(
        f"  --auto-batch on {found['device']}: batch {found['batch_size']} (peak GB by batch: {tried})", err=True
    )
    return dataclasses.replace(settings, batch_size=found["batch_size"])


def _max_steps(run: dict[str, Any]) -> int | None:
    config = run["config"]
    steps = config.get("schedule") or config.get("plan") or {}
    return steps.get("max_steps")


@click.command()
@project_dir
@click.option("--all", "all_kinds", is_flag=True, help="Every kind of run (gate, eval, reranker…), not only train.")
@json_option
@handles_errors
def runs(directory: Path, all_kinds: bool, as_json: bool) -> None:
    """Training runs, newest first; a run whose worker died is marked interrupted here."""
    from engine.jobs.launcher import reap_stale
    from engine.store.jobs import list_runs

    project = open_project(directory)
    reap_stale(project)
    rows = [
        {
            "run_id": r["id"],
            "status": r["status"],
            "kind": r["kind"],
            "step": r["step"] or 0,
            "max_steps": _max_steps(r),
            "parent_id": r["parent_id"],
            "model_path": r["model_path"],
            "created_at": r["created_at"],
            "error": r["error"],
        }
        for r in list_runs(project.db, kind=None if all_kinds else "train")
    ]
    lines = [f"{'run':>5}  {'kind':<8} {'status':<12} {'step':>11}  model / error"]
    for r in rows:
        steps = f"{r['step']}/{r['max_steps'] or '?'}" if r["kind"] == "train" else ""
        parent = f" (resumes {r['parent_id']})" if r["parent_id"] else ""
        lines.append(
            f"{r['run_id']:>5}  {r['kind']:<8} {r['status']:<12} {steps:>11}  "
            f"{r['model_path'] or r['error'] or ''}{parent}"
        )
    emit(as_json, {"runs": rows}, "\n".join(lines) if rows else "No training runs yet: embtune train DIR")


@click.command()
@project_dir
@click.argument("run_id", type=int)
@json_option
@handles_errors
def cancel(directory: Path, run_id: int, as_json: bool) -> None:
    """Stop a training run at its next step (it saves a checkpoint first; `embtune resume` continues it), or an
    index build after its current batch (the next `embtune index` with the same model resumes it)."""
    from engine.jobs.launcher import cancel as request
    from engine.store.runs import get_run

    project = open_project(directory)
    status = request(project, run_id)
    is_index = (get_run(project.db, run_id) or {}).get("kind") == "index"
    stops = "after its current batch" if is_index else "after its current step and saves a checkpoint"
    text = {
        "running": f"Cancel requested: run {run_id} stops {stops}.",
        "cancelled": f"Run {run_id} is cancelled.",
    }.get(status, f"Run {run_id} is already {status}.")
    emit(as_json, {"run_id": run_id, "status": status}, text)


@click.command()
@project_dir
@click.argument("run_id", type=int)
@click.option("--wait", is_flag=True, help="Follow the new run and print its outcome when it ends.")
@json_option
@handles_errors
def resume(directory: Path, run_id: int, wait: bool, as_json: bool) -> None:
    """Continue a cancelled, failed or interrupted run from its last checkpoint, as a child run."""
    from engine.train.run import resume_training

    project = open_project(directory)
    child = resume_training(project, run_id)
    if not wait:
        emit(
            as_json,
            {"run_id": child, "parent_id": run_id, "status": "queued"},
            f"Run {child} resumes run {run_id} in the background. Follow it: embtune logs {directory} {child} --follow",
        )
        return
    _final(as_json, _follow(project, child))


@click.command()
@project_dir
@click.argument("run_id", type=int)
@click.option("--tail", type=int, default=200, show_default=True, help="Lines from the end.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run ends.")
@handles_errors
def logs(directory: Path, run_id: int, tail: int, follow: bool) -> None:
    """A run's worker log (runs/RUN/worker.log): warnings, tracebacks, the outcome."""
    from engine.jobs.launcher import JobError, log_path, read_log, reap_stale
    from engine.store.jobs import job_run

    project = open_project(directory)
    if job_run(project.db, run_id) is None:  # any detached kind writes one: a training run, an index build
        raise JobError(f"no run {run_id} (see `embtune runs {project.root} --all`)")
    lines = read_log(project, run_id, tail)
    if not lines and not follow:
        click.echo(f"Run {run_id} has written no log yet.", err=True)
    for line in lines:
        click.echo(line)
    if not follow:
        return
    path = log_path(project, run_id)
    offset = path.stat().st_size if path.exists() else 0
    try:
        while True:
            if path.exists():
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                offset += len(chunk)
                if chunk:
                    click.echo(chunk.decode("utf-8", errors="replace"), nl=False)
            reap_stale(project)
            run = job_run(project.db, run_id)
            if run is None or run["status"] not in ("queued", "running"):
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


@click.command()
@project_dir
@click.argument("run")
@click.option(
    "--alphas",
    default="0,0.25,0.5,0.75,1",
    show_default=True,
    help="Weights of the tuned model: 0 is the base, 1 the run's own model.",
)
@json_option
@handles_errors
def merge(directory: Path, run: str, alphas: str, as_json: bool) -> None:
    """Interpolate the base and RUN's weights at each alpha (LM-Cocktail), evaluate every mix on the held-out
    and general queries, and recommend the best one that does not forget general queries."""
    from engine.cli._common import ProgressBar
    from engine.train.merge import merge_run, parse_alphas

    project = open_project(directory)
    with ProgressBar() as bar:
        result = merge_run(project, run, parse_alphas(alphas), bar)
    emit(as_json, result, _merge_text(result))


def _merge_text(result: dict[str, Any]) -> str:
    lines = [f"{'alpha':>5}  {'nDCG@10':>8}  {'general':>8}  model", ""]
    for p in result["points"]:
        general = "—" if p["general_ndcg@10"] is None else f"{p['general_ndcg@10']:.4f}"
        flag = "  regresses on general queries" if p["general_regressing"] else ""
        star = " ★" if p["alpha"] == result["recommended"] else ""
        lines.append(f"{p['alpha']:>5.2f}  {p['ndcg@10']:>8.4f}  {general:>8}  {p['model']}{star}{flag}")
    if result["recommended"] is not None:
        model = next(p["model"] for p in result["points"] if p["alpha"] == result["recommended"])
        lines += ["", f"Recommended: alpha {result['recommended']} (model {model}); index it with "
                  f"`embtune index DIR --model {model}`."]  # fmt: skip
    return "\n".join(lines)
