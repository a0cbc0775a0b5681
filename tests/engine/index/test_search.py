"""Search on the live index, base vs tuned side by side, the stale-model guard, and `embtune export`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.index.build import IndexingError, build_index, rollback
from engine.index.search import Searcher, moved
from engine.models.export import ExportError, export_model
from engine.project import Project
from engine.store import runs
from tests.projects import cli, register_model


def test_search_finds_a_chunk_by_its_own_text(project: Project) -> None:
    build_index(project)
    text = (
        "The salvage rule. Handlers apply salvage when the file reaches stage 1. Ask the team lead about "
        "salvage exceptions before paying."
    )
    results = Searcher(project).search(text, k=5)
    assert results.hits[0].doc_id == "d01"
    assert results.hits[0].score > 0.99  # the stored chunk also holds the title
    assert [h.rank for h in results.hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(results.hits, results.hits[1:], strict=False))


def test_compare_sets_base_beside_tuned_with_moved_ranks(project: Project, tuned_model: Path) -> None:
    build_index(project)
    run_id = register_model(project, tuned_model)
    build_index(project, str(run_id))
    results = Searcher(project).compare("when do we use arbitration", k=5, other="base")
    assert results.model == f"run {run_id}"
    assert results.compare is not None
    assert results.compare.model == "base"
    deep = Searcher(project).search("when do we use arbitration", k=40, index_id=None)
    base_deep = {h.chunk_id: h.rank for h in results.compare.hits}
    for hit in results.hits:
        assert hit.other_rank is None or hit.other_rank >= 1
    for hit in results.compare.hits:  # base's top hits know where the tuned table ranked them
        assert hit.other_rank == next(h.rank for h in deep.hits if h.chunk_id == hit.chunk_id)
    assert base_deep  # base hits present
    row = results.to_json()["hits"][0]
    assert {"chunk_id", "doc_id", "score", "text", "other_rank", "moved"} <= set(row)
    assert row["moved"] == moved(results.hits[0])


def test_compare_without_a_base_table_says_how_to_build_one(project: Project, tuned_model: Path) -> None:
    run_id = register_model(project, tuned_model)
    build_index(project, str(run_id))
    with pytest.raises(IndexingError, match="--model base"):
        Searcher(project).compare("premium", other="base")


def test_search_refuses_a_table_whose_model_changed(project: Project, tuned_model: Path) -> None:
    run_id = register_model(project, tuned_model)
    build_index(project, str(run_id))
    weights = next((project.root / "models" / f"run-{run_id}").rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(IndexingError, match="has since changed"):
        Searcher(project).search("premium")


def test_cli_search_json_contract(project: Project, tuned_model: Path) -> None:
    assert cli("index", project.root, "--wait")[0] == 0
    code, out = cli("search", project.root, "when do we use waiver", "--k", "3", "--json")
    assert code == 0
    hits = json.loads(out)["hits"]
    assert len(hits) == 3
    assert set(hits[0]) >= {"chunk_id", "doc_id", "score", "text"}
    run_id = register_model(project, tuned_model)
    assert cli("index", project.root, "--model", str(run_id), "--wait")[0] == 0
    code, out = cli("search", project.root, "when do we use waiver", "--compare", "base", "--json")
    assert code == 0
    assert json.loads(out)["compare"]["model"] == "base"
    rollback(project)
    code, out = cli("search", project.root, "waiver")
    assert code == 0
    assert "(base)" in out


def test_export_writes_a_loadable_model_with_a_card(project: Project, tuned_model: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    run_id = register_model(project, tuned_model)
    eval_id = runs.create_run(project.db, "eval", {})
    figures: dict[str, Any] = {"ndcg@10": 0.61, "recall@10": 0.8, "verdict": "WIN"}
    runs.finish_run(
        project.db,
        eval_id,
        {
            "split": "test",
            "n_queries": 12,
            "models": {"base": {"ndcg@10": 0.5, "recall@10": 0.7}, f"run {run_id}": figures},
        },
        [],
        [],
    )
    dest = tmp_path / "shipped"
    result = export_model(project, str(run_id), dest)
    assert any(f.endswith(".safetensors") for f in result["files"])
    card = (dest / "README.md").read_text()
    assert f"run {run_id}" in card
    assert '"pairs": 80' in card
    assert "0.6100" in card
    assert "WIN" in card
    texts = ["a stolen bicycle", "flood repairs"]
    expected = SentenceTransformer(str(tuned_model), device="cpu").encode(texts)
    assert np.allclose(SentenceTransformer(str(dest), device="cpu").encode(texts), expected, atol=1e-6)
    with pytest.raises(ExportError, match="not empty"):
        export_model(project, str(run_id), dest)
    code, out = cli("export", project.root, str(run_id), dest, "--json")
    assert code == 2
    assert "not empty" in json.loads(out)["error"]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = cli("export", project.root, f"run-{run_id}", empty, "--json")
    assert code == 0
    assert json.loads(out)["dest"] == str(empty.resolve())
    assert not (tmp_path / "empty.partial").exists()
    shutil.rmtree(dest)
