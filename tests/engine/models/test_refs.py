"""`--model base|RUN|PATH`: one resolver for eval, index, search and export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.models.refs import ModelRefError, resolve_ref
from engine.project import Project, init_project, open_project
from engine.store import runs


@pytest.fixture
def project(tmp_path: Path) -> Project:
    init_project(tmp_path / "p")
    return open_project(tmp_path / "p")


def _model_run(project: Project, source: Path, status: str = "finished") -> int:
    run_id = runs.create_run(project.db, "train", {})
    shutil.copytree(source, project.root / "models" / f"run-{run_id}")
    runs.finish_model_run(project.db, run_id, f"models/run-{run_id}", {})
    if status != "finished":
        runs.fail_run(project.db, run_id, "killed", status)
    return run_id


def test_base_names_the_configured_base_model(project: Project) -> None:
    ref = resolve_ref(project, "base")
    assert (ref.name, ref.spec, ref.run_id) == ("base", project.config.base_model, None)


def test_run_id_in_either_spelling_names_the_runs_model_folder(project: Project, tiny_embedder_path: Path) -> None:
    run_id = _model_run(project, tiny_embedder_path)
    for spelling in (str(run_id), f"run-{run_id}"):
        ref = resolve_ref(project, spelling)
        assert ref.run_id == run_id
        assert Path(ref.spec) == project.root / "models" / f"run-{run_id}"


def test_unfinished_or_unknown_runs_are_refused_with_the_reason(project: Project, tiny_embedder_path: Path) -> None:
    cancelled = _model_run(project, tiny_embedder_path, status="cancelled")
    with pytest.raises(ModelRefError, match="cancelled, not finished"):
        resolve_ref(project, str(cancelled))
    with pytest.raises(ModelRefError, match="run 99 has no model"):
        resolve_ref(project, "99")


def test_a_local_folder_is_taken_as_is_and_a_missing_one_is_an_error(
    project: Project, tiny_embedder_path: Path
) -> None:
    assert resolve_ref(project, str(tiny_embedder_path)).spec == str(tiny_embedder_path)
    with pytest.raises(ModelRefError, match="neither 'base', a run id, nor a model folder"):
        resolve_ref(project, "no/such/model")
