"""The merge slider on tiny real models: the interpolation is exact, and `embtune merge` evaluates every mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.store import runs
from engine.train.merge import MergeError, MergePoint, interpolate, parse_alphas, recommend
from tests.evalmodels import make_eval_project, register_run


def state(path: Path) -> dict:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu").state_dict()


def test_interpolation_is_exact_at_both_ends_and_the_mean_halfway(
    tiny_embedder_path: Path, tuned_model: Path, tmp_path: Path
) -> None:
    import torch

    base, tuned = state(tiny_embedder_path), state(tuned_model)
    for alpha, expected in ((0.0, base), (1.0, tuned)):
        merged = state(interpolate(tiny_embedder_path, tuned_model, alpha, tmp_path / f"a{alpha}"))
        assert all(torch.equal(merged[k], expected[k]) for k in expected)
    half = state(interpolate(tiny_embedder_path, tuned_model, 0.5, tmp_path / "half"))
    floats = [k for k, v in tuned.items() if v.is_floating_point()]
    assert floats
    for name in floats:
        assert torch.allclose(half[name], (base[name] + tuned[name]) / 2, atol=1e-6), name
    assert not (tmp_path / "half.partial").exists()


def test_different_architectures_are_refused(tmp_path: Path) -> None:
    import torch

    from engine.train.merge import _check_same_shape

    with pytest.raises(MergeError, match="shape"):
        _check_same_shape({"w": torch.zeros(2, 3)}, {"w": torch.zeros(3, 2)})
    with pytest.raises(MergeError, match="architecture"):
        _check_same_shape({"w": torch.zeros(2)}, {"v": torch.zeros(2)})


def test_alphas_are_checked() -> None:
    assert parse_alphas("1, 0,0.5,0.5") == [0.0, 0.5, 1.0]
    for bad in ("", "a", "1.5", "-0.1"):
        with pytest.raises(MergeError):
            parse_alphas(bad)


def test_the_recommendation_is_the_best_domain_score_that_does_not_forget() -> None:
    points = [
        MergePoint(0.0, "base", 0.50, 0.80, False),
        MergePoint(0.5, "3", 0.58, 0.79, False),
        MergePoint(1.0, "1", 0.60, 0.70, True),
    ]
    assert recommend(points) == 0.5
    assert recommend(points[:1]) == 0.0
    assert recommend([]) is None


def test_merge_command_evaluates_each_mix_and_registers_it_as_a_model(
    tmp_path: Path, tiny_embedder_path: Path, tuned_model: Path
) -> None:
    project = make_eval_project(tmp_path, tiny_embedder_path)
    run_id = register_run(project, tuned_model)
    result = CliRunner().invoke(main, ["merge", str(project.root), str(run_id), "--alphas", "0,0.5,1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [p["alpha"] for p in out["points"]] == [0.0, 0.5, 1.0]
    assert {"alpha", "ndcg@10", "general_ndcg@10", "model"} <= set(out["points"][1])
    assert out["points"][0]["model"] == "base"
    assert out["points"][2]["model"] == str(run_id)
    merged = int(out["points"][1]["model"])
    stored = runs.model_run(project.db, merged)
    assert stored is not None
    assert (stored["kind"], stored["status"]) == ("merge", "finished")
    assert (project.root / stored["model_path"] / "model.safetensors").is_file()
    assert out["recommended"] in {0.0, 0.5, 1.0}
    assert out["points"][1]["general_ndcg@10"] is not None  # the eval project has general queries


def test_merge_finds_the_base_model_as_every_command_does(
    tmp_path: Path, tiny_embedder_path: Path, tuned_model: Path
) -> None:
    """base_model as project.yaml may name it (here a folder relative to the project, not to the working
    directory); a pip-packaged id resolves through the same resolve_model."""
    import shutil

    project = make_eval_project(tmp_path, tiny_embedder_path)
    shutil.copytree(tiny_embedder_path, project.root / "base-model")
    config = (project.root / "project.yaml").read_text().replace(str(tiny_embedder_path), "base-model")
    (project.root / "project.yaml").write_text(config)
    run_id = register_run(project, tuned_model)
    result = CliRunner().invoke(main, ["merge", str(project.root), str(run_id), "--alphas", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    merged = runs.model_run(project.db, int(json.loads(result.stdout)["points"][0]["model"]))
    assert merged is not None
    assert merged["status"] == "finished"


def test_the_chosen_alpha_is_what_a_new_index_build_is_offered_until_a_newer_run(tmp_path: Path) -> None:
    from engine.index.build import suggested_model
    from engine.project import init_project
    from engine.train.merge import SWEEP_KIND, choose_alpha, chosen_model

    project = init_project(tmp_path / "project")
    with pytest.raises(MergeError, match="no merge has finished"):
        choose_alpha(project, 0.5)
    trained = runs.create_run(project.db, "train", {})
    runs.finish_model_run(project.db, trained, "models/run-1", {})
    assert suggested_model(project) == f"run-{trained}"
    sweep = runs.create_run(project.db, SWEEP_KIND, {})
    points = [MergePoint(a, m, 0.5 + a / 10, 0.8, False).to_json() for a, m in ((0.0, "base"), (0.5, "7"), (1.0, "1"))]
    runs.finish_run(project.db, sweep, {"points": points, "sweep_run": sweep, "chosen": None}, [], [])
    assert chosen_model(project) is None
    assert suggested_model(project) == f"run-{trained}"
    with pytest.raises(MergeError, match=r"alpha 0\.25 was not measured"):
        choose_alpha(project, 0.25)
    assert choose_alpha(project, 0.5)["chosen"] == 0.5
    assert chosen_model(project) == "7"
    assert suggested_model(project) == "run-7"
    choose_alpha(project, 0.0)
    assert suggested_model(project) == "base"
    newer = runs.create_run(project.db, "train", {})  # a run trained after the merge supersedes the choice
    runs.finish_model_run(project.db, newer, "models/run-9", {})
    assert suggested_model(project) == f"run-{newer}"
    project.close()
