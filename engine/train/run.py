"""Fine-tuning the embedder: checking the flags, the pre-flight plan, starting/resuming a detached run, the run.

`start_training` records a queued 'train' run (its settings and the plan) and launches the detached worker
(engine.jobs.launcher); the worker calls `execute`, which loads the base model, fits max_seq_length to the data and
trains with sentence-transformers' SentenceTransformerTrainer (the first real step is timed: the ETA):
MultipleNegativesRankingLoss with the recipe's in-batch terms and topic-aware batches (engine.train.recipe;
CachedMNRL and Matryoshka as options), warmup, seeded; when the train split is large enough for a dev slice of
training.dev_min_queries queries, dev evaluation keeps the best checkpoint (dev nDCG@10), else the last step.
The result is models/run-<id>: a plain sentence-transformers folder (safetensors, model card written offline).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import EmbtuneError
from engine.jobs import launcher as jobs
from engine.project import Project
from engine.store import corpus, runs
from engine.store import jobs as store
from engine.train.dataset import TrainData, TrainingDataError, build_data, duplicates_per_batch
from engine.train.settings import (
    BATCHES,
    IN_BATCH,
    LOSSES,
    PRECISIONS,
    SMALL_SET_ROWS,
    TrainSettings,
    auto_batch_size,
    parse_watch,
)

EVALS_PER_RUN = 4  # a run shorter than eval_steps is still evaluated this often, so there is a best to keep


class TrainingError(EmbtuneError):
    """A training request that cannot run (no data, unknown run, a run that cannot be resumed)."""


def settings_for(project: Project, **overrides: Any) -> TrainSettings:
    """project.yaml's training: section and the project seed, with the given (non-None) overrides on top."""
    given = {"seed": project.config.seed} | {k: v for k, v in overrides.items() if v is not None}
    settings = dataclasses.replace(project.config.training, **given)
    if settings.batch_size is None:  # chosen from the data: a small set needs the steps of a smaller batch
        settings.batch_size = auto_batch_size(corpus.training_pair_count(project.db))
    _check(settings)
    return settings


def _check(s: TrainSettings) -> None:
    """The flags' own checks (project.yaml's values were checked with their line numbers when it loaded)."""
    if s.loss not in LOSSES:
        raise TrainingError(f"--loss must be one of {', '.join(LOSSES)}, got {s.loss!r}")
    if s.precision not in PRECISIONS:
        raise TrainingError(f"--precision must be one of {', '.join(PRECISIONS)}, got {s.precision!r}")
    for name in ("epochs", "batch_size"):
        if getattr(s, name) < 1:
            raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(s, name)}")
    if s.max_steps is not None and s.max_steps < 1:
        raise TrainingError(f"--max-steps must be at least 1, got {s.max_steps}")
    if not 0.0 < s.learning_rate < 1.0:
        raise TrainingError(f"--lr must be between 0 and 1, got {s.learning_rate}")
    if s.in_batch not in IN_BATCH:
        raise TrainingError(f"training.in_batch must be one of {', '.join(IN_BATCH)}, got {s.in_batch!r}")
    if s.batches not in BATCHES:
        raise TrainingError(f"training.batches must be one of {', '.join(BATCHES)}, got {s.batches!r}")
    if not 0.0 <= s.hardness <= 50.0:
        raise TrainingError(f"training.hardness must be between 0 and 50, got {s.hardness}")
    try:
        parse_watch(s.watch)
    except ValueError as e:
        raise TrainingError(f"--watch {e}") from None


def load_data(project: Project, s: TrainSettings) -> TrainData:
    try:
        return build_data(
            project.db,
            seed=s.seed,
            dev_fraction=s.dev_fraction,
            dev_max_queries=s.dev_max_queries,
            dev_corpus_max=s.dev_corpus_max,
            hard_negatives=s.hard_negatives,
            dev_min_queries=s.dev_min_queries,
        )
    except TrainingDataError as e:
        raise TrainingError(str(e)) from e


def schedule(s: TrainSettings, rows: int, has_dev: bool, selects: bool = True) -> dict[str, int]:
    """Optimizer steps, and when to evaluate and save.

    A dev slice that chooses the checkpoint is evaluated on schedule, with a save at every evaluation so the best
    can be kept. Watched queries (`selects` False) follow training.watch: every N steps, off (eval_steps 0), or
    auto, where the trainer asks at every step (eval_steps 1) and engine.train.watch's budget decides."""
    per_epoch = max(1, math.ceil(rows / s.batch_size))  # as the no-duplicates sampler counts its batches
    total = s.max_steps or per_epoch * s.epochs
    if has_dev and selects:
        eval_steps = min(s.eval_steps, max(1, math.ceil(total / EVALS_PER_RUN)))
        save_steps = eval_steps
    else:
        every = parse_watch(s.watch) if has_dev else 0
        eval_steps = 1 if every is None else every
        save_steps = min(s.save_steps, total)
    return {"steps_per_epoch": per_epoch, "max_steps": total, "eval_steps": eval_steps, "save_steps": save_steps}


def plan(project: Project, s: TrainSettings, data: TrainData | None = None) -> dict[str, Any]:
    """The pre-flight summary: data counts, duplicates per batch, steps and evaluations, memory (no torch)."""
    from engine.train.memory import plan_fields as memory_plan

    data = data or load_data(project, s)
    steps = schedule(s, data.rows, bool(data.dev_queries), data.selects_checkpoint)
    if data.rows < s.batch_size:
        raise TrainingError(
            f"{data.rows} training rows is fewer than one batch of {s.batch_size}: lower --batch-size or add pairs"
        )
    estimate = previous_step_seconds(project, s)
    return {
        **data.counts,
        **steps,
        "batch_size": s.batch_size,
        "epochs": s.epochs,
        "learning_rate": s.learning_rate,
        "loss": s.loss,
        "in_batch": s.in_batch,
        "batches": s.batches,
        "hardness": s.hardness,
        "hard_negatives": bool(data.negatives),
        "watch": watch_plan(s, data),
        "recipe": recipe_reasons(s, data, _auto_batch(project, s)),
        "columns": list(data.columns()),
        "data_hash": data.snapshot_hash(),
        "duplicates_per_batch": round(duplicates_per_batch(data, s.batch_size, s.seed), 2),
        "duplicates_per_batch_sampled": 0,  # the no-duplicates sampler's guarantee
        "estimated_seconds": round(estimate * steps["max_steps"]) if estimate else None,
        **memory_plan(project, s, data),  # memory_gb, fits, advice (engine.train.memory)
    }


def watch_plan(s: TrainSettings, data: TrainData) -> dict[str, Any]:
    """What the run evaluates while it trains, and what that may cost (the pre-flight's `watch`)."""
    from engine.train.watch import WatchBudget

    if not data.dev_queries:
        return {"mode": "none", "budget_share": 0.0, "text": "no held-out queries to watch"}
    if data.selects_checkpoint:
        return {"mode": "dev slice", "budget_share": None, "text": "a dev slice chooses the checkpoint kept"}
    budget = WatchBudget.from_setting(s.watch)
    share = budget.share if budget.every is None else None
    return {"mode": s.watch, "budget_share": share, "text": budget.describe()}


def _auto_batch(project: Project, s: TrainSettings) -> int | None:
    """The row count the batch size was chosen from, when project.yaml left it to embtune and it was not overridden."""
    rows = corpus.training_pair_count(project.db)
    chosen = project.config.training.batch_size is None and s.batch_size == auto_batch_size(rows)
    return rows if chosen else None


def recipe_reasons(s: TrainSettings, data: TrainData, auto_batch_rows: int | None = None) -> list[str]:
    """Why the run trains the way it does, one line per choice (printed in the pre-flight)."""
    lines = []
    if auto_batch_rows is not None:
        why = "fewer" if auto_batch_rows < SMALL_SET_ROWS else "not fewer"
        lines.append(f"batch {s.batch_size}: {auto_batch_rows:,} pairs, {why} than {SMALL_SET_ROWS:,} (enough steps)")
    if s.in_batch == "gte":
        lines.append("loss terms: query→passage, passage→query, query→query, passage→passage (GTE)")
    if s.batches == "topic" and data.rows >= 2 * s.batch_size:
        lines.append("topic-aware batches: each batch from one cluster of similar queries (TAS-B)")
    if s.hardness > 0:
        lines.append(f"hardness-weighted in-batch negatives, strength {s.hardness:g} (Lan et al. 2025)")
    if data.negatives:
        lines.append("a mined hard negative per row (each step costs ~1.8x)")
    return lines


def dev_text(plan: dict[str, Any]) -> str:
    """What the run evaluates while it trains, and which step it keeps (the pre-flight's line)."""
    if plan["dev_queries"] and plan.get("dev_source", "train") == "train":
        return (
            f"dev slice: {plan['dev_queries']:,} train queries × {plan['dev_corpus']:,} passages, every "
            f"{plan['eval_steps']} steps; best checkpoint kept"
        )
    none = "no dev slice (too few train queries for its share of rows)"
    watch = plan.get("watch") or {}
    if plan["dev_queries"] and watch.get("mode") != "off":
        when = watch.get("text") or f"every {plan['eval_steps']} steps"
        return (
            f"{none}; watching {plan['dev_queries']:,} {plan['dev_source']} queries × {plan['dev_corpus']:,} "
            f"passages, {when} (never to choose: the last step is kept)"
        )
    return f"{none}: the last step is kept"


def previous_step_seconds(project: Project, s: TrainSettings) -> float | None:
    """The step time measured by the last run with the same batch size (its first step), for an early ETA."""
    for run in store.list_runs(project.db, limit=20):
        measured = (run["config"].get("preflight") or {}).get("step_seconds")
        if measured and run["config"].get("settings", {}).get("batch_size") == s.batch_size:
            return float(measured)
    return None


def start_training(
    project: Project,
    s: TrainSettings,
    *,
    launch: bool = True,
    launcher: list[str] | None = None,
    allow_parallel: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Record a queued run with its settings and plan, and launch its detached worker. Returns (run id, plan).

    Refused while another training run is queued or running, unless `allow_parallel`: two runs share the GPU and
    the data and usually mean a second click, not a plan."""
    jobs.reap_stale(project)  # a run whose process died must not hold the project
    summary = plan(project, s)
    config = {"settings": dataclasses.asdict(s), "plan": summary, "base_model": project.config.base_model}
    try:
        run_id = jobs.queue(project, store.TRAIN_KIND, config, alone=not allow_parallel)
    except store.RunConflict as e:
        raise TrainingError(f"{_busy(project, e)}, or start this one beside it with --allow-parallel") from None
    if launch:
        jobs.launch(project, run_id, launcher)
    return run_id, summary


def resume_training(project: Project, run_id: int, *, launch: bool = True) -> int:
    """A child run that continues `run_id` from its last checkpoint (same settings and data)."""
    jobs.reap_stale(project)
    parent = store.train_run(project.db, run_id)
    if parent is None:
        raise TrainingError(f"no training run {run_id} (see `embtune runs {project.root}`)")
    if parent["status"] in ("queued", "running", "finished"):
        raise TrainingError(
            f"run {run_id} is {parent['status']}: only a cancelled, failed or interrupted run can be resumed"
        )
    checkpoint = parent["checkpoint_path"]
    if not checkpoint or not (project.root / checkpoint).is_dir():
        raise TrainingError(f"run {run_id} left no checkpoint to resume from: start a new run (embtune train)")
    config = {**parent["config"], "resume_from": checkpoint, "resumed_run": run_id}
    try:  # one resume of a run, and one training run at a time: checked as the child is recorded
        child = jobs.queue(project, store.TRAIN_KIND, config, parent_id=run_id, alone=True)
    except store.RunConflict as e:
        if e.resumed:
            raise TrainingError(
                f"run {run_id} was already resumed by run {e.run_id}, which finished: its model is "
                f"models/run-{e.run_id}"
            ) from None
        raise TrainingError(f"{_busy(project, e)} before resuming run {run_id}") from None
    store.copy_metrics(project.db, run_id, child, _checkpoint_step(checkpoint))
    if launch:
        jobs.launch(project, child)
    return child


def _busy(project: Project, conflict: store.RunConflict) -> str:
    run_id, root = conflict.run_id, project.root
    return (
        f"run {run_id} is {conflict.status}: one training run at a time per project. Follow it "
        f"(`embtune logs {root} {run_id} --follow`), cancel it (`embtune cancel {root} {run_id}`)"
    )


def _checkpoint_step(path: str) -> int:
    return int(path.rstrip("/").rsplit("-", 1)[-1])


def wait(
    project: Project, run_id: int, on_event: Callable[[dict[str, Any]], None] | None = None, poll: float = 0.5
) -> dict[str, Any]:
    """Follow a run's events until it ends (reaping a dead worker); returns the run."""
    last = 0
    while True:
        for event in runs.run_events(project.db, run_id, last):
            last = event["id"]
            if on_event:
                on_event(event)
        run = store.train_run(project.db, run_id)
        assert run is not None
        if run["status"] not in ("queued", "running"):
            return run
        jobs.reap_stale(project)
        time.sleep(poll)


def outcome(project: Project, run: dict[str, Any]) -> dict[str, Any]:
    """The `train --wait --json` / `resume --wait --json` object."""
    result = run["result"] or {}
    return {
        "run_id": run["id"],
        "status": run["status"],
        "model_path": run["model_path"],
        "steps": result.get("steps", run["step"] or 0),
        "seconds": result.get("seconds"),
        "checkpoint_path": run["checkpoint_path"],
        "error": run["error"],
        "parent_id": run["parent_id"],
        "dev": result.get("dev"),
    }


# --- the worker's side ------------------------------------------------------------------------------------


def execute(project: Project, run_id: int, is_main: bool = True, echo: bool = False) -> dict[str, Any]:
    """Run a queued training run to its end in this process (the detached worker calls this)."""
    from engine.train.callbacks import Reporter

    run = store.train_run(project.db, run_id)
    if run is None:
        raise TrainingError(f"no training run {run_id}")
    if is_main and not store.mark_running(project.db, run_id, os.getpid()):
        return {"status": run["status"]}
    reporter = Reporter(project.db, run_id, str(project.root), is_main, echo)
    started = time.monotonic()
    try:
        result = _train(project, run_id, run["config"], reporter, is_main)
    except BaseException as e:
        reporter.flush()
        if is_main:
            store.end_run(
                project.db,
                run_id,
                "failed",
                {"seconds": round(time.monotonic() - started, 1)},
                f"{type(e).__name__}: {e}",
            )
        raise
    result["seconds"] = round(time.monotonic() - started, 1)
    if is_main:
        if result["status"] == "finished":
            runs.finish_model_run(project.db, run_id, result["model_path"], result)
        else:
            store.end_run(project.db, run_id, result["status"], result)
    return result


def _train(project: Project, run_id: int, config: dict[str, Any], reporter: Any, is_main: bool) -> dict[str, Any]:
    from engine.train.trainer import build_trainer, record
    from engine.train.watch import WatchBudget

    # a run stored before training.hardness existed trained (and resumes) without it
    s = TrainSettings(**{"hardness": 0.0, **config["settings"]})
    cancelled = lambda: store.cancel_requested(project.db, run_id)  # noqa: E731
    reporter.event("phase", {"phase": "preparing data"}, now=True)
    data = load_data(project, s)
    steps = schedule(s, data.rows, bool(data.dev_queries), data.selects_checkpoint)
    folder = jobs.run_dir(project, run_id)
    resume_from = config.get("resume_from")
    watch = WatchBudget.from_setting(s.watch)
    base = _BaseEncoder(project)

    def first_step(seconds: float) -> None:  # a real step, timed: the ETA, and a fast failure on memory
        nonlocal config
        watch.estimate(seconds, s.batch_size * len(data.columns()), len(data.dev_queries) + len(data.dev_corpus))
        if not s.smoke_step or resume_from:
            return
        preflight = {"step_seconds": round(seconds, 3), "estimated_seconds": round(seconds * steps["max_steps"], 1)}
        preflight |= steps
        if is_main:
            config = {**config, **record(project, s, data, steps, info), "preflight": preflight}
            store.update_config(project.db, run_id, config)
        reporter.event("preflight", preflight, now=True)

    if cancelled():
        return {"status": "cancelled", "steps": 0}
    trainer, info = build_trainer(
        project, s, data, steps, folder / "checkpoints", reporter, is_main,
        watch=watch, on_first_step=first_step, base_encoder=base,
    )  # fmt: skip
    if is_main:
        store.update_config(project.db, run_id, {**config, **record(project, s, data, steps, info)})
    if cancelled():
        return {"status": "cancelled", "steps": 0}
    if data.dev_queries and steps["eval_steps"] and not resume_from:
        try:
            _evaluate_base(trainer.model, data, base, watch, reporter, cancelled)
        except InterruptedError:
            return {"status": "cancelled", "steps": 0}
    reporter.event("phase", {"phase": "training"}, now=True)
    trainer.train(resume_from_checkpoint=str(project.root / resume_from) if resume_from else None)
    result = {
        "steps": int(trainer.state.global_step),
        "max_steps": steps["max_steps"],
        "checkpoint_path": store.train_run(project.db, run_id)["checkpoint_path"],
    }  # type: ignore[index]
    if reporter.cancelled:
        reporter.event("cancelled", {"step": result["steps"]}, now=True)
        return {**result, "status": "cancelled"}
    model_path = f"models/run-{run_id}"
    if is_main:
        reporter.event("phase", {"phase": "saving the model"}, now=True)
        trainer.model.save_pretrained(str(project.root / model_path))
    dev = _dev_summary(trainer, _base_dev(project, run_id))
    reporter.event("finished", {"model_path": model_path, "dev": dev}, now=True)
    if data.dev_queries and not data.selects_checkpoint:
        result["watch"] = watch.summary()
    return {**result, "status": "finished", "model_path": model_path, "dev": dev}


def _evaluate_base(
    model: Any, data: TrainData, base: _BaseEncoder, watch: Any, reporter: Any, cancelled: Callable[[], bool]
) -> None:
    """Step 0 of the curve: the base model on the evaluation queries, through the embedding cache."""
    reporter.event("phase", {"phase": "evaluating the base model"}, now=True)
    started = time.monotonic()
    metrics = base.metrics(model, data, cancelled)
    if not data.selects_checkpoint:  # part of the watching's budget (cheap when cached)
        watch.base_seconds = time.monotonic() - started
        watch.spent += watch.base_seconds
    reporter.metrics += [(k, "dev", 0, float(v)) for k, v in metrics.items()]
    reporter.event("eval", {"step": 0, "ndcg@10": float(metrics["ndcg@10"])}, now=True)


class _BaseEncoder:
    """The base model's encoder over the project's embedding cache (fingerprint and prompts as the gate's)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def key(self) -> tuple[str, Any]:
        from engine.models.encoder import encoding_key

        config = self.project.config
        return encoding_key(config.base_model, self.project.root, config.prompts)

    def __call__(self, model: Any) -> Any:
        from engine.models.encoder import Encoder

        fingerprint, prompts = self.key()
        return Encoder(model, fingerprint, int(model.max_seq_length), self.project.db, prompts=prompts)

    def metrics(self, model: Any, data: TrainData, cancelled: Callable[[], bool]) -> dict[str, float]:
        from engine.train.watch import base_metrics

        fingerprint, prompts = self.key()
        return base_metrics(model, fingerprint, data, self.project.db, prompts, cancelled)


def _base_dev(project: Project, run_id: int) -> float | None:
    rows = [
        v
        for key, split, step, v in store.metric_series(project.db, run_id)
        if (key, split, step) == ("ndcg@10", "dev", 0)
    ]
    return rows[0] if rows else None


def _dev_summary(trainer: Any, base: float | None) -> dict[str, Any] | None:
    """The dev nDCG@10 of the base model and of the checkpoint kept; a kept model worse than the base says so."""
    state = trainer.state
    if state.best_metric is None:
        return None
    best_step = int(Path(state.best_model_checkpoint).name.rsplit("-", 1)[-1]) if state.best_model_checkpoint else None
    summary = {
        "metric": "ndcg@10",
        "best": round(float(state.best_metric), 4),
        "best_step": best_step,
        "base": round(base, 4) if base is not None else None,
    }
    if base is not None and state.best_metric < base:
        summary["warning"] = "no checkpoint beat the base model on the dev slice: try more steps or a higher lr"
    return summary
