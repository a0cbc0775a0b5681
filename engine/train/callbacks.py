"""The trainer's reporter: metrics per logged step, events, checkpoints and cancel, all through the store.

Writes are buffered and flushed about once a second (and at every evaluation, checkpoint and the end), so a
fast run on a GPU does not pay a SQLite commit per step. While another process holds the write lock (a big import),
a flush gives up after FLUSH_PATIENCE and keeps its buffer for the next one: training goes on, nothing is lost; only
the end of training waits for the lock, however long it lasts. Cancel is polled at every step end (one indexed read);
when requested, the step's checkpoint is saved and training stops: latency is one optimizer step.
transformers is imported lazily: the class is built on first use so importing this module stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.store import jobs as store
from engine.store._sqlite_utils import Database
from engine.store.db import StoreBusy, write
from engine.train.watch import WatchBudget

FLUSH_SECONDS = 1.0
FLUSH_PATIENCE = 0.25  # seconds a step-end flush may wait for the write lock before training goes on
EVAL_PREFIXES = ("eval_dev_cosine_", "eval_dev_", "eval_")
TRAIN_KEYS = {"loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm"}


def metric_rows(logs: dict[str, Any], step: int) -> list[store.MetricRow]:
    """Trainer log dicts as (key, split, step, value): train loss/lr under 'train', evaluator keys under 'dev'."""
    rows: list[store.MetricRow] = []
    for name, value in logs.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if name in TRAIN_KEYS:
            rows.append((TRAIN_KEYS[name], "train", step, float(value)))
        elif name.startswith("eval_") and not name.endswith(("_runtime", "_per_second")) and name != "eval_loss":
            key = next(name.removeprefix(p) for p in EVAL_PREFIXES if name.startswith(p))
            rows.append((key, "dev", step, float(value)))
    return rows


def log_line(kind: str, payload: dict[str, Any]) -> str:
    """One event as a short line (worker log, Train screen's log pane)."""
    if kind == "phase":
        return f"{payload['phase']}…"
    if kind == "eval":
        return f"step {payload['step']}: held-out nDCG@10 {payload.get('ndcg@10', float('nan')):.4f}"
    if kind == "preflight":
        return f"first step {payload['step_seconds']:.2f} s; about {payload['estimated_seconds']:.0f} s to train"
    if kind == "progress":
        return f"step {payload['step']}/{payload['max_steps']} · {payload['steps_per_s']:.2f} steps/s"
    details = " ".join(f"{k}={v}" for k, v in payload.items())
    return f"{kind} {details}".strip()


class Reporter:
    """Buffers metrics and events for one run and knows when a cancel was asked for."""

    def __init__(self, db: Database, run_id: int, root: str, is_main: bool = True, echo: bool = False) -> None:
        self.db, self.run_id, self.root, self.is_main, self.echo = db, run_id, root, is_main, echo
        self.metrics: list[store.MetricRow] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.checkpoint: str | None = None  # the newest checkpoint, until it is written
        self.last_flush = 0.0
        self.cancelled = False
        self.training = False  # between on_train_begin and on_train_end
        self.started = time.monotonic()
        self.start_step = 0

    def event(self, kind: str, payload: dict[str, Any], now: bool = False) -> None:
        self.events.append((kind, payload))
        if self.echo and self.is_main and kind != "progress":  # the worker log reads as the run's story
            print(f"{time.strftime('%H:%M:%S')} {log_line(kind, payload)}", flush=True)
        if now:  # inside the trainer's loop a held lock must not stall steps; outside it, waiting costs nothing
            self.flush(wait=not self.training)

    def flush(self, wait: bool = True) -> bool:
        """Write what is buffered; with wait=False, keep it (False) when the lock stays held past FLUSH_PATIENCE."""
        self.last_flush = time.monotonic()
        if self.is_main and (self.metrics or self.events or self.checkpoint):
            try:
                with write(self.db, patience=None if wait else FLUSH_PATIENCE):
                    if self.checkpoint:
                        store.set_checkpoint(self.db, self.run_id, self.checkpoint)
                    store.flush(self.db, self.run_id, self.metrics, self.events)
            except StoreBusy:
                return False
        self.metrics, self.events, self.checkpoint = [], [], None
        return True

    def maybe_flush(self) -> None:
        if time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush(wait=False)

    def progress(self, step: int, max_steps: int) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        done = step - self.start_step
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        eta = (max_steps - step) / rate if rate else None
        return {
            "step": step,
            "max_steps": max_steps,
            "steps_per_s": round(rate, 4),
            "eta_s": round(eta, 1) if eta is not None else None,
            "elapsed_s": round(elapsed, 1),
        }


def _agreed(args: Any, requested: bool) -> bool:
    """Under torchrun/accelerate every rank must stop at the same step (else DDP's collectives hang): rank 0's
    answer is broadcast. A single process just returns its own."""
    if getattr(args, "world_size", 1) <= 1:
        return requested
    import torch
    import torch.distributed as dist

    flag = torch.tensor([int(requested)], device=args.device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def make_callback(
    reporter: Reporter,
    is_main: bool = True,
    watch: WatchBudget | None = None,
    on_first_step: Callable[[float], None] | None = None,
) -> Any:
    """A TrainerCallback feeding `reporter`. Only the main process writes; every process polls cancel.

    `watch` gates the trainer's evaluations (watched runs: a time budget; see engine.train.watch); `on_first_step`
    gets the first optimizer step's wall time: that real step is the pre-flight's measure (no step is thrown away).
    """
    from transformers import TrainerCallback

    clock = {"step": 0.0, "eval": 0.0}

    class StoreCallback(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            reporter.started = time.monotonic()
            reporter.training = True
            reporter.start_step = state.global_step
            if is_main:
                reporter.event("train_begin", {"step": state.global_step, "max_steps": state.max_steps}, now=True)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == reporter.start_step:
                clock["step"] = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            now = time.monotonic()
            if state.global_step == reporter.start_step + 1 and on_first_step is not None:
                on_first_step(now - clock["step"])
            if watch is not None and control.should_evaluate:
                # the trainer asks at every eval step; the budget says whether this one is worth its time
                train_seconds = now - reporter.started - watch.spent
                control.should_evaluate = watch.due(state.global_step, state.max_steps, train_seconds)
                clock["eval"] = now
            if not reporter.cancelled and _agreed(
                args, is_main and store.cancel_requested(reporter.db, reporter.run_id)
            ):
                reporter.cancelled = True
                control.should_save = True
                control.should_training_stop = True
                if is_main:
                    reporter.event("cancelling", {"step": state.global_step}, now=True)
            elif state.global_step >= state.max_steps and not args.load_best_model_at_end:
                # the final model is saved whole right after; a last checkpoint (optimizer state too) would
                # only cost time and disk, since a finished run is never resumed
                control.should_save = False
            if is_main and time.monotonic() - reporter.last_flush >= FLUSH_SECONDS:
                reporter.event("progress", reporter.progress(state.global_step, state.max_steps))
                reporter.flush(wait=False)

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if is_main and logs:
                reporter.metrics += metric_rows(logs, state.global_step)

        def on_evaluate(
            self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if watch is not None:
                watch.record(time.monotonic() - clock["eval"])
            if is_main and metrics:
                rows = metric_rows(metrics, state.global_step)
                reporter.metrics += rows
                reporter.event("eval", {"step": state.global_step, **{k: v for k, _, _, v in rows}}, now=True)

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not is_main:
                return
            path = f"{args.output_dir}/checkpoint-{state.global_step}"
            relative = path.removeprefix(reporter.root.rstrip("/") + "/")
            reporter.checkpoint = relative  # written with the buffer: a held lock must not stall training
            reporter.event("checkpoint", {"step": state.global_step, "path": relative}, now=True)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            reporter.training = False
            if is_main:
                reporter.event("progress", reporter.progress(state.global_step, state.max_steps))
                reporter.flush()

    return StoreCallback()
