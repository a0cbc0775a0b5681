"""The guide's model families through embtune: BERT (MiniLM), XLM-RoBERTa (bge-m3, multilingual-e5) and a Qwen3
decoder (Qwen3-Embedding: last-token pooling, left padding, EOS) each load, train two steps, evaluate, index and
search; the decoder also trains as a LoRA adapter from the command line, and exports merged or as the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.train.merge import interpolate
from engine.train.run import execute, settings_for, start_training
from tests.projects import cli, make_project

FAMILIES = {"bert": "tiny_embedder_path", "xlm-roberta": "tiny_xlmr_path", "qwen3": "tiny_qwen3_path"}


def _vectors(folder: Path, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode_document(texts, normalize_embeddings=True)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_trains_evaluates_indexes_and_searches(
    family: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    base = request.getfixturevalue(FAMILIES[family])
    project = make_project(tmp_path, base)
    root = project.root
    run_id, _ = start_training(project, settings_for(project, batch_size=8, max_steps=2), launch=False)
    result = execute(project, run_id)
    assert result["status"] == "finished", result
    tuned = root / result["model_path"]
    texts = ["The salvage rule applies at stage 3.", "short"]
    assert not np.allclose(_vectors(base, texts), _vectors(tuned, texts), atol=1e-5)  # two real steps changed it

    code, out = cli("eval", root, "--models", f"base,run-{run_id}", "--split", "gate", "--json")
    assert code == 0, out
    models = json.loads(out)["models"]
    assert {"base", f"run {run_id}"} <= set(models)
    assert 0.0 <= models[f"run {run_id}"]["ndcg@10"] <= 1.0
    code, out = cli("index", root, "--model", f"run-{run_id}", "--wait", "--json")
    assert code == 0, out
    code, out = cli("search", root, "when do we use salvage", "--k", "3", "--json")
    assert code == 0
    assert len(json.loads(out)["hits"]) == 3


def test_qwen3_with_lora_and_prompts_from_the_command_line(tiny_qwen3_path: Path, tmp_path: Path) -> None:
    """The command contract: `embtune train DIR --adapter lora --max-steps 2 --wait --json` (a detached worker)."""
    project = make_project(tmp_path, tiny_qwen3_path)
    root = project.root
    with (root / "project.yaml").open("a") as f:
        f.write("prompts:\n  task: Given a question about insurance, retrieve the rule that answers it\n")
        f.write("training:\n  adapter: {kind: lora, r: 4, alpha: 8}\n  batch_size: 8\n")
    code, out = cli("train", root, "--dry-run", "--json")
    assert code == 0
    planned = json.loads(out)
    assert planned["memory_gb"] > 0
    assert planned["fits"] is True
    assert planned["memory"]["trainable_parameters"] < planned["memory"]["parameters"] / 2  # LoRA: a fraction

    code, out = cli("train", root, "--adapter", "lora", "--max-steps", "2", "--wait", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["status"] == "finished", result
    folder = root / result["model_path"]
    adapter = json.loads((folder / "adapter_config.json").read_text())
    assert adapter["r"] == 4  # project.yaml's adapter settings, switched on by --adapter lora
    assert not (folder / "model.safetensors").exists()  # the run holds the adapter, not a copy of the base
    saved = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert saved["prompts"]["query"].startswith("Instruct: Given a question about insurance")

    code, out = cli("eval", root, "--models", f"base,run-{result['run_id']}", "--split", "gate", "--json")
    assert code == 0, out
    assert cli("index", root, "--model", f"run-{result['run_id']}", "--wait", "--json")[0] == 0

    texts = ["The waiver rule applies at stage 20."]
    code, out = cli("export", root, f"run-{result['run_id']}", tmp_path / "merged", "--json")
    assert code == 0, out
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    np.testing.assert_allclose(_vectors(tmp_path / "merged", texts), _vectors(folder, texts), atol=1e-5)
    code, out = cli("export", root, f"run-{result['run_id']}", tmp_path / "adapter", "--adapter", "keep", "--json")
    assert code == 0, out
    assert json.loads(out)["adapter"] is True
    np.testing.assert_allclose(_vectors(tmp_path / "adapter", texts), _vectors(folder, texts), atol=1e-5)

    # the merge slider folds the adapter in before it interpolates: α = 1 is the run's model
    np.testing.assert_allclose(
        _vectors(interpolate(tiny_qwen3_path, folder, 1.0, tmp_path / "alpha-1"), texts),
        _vectors(folder, texts),
        atol=1e-5,
    )
