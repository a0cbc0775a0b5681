"""What the Train screen shows and asks, read from the store only (no torch): the runs table, one run's curves,
progress and log, whether a run can be resumed, and the settings form (its values, pre-flight and start).

Following is cheap: `watch` reads a one-row activity token and re-reads the runs (and the followed run's new
metrics and events) only when it changed; each poll asks for what is new since the last one (metrics after a step,
events after an id). Reading first marks dead workers as interrupted, so a run never shows as running forever.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from engine.jobs import launcher as jobs
from engine.project import Project
from engine.store import jobs as store
from engine.store import runs
from engine.train.callbacks import log_line
from engine.train.run import TrainingError, plan, settings_for, start_training
from engine.train.settings import TrainSettings

ACTIVE = ("queued", "running")
STOPPED = ("cancelled", "failed", "interrupted")  # the statuses resume_training accepts
EVAL_KEY = "ndcg@10"


@dataclass
class TrainUpdate:
    run: dict[str, Any] | None
    metrics: list[tuple[str, str, int, float]] = field(default_factory=list)  # new (key, split, step, value)
    events: list[dict[str, Any]] = field(default_factory=list)  # new events
    log: list[tuple[int, str]] = field(default_factory=list)  # new lines for the log pane: (event id, text)

    @property
    def active(self) -> bool:
        return self.run is not None and self.run["status"] in ACTIVE


@dataclass
class Watch:
    """One follow tick: the activity token, and (only when it changed) the runs and the followed run's news."""

    token: tuple[Any, ...]
    rows: list[dict[str, Any]] | None = None
    update: TrainUpdate | None = None


# --- a run's figures, as `embtune runs` counts them -----------------------------------------------------------


def steps_done(run: dict[str, Any]) -> int:
    """The last logged training step: the figure `embtune runs` prints, so the screen and the CLI agree."""
    return int(run["step"] or 0)


def max_steps(run: dict[str, Any]) -> int | None:
    config = run["config"]
    steps = config.get("schedule") or config.get("plan") or {}
    return steps.get("max_steps")


def eval_role(run: dict[str, Any]) -> str:
    """'select': the dev slice chooses the kept checkpoint; 'watch': held-out test/gate queries are only
    evaluated (the last step is kept); '': no evaluation during training."""
    planned = run["config"].get("plan") or {}
    if not planned.get("dev_queries") or (planned.get("watch") or {}).get("mode") == "off":
        return ""
    return "select" if planned.get("dev_source", "train") == "train" else "watch"


def eval_source(run: dict[str, Any]) -> str:
    return str((run["config"].get("plan") or {}).get("dev_source") or "train")


def cancelling(run: dict[str, Any]) -> bool:
    return run["status"] in ACTIVE and run["cancel_requested_at"] is not None


def duration_seconds(run: dict[str, Any], now: datetime | None = None) -> float | None:
    """Wall time from start to finish (to now while it runs); None before it started."""
    start = _time(run["started_at"])
    if start is None:
        return None
    end = _time(run["finished_at"]) or (now or datetime.now(timezone.utc))
    return max(0.0, (end - start).total_seconds())


def _time(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def resume_blocker(project: Project, run: dict[str, Any], listed: list[dict[str, Any]] | None = None) -> str | None:
    """Why `run` cannot be resumed (None: it can): the same rules as engine.train.run.resume_training, checked
    without recording anything, so the Train screen's `r` and Home's hint offer resume exactly when it works."""
    run_id, status = run["id"], run["status"]
    if status in ACTIVE:
        return f"it is {status}"
    if status not in STOPPED:
        return f"it {status}: only a cancelled, failed or interrupted run resumes"
    checkpoint = run["checkpoint_path"]
    if not checkpoint or not (project.root / checkpoint).is_dir():
        return "it stopped before its first checkpoint, so there is nothing to resume from"
    children = listed if listed is not None else store.list_runs(project.db)
    done = next((c for c in children if c["parent_id"] == run_id and c["status"] == "finished"), None)
    if done is not None:
        return f"it was already resumed by run {done['id']}, which finished"
    busy = next((c for c in children if c["status"] in ACTIVE), None)
    if busy is not None:
        return f"run {busy['id']} is {busy['status']} (one training run at a time)"
    return None


# --- the runs table ----------------------------------------------------------------------------------------


def metric_text(run: dict[str, Any], evals: tuple[float, float, int] | None, loss: float | None) -> str:
    """The table's metric: the best dev nDCG@10 when the dev slice chooses, the last watched one when held-out
    queries are only watched, else the last training loss."""
    role = eval_role(run)
    if evals and role == "select":
        return f"best {evals[0]:.4f}"
    if evals:
        return f"watched {evals[1]:.4f}"
    return f"loss {loss:.3f}" if loss is not None else "–"


def run_rows(project: Project) -> list[dict[str, Any]]:
    """Every training run, newest first, with what the table and the header show."""
    listed = store.list_runs(project.db)
    ids = [r["id"] for r in listed]
    evals = runs.eval_summaries(project.db, ids, EVAL_KEY)
    losses = runs.last_values(project.db, ids, "loss", "train")
    return [
        {
            "id": r["id"],
            "status": r["status"],
            "step": steps_done(r),
            "max_steps": max_steps(r),
            "metric": metric_text(r, evals.get(r["id"]), losses.get(r["id"])),
            "seconds": duration_seconds(r),
            "started": r["started_at"] or r["created_at"],
            "parent_id": r["parent_id"],
            "cancelling": cancelling(r),
            "resume_blocker": resume_blocker(project, r, listed),
            "run": r,
        }
        for r in listed
    ]


def pick_run(project: Project) -> int | None:
    """The run to show on open: a live one if any (re-attach), else the newest."""
    jobs.reap_stale(project)
    listed = store.list_runs(project.db, limit=50)
    live = [r for r in listed if r["status"] in ACTIVE]
    return (live or listed or [{"id": None}])[0]["id"]


# --- following ---------------------------------------------------------------------------------------------


def poll(project: Project, run_id: int, after_step: int = -1, after_event: int = 0) -> TrainUpdate:
    jobs.reap_stale(project)
    return _update(project, run_id, after_step, after_event)


def _update(project: Project, run_id: int, after_step: int, after_event: int) -> TrainUpdate:
    run = store.train_run(project.db, run_id)
    if run is None:
        return TrainUpdate(None)
    events = runs.run_events(project.db, run_id, after_event)
    log = [
        (e["id"], f"{e['ts'][11:19]} {log_line(e['kind'], e['payload'])}") for e in events if e["kind"] != "progress"
    ]
    return TrainUpdate(run, store.metric_series(project.db, run_id, after_step), events, log)


def watch(
    project: Project, run_id: int | None, after_step: int, after_event: int, token: tuple[Any, ...] | None
) -> Watch:
    """One tick of following every training run, whoever started it (this screen, `embtune train`, another TUI):
    two cheap reads while nothing changes."""
    jobs.reap_stale(project)
    now = runs.train_activity(project.db)
    if now == token:
        return Watch(now)
    update = _update(project, run_id, after_step, after_event) if run_id is not None else None
    return Watch(now, run_rows(project), update)


def worker_log(project: Project, run_id: int, tail: int = 40) -> list[str]:
    return jobs.read_log(project, run_id, tail)


# --- the settings form ---------------------------------------------------------------------------------------

FORM_FIELDS = {  # field → its label in errors (the form's order)
    "base_model": "base model",
    "epochs": "epochs",
    "max_steps": "max steps",
    "batch_size": "batch size",
    "learning_rate": "lr",
    "loss": "loss",
    "hard_negatives": "hard negatives",
    "precision": "precision",
    "max_seq_length": "sequence length",
}
OPTIONAL = ("max_steps", "max_seq_length", "batch_size")  # empty: epochs decide / fitted / chosen from the rows
MIN_SEQ = 8  # engine.config's lower bound for training.max_seq_length


def form_values(project: Project) -> dict[str, Any]:
    """The form prefilled from project.yaml (its training: section and base_model)."""
    s = project.config.training
    return {
        "base_model": project.config.base_model,
        "epochs": str(s.epochs),
        "max_steps": "" if s.max_steps is None else str(s.max_steps),
        "batch_size": "" if s.batch_size is None else str(s.batch_size),
        "learning_rate": f"{s.learning_rate:g}",
        "loss": s.loss,
        "hard_negatives": s.hard_negatives,
        "precision": s.precision,
        "max_seq_length": "" if s.max_seq_length is None else str(s.max_seq_length),
    }


def form_settings(project: Project, values: dict[str, Any]) -> TrainSettings:
    """The run's settings from the form's text: parsed here, then engine.train.run.settings_for's own checks.
    Errors (TrainingError) name the field as the form labels it."""
    overrides: dict[str, Any] = {
        "epochs": _number(values, "epochs", int),
        "max_steps": _number(values, "max_steps", int),
        "batch_size": _number(values, "batch_size", int),
        "learning_rate": _number(values, "learning_rate", float),
        "max_seq_length": _number(values, "max_seq_length", int),
        "loss": str(values.get("loss") or "") or None,
        "precision": str(values.get("precision") or "") or None,
        "hard_negatives": bool(values.get("hard_negatives", True)),
    }
    base = str(values.get("base_model") or "").strip() or project.config.base_model
    if base != project.config.base_model:
        if "base_model" not in {f.name for f in dataclasses.fields(TrainSettings)}:
            raise TrainingError(
                f"base model: a run trains project.yaml's base_model ({project.config.base_model}); "
                f"to train {base}, set base_model in {project.root / 'project.yaml'}"
            )
        overrides["base_model"] = base
    s = settings_for(project, **overrides)
    cleared = {name: None for name in OPTIONAL if not str(values.get(name) or "").strip()}
    s = dataclasses.replace(s, **cleared)  # an empty field means "none", not "project.yaml's value"
    if s.max_seq_length is not None and s.max_seq_length < MIN_SEQ:
        raise TrainingError(f"sequence length must be at least {MIN_SEQ} (or empty: fitted), got {s.max_seq_length}")
    return s


def _number(values: dict[str, Any], name: str, kind: type[int] | type[float]) -> Any:
    text = str(values.get(name) or "").strip().replace("_", "")
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        empty = " (or empty)" if name in OPTIONAL else ""
        raise TrainingError(f"{FORM_FIELDS[name]}: expected {what}{empty}, got {text!r}") from None


def preflight(project: Project, values: dict[str, Any]) -> dict[str, Any]:
    """The form's pre-flight (engine.train.run.plan: SQL, no torch) and the base model found offline."""
    from engine.models.resolve import resolve_model

    s = form_settings(project, values)
    base = str(getattr(s, "base_model", None) or project.config.base_model)
    resolve_model(base, project.root)  # an unknown model is an error here, not in the worker
    return {**plan(project, s), "base_model": base, "epochs": s.epochs, "learning_rate": s.learning_rate}


def start(project: Project, values: dict[str, Any]) -> int:
    """Start a detached run with the form's settings; returns its id."""
    return start_training(project, form_settings(project, values))[0]
