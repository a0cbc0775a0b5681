"""What `--model base|RUN|PATH` names: the project's base model, a training run's model, or a local folder.

Evaluation, re-indexing, search and export all take the same reference, so it is resolved in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import EmbtuneError
from engine.project import Project
from engine.store import runs


class ModelRefError(EmbtuneError):
    """The reference names no model this project can load."""


@dataclass(frozen=True)
class ModelRef:
    name: str  # as shown in reports: "base", "run 7", or the folder given
    spec: str  # what engine.models.resolve.resolve_model / open_encoder take (a path, package or cached id)
    run_id: int | None = None


def resolve_ref(project: Project, ref: str) -> ModelRef:
    """'base' → project.yaml's base_model; an integer or 'run-N' → that run's model folder; else a local folder."""
    text = ref.strip()
    if text == "base":
        return ModelRef("base", project.config.base_model)
    run_id = _run_number(text)
    if run_id is not None:
        return _from_run(project, run_id)
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        folder = project.root / folder if (project.root / folder).exists() else folder.resolve()
    if not folder.is_dir():
        raise ModelRefError(f"{ref!r} is neither 'base', a run id, nor a model folder (looked at {folder})")
    return ModelRef(text, str(folder))


def _run_number(text: str) -> int | None:
    digits = text.removeprefix("run-").removeprefix("run")
    return int(digits) if digits.isdigit() else None


def _from_run(project: Project, run_id: int) -> ModelRef:
    run = runs.model_run(project.db, run_id)
    if run is None:
        raise ModelRefError(f"run {run_id} has no model (see `embtune runs {project.root}`)")
    if run["status"] != "finished":
        raise ModelRefError(f"run {run_id} is {run['status']}, not finished: its model may be incomplete")
    path = project.root / run["model_path"]
    if not path.is_dir():
        raise ModelRefError(f"run {run_id}'s model folder {path} is missing")
    return ModelRef(f"run {run_id}", str(path), run_id)
