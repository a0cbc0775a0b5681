"""Prompts: one resolution (project.yaml over the model's own), applied to every encode call of every path.

The path test spies on SentenceTransformer.encode (every other encode method ends there) on a tiny
Qwen3-Embedding-shaped model whose query prompt is its own and whose document prompt comes from project.yaml:
gate, mining, training (its dev and watch evaluations, and the collator that tokenizes each training column),
evaluation, indexing, search and export must all use exactly those prompts. Dropping them anywhere fails it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.config import ConfigError, config_from_dict
from engine.models.encoder import open_encoder
from engine.models.prompts import INSTRUCT, Prompts, prompt_warning, resolve_prompts
from engine.project import Project, open_project
from engine.train.run import execute, settings_for, start_training
from tests.projects import cli, make_project
from tests.tinymodels import QWEN_QUERY_PROMPT, build_tiny_qwen3_embedder

DOC_PROMPT = "passage: "


def test_project_prompts_override_the_models_and_task_builds_the_instruction(tiny_qwen3_path: Path) -> None:
    own = resolve_prompts({}, tiny_qwen3_path)
    assert (own.query, own.document, own.source) == (QWEN_QUERY_PROMPT, "", "model")
    mixed = resolve_prompts({"document": DOC_PROMPT}, tiny_qwen3_path)
    assert (mixed.query, mixed.document, mixed.source) == (QWEN_QUERY_PROMPT, DOC_PROMPT, "project+model")
    task = resolve_prompts({"task": "Given a claim, retrieve the clause"}, tiny_qwen3_path)
    assert task.query == INSTRUCT.format(task="Given a claim, retrieve the clause")
    assert resolve_prompts({"query": "", "task": "ignored"}, tiny_qwen3_path).query == ""  # explicit "" wins
    assert resolve_prompts({}, None) == Prompts()


def test_default_prompt_name_applies_to_both_roles(tmp_path: Path, tiny_embedder_path: Path) -> None:
    import shutil

    folder = shutil.copytree(tiny_embedder_path, tmp_path / "m")
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    config |= {"prompts": {"retrieval": "search: "}, "default_prompt_name": "retrieval"}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    chosen = resolve_prompts(None, folder)
    assert (chosen.query, chosen.document) == ("search: ", "search: ")


def test_prompts_config_is_validated_with_its_line() -> None:
    assert config_from_dict({"prompts": {"query": "q: ", "document": ""}}).prompts == {"query": "q: ", "document": ""}
    with pytest.raises(ConfigError, match=r"'prompts\.querry' is not a prompt role"):
        config_from_dict({"prompts": {"querry": "q: "}})
    with pytest.raises(ConfigError, match=r"'prompts\.task' must describe"):
        config_from_dict({"prompts": {"task": "  "}})


def test_a_model_that_needs_prompts_warns_without_them(tmp_path: Path) -> None:
    bare = build_tiny_qwen3_embedder(tmp_path / "Qwen3-Embedding-0.6B-copy", prompts={})
    assert "expects an instruction" in (
        prompt_warning("Qwen3-Embedding-0.6B-copy", bare, resolve_prompts({}, bare)) or ""
    )
    assert prompt_warning("intfloat/multilingual-e5-large-instruct", None, Prompts()) is not None
    assert prompt_warning("BAAI/bge-m3", None, Prompts()) is None  # needs none
    configured = resolve_prompts({"task": "Given a question, retrieve answers"}, bare)
    assert prompt_warning("Qwen3-Embedding-0.6B-copy", bare, configured) is None


def test_the_query_prompt_changes_vectors_and_the_cache_key(tiny_qwen3_path: Path) -> None:
    with_own = open_encoder(str(tiny_qwen3_path))
    without = open_encoder(str(tiny_qwen3_path), prompts={"query": ""})
    texts = ["how do I file a claim for roof damage"]
    a, b = with_own.encode(texts, "query"), without.encode(texts, "query")
    assert float(a[0] @ b[0]) < 0.99  # measurably different: a dropped prompt would show
    assert with_own.fingerprint != without.fingerprint  # the cache never hands one the other's vectors
    np.testing.assert_allclose(with_own.encode(texts, "document"), without.encode(texts, "document"), atol=1e-6)


# --- every path -------------------------------------------------------------------------------------------


@pytest.fixture
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, str | None]]:
    """(task, the prompt that encode resolved) of every SentenceTransformer.encode call in this process."""
    from sentence_transformers import SentenceTransformer

    calls: list[tuple[str | None, str | None]] = []
    original = SentenceTransformer.encode

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        prompt = self._resolve_prompt(kwargs.get("prompt"), kwargs.get("prompt_name"))
        calls.append((kwargs.get("task"), prompt))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", spy)
    return calls


def _expect(calls: list[tuple[str | None, str | None]], prompts: Prompts, what: str) -> None:
    assert calls, f"{what}: no encode call seen"
    wrong = [c for c in calls if c[0] not in ("query", "document") or (c[1] or "") != prompts.for_role(c[0])]
    assert not wrong, f"{what}: encode calls without the resolved prompt: {wrong[:3]}"
    calls.clear()


@pytest.fixture
def qwen_project(tmp_path: Path, tiny_qwen3_path: Path) -> Project:
    made = make_project(tmp_path, tiny_qwen3_path, train_per_doc=3)
    made.close()
    with (made.root / "project.yaml").open("a") as f:
        f.write(f"prompts:\n  document: '{DOC_PROMPT}'\ntraining:\n  dev_min_queries: 10\n")
    project = open_project(made.root)
    yield project
    project.close()


def test_every_path_encodes_with_the_resolved_prompts(
    qwen_project: Project, encode_calls: list[tuple[str | None, str | None]], tmp_path: Path
) -> None:
    project, root = qwen_project, qwen_project.root
    prompts = resolve_prompts(project.config.prompts, Path(project.config.base_model))
    assert prompts.query == QWEN_QUERY_PROMPT
    assert prompts.document == DOC_PROMPT
    assert cli("gate", root, "--json")[0] in (0, 1)
    _expect(encode_calls, prompts, "gate")
    assert cli("mine", root, "--json")[0] == 0
    _expect(encode_calls, prompts, "mine")

    settings = settings_for(project, batch_size=8, max_steps=2, adapter={"kind": "lora", "r": 4})
    run_id, _ = start_training(project, settings, launch=False)
    assert execute(project, run_id)["status"] == "finished"
    _expect(encode_calls, prompts, "training's evaluations")
    saved = json.loads((root / f"models/run-{run_id}/config_sentence_transformers.json").read_text())
    assert saved["prompts"] == prompts.as_dict()  # the run's model carries them

    # the tuned model's first use encodes (a later one may read the embedding cache, keyed by the prompts too)
    assert cli("index", root, "--model", f"run-{run_id}", "--wait", "--json")[0] == 0
    _expect(encode_calls, prompts, "index")
    code, _ = cli("eval", root, "--models", f"base,run-{run_id}", "--split", "gate", "--json")
    assert code == 0
    _expect(encode_calls, prompts, "eval")
    code, out = cli("search", root, "when do we use waiver", "--json")
    assert code == 0
    assert json.loads(out)["hits"]
    _expect(encode_calls, prompts, "search")

    code, out = cli("export", root, f"run-{run_id}", tmp_path / "export", "--json")
    assert code == 0
    exported = json.loads((tmp_path / "export" / "config_sentence_transformers.json").read_text())
    assert exported["prompts"] == prompts.as_dict()
    assert DOC_PROMPT in (tmp_path / "export" / "README.md").read_text()


def test_the_training_collator_prepends_the_prompts(qwen_project: Project, tmp_path: Path) -> None:
    from engine.train.run import load_data, schedule
    from engine.train.trainer import build_trainer

    project = qwen_project
    settings = settings_for(project, batch_size=8, max_steps=2)
    data = load_data(project, settings)
    steps = schedule(settings, data.rows, bool(data.dev_queries), data.selects_checkpoint)
    trainer, info = build_trainer(project, settings, data, steps, tmp_path / "out", reporter=_NoReporter())
    assert info["prompts"] == {"query": QWEN_QUERY_PROMPT, "document": DOC_PROMPT}
    assert trainer.args.prompts == {"anchor": QWEN_QUERY_PROMPT, "positive": DOC_PROMPT}
    row = {"anchor": "deductible", "positive": "the deductible rule"}
    batch = trainer.data_collator([row])
    tokenizer = trainer.model.tokenizer
    for column, prompt in (("anchor", QWEN_QUERY_PROMPT), ("positive", DOC_PROMPT)):
        expected = tokenizer([prompt + row[column]])["input_ids"][0]
        assert batch[f"{column}_input_ids"][0].tolist() == expected, column


class _NoReporter:
    cancelled = False

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None
