"""Encode backends (models.encode_backend): ONNX vectors agree with torch's, each backend keys its own vectors,
and a bad or missing backend is named with the fix."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.config import ConfigError, config_from_dict
from engine.errors import EmbtuneError
from engine.models.backends import BackendError, cache_root, require, resolve_backend
from engine.models.encoder import encoding_key, open_encoder

TEXTS = [
    "Aspirin reduces the risk of heart attack in adults over fifty.",
    "short",
    "The reserve for a total loss is approved by the claims manager within ten working days of notice.",
    "Vitamin D deficiency is associated with bone fractures.",
]

needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnxruntime/onnx not installed (pip install 'embtune[onnx]')",
)


@needs_onnx
def test_onnx_vectors_agree_with_torch_and_the_export_is_cached_in_the_project(
    tiny_embedder_path: Path, tmp_path: Path
) -> None:
    torch_encoder = open_encoder(str(tiny_embedder_path), base_dir=tmp_path, device="cpu")
    onnx_encoder = open_encoder(str(tiny_embedder_path), base_dir=tmp_path, device="cpu", backend="onnx")
    for role in ("document", "query"):
        ours = onnx_encoder.encode(TEXTS, role)
        theirs = torch_encoder.encode(TEXTS, role)
        assert ours.shape == theirs.shape
        assert np.min(np.sum(ours * theirs, axis=1)) >= 0.999
    assert onnx_encoder.backend == "onnx"
    exported = list(cache_root(tmp_path).glob("*/model.onnx"))
    assert len(exported) == 1
    # never written into the model folder: that would change the model's own fingerprint
    assert not list(tiny_embedder_path.rglob("*.onnx"))
    # a second open reuses the export instead of exporting again
    before = exported[0].stat().st_mtime_ns
    open_encoder(str(tiny_embedder_path), base_dir=tmp_path, device="cpu", backend="onnx")
    assert exported[0].stat().st_mtime_ns == before


@needs_onnx
def test_onnx_int8_stays_close_to_torch(tiny_embedder_path: Path, tmp_path: Path) -> None:
    torch_vectors = open_encoder(str(tiny_embedder_path), base_dir=tmp_path, device="cpu").encode(TEXTS, "document")
    int8 = open_encoder(str(tiny_embedder_path), base_dir=tmp_path, device="cpu", backend="onnx-int8")
    vectors = int8.encode(TEXTS, "document")
    # quantized weights drift further than float32 ONNX; they must still point the same way
    assert np.min(np.sum(vectors * torch_vectors, axis=1)) >= 0.95
    assert len(list(cache_root(tmp_path).glob("*/model_qint8.onnx"))) == 1


def test_each_backend_has_its_own_fingerprint_and_torch_keeps_the_old_one(tiny_embedder_path: Path) -> None:
    keys = {b: encoding_key(str(tiny_embedder_path), None, {}, backend=b)[0] for b in ("torch", "onnx", "onnx-int8")}
    assert len(set(keys.values())) == 3
    from engine.models.resolve import model_fingerprint

    assert keys["torch"] == model_fingerprint(tiny_embedder_path)


def test_auto_is_torch_on_a_gpu_and_the_measured_pick_on_a_cpu() -> None:
    from engine.models.backends import AUTO_CPU, BACKENDS

    assert resolve_backend("auto", "cuda:0") == "torch"
    assert resolve_backend("auto", "cpu") == AUTO_CPU in BACKENDS
    assert resolve_backend("onnx", "cuda") == "onnx"  # an explicit choice is kept


@needs_onnx
def test_encoding_cache_never_mixes_backends(tiny_embedder_path: Path, tmp_path: Path) -> None:
    from tests.projects import make_project

    project = make_project(tmp_path, tiny_embedder_path)
    try:
        torch_encoder = open_encoder(str(tiny_embedder_path), db=project.db, device="cpu", base_dir=project.root)
        torch_encoder.encode(TEXTS, "document")
        onnx_encoder = open_encoder(
            str(tiny_embedder_path), db=project.db, device="cpu", base_dir=project.root, backend="onnx"
        )
        counted: list[int] = []
        onnx_encoder.encode(TEXTS, "document", progress=lambda done, total: counted.append(total))
        assert counted[0] == len(TEXTS)  # nothing reused from torch's cache: all encoded again
    finally:
        project.close()


def test_a_bad_setting_names_the_field_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'models.encode_backend' must be one of torch, onnx, onnx-int8"):
        config_from_dict({"models": {"encode_backend": "tensorrt"}})
    file = tmp_path / "project.yaml"
    file.write_text("name: x\nmodels:\n  encode_backend: onxx\n", encoding="utf-8")
    from engine.config import load_config

    with pytest.raises(ConfigError, match=r"project.yaml:3: 'models.encode_backend' must be one of .*'onxx'"):
        load_config(file)
    assert config_from_dict({"models": {"encode_backend": "onnx-int8"}}).models.encode_backend == "onnx-int8"
    assert config_from_dict({}).models.encode_backend == "torch"


def test_a_backend_not_installed_names_the_pip_install(
    tiny_embedder_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(EmbtuneError, match=r"onnxruntime is not installed: pip install 'embtune\[onnx\]'"):
        open_encoder(str(tiny_embedder_path), base_dir=tmp_path, device="cpu", backend="onnx")
    assert not cache_root(tmp_path).exists()  # refused before any export
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(BackendError, match=r"openvino is not installed: pip install 'embtune\[openvino\]'"):
        require("openvino")


def test_an_unknown_backend_is_refused_by_open_encoder(tiny_embedder_path: Path) -> None:
    with pytest.raises(BackendError, match="must be one of"):
        open_encoder(str(tiny_embedder_path), device="cpu", backend="onnx32")


def _with_backend(project: Any, backend: str) -> Any:
    from engine.project import open_project

    path = project.root / "project.yaml"
    path.write_text(path.read_text() + f"models:\n  encode_backend: {backend}\n")
    project.close()
    return open_project(project.root)


@needs_onnx
def test_an_onnx_index_is_its_own_table_and_search_encodes_queries_with_onnx(
    tiny_embedder_path: Path, tmp_path: Path
) -> None:
    from engine.index.build import build_index
    from engine.index.search import Searcher
    from engine.store import indexes
    from tests.projects import make_project

    project = make_project(tmp_path, tiny_embedder_path)
    torch_index = build_index(project).index_id
    project = _with_backend(project, "onnx")
    try:
        built = build_index(project)
        torch_row, onnx_row = indexes.get(project.db, torch_index), indexes.get(project.db, built.index_id)
        assert onnx_row["model_fingerprint"] != torch_row["model_fingerprint"]
        assert built.embedded == built.rows  # a new table: not one torch vector copied over
        assert onnx_row["config"]["backend"] == "onnx"
        searcher = Searcher(project)
        results = searcher.search("when do we use salvage", k=5)
        assert results.table == built.table
        assert len(results.hits) == 5
        # the table's queries go through ONNX too: close to torch's, and not torch's own model
        texts = ["when do we use salvage", "who approves a reserve increase"]
        ours, theirs = searcher.encode_queries(onnx_row, texts), searcher.encode_queries(torch_row, texts)
        assert np.min(np.sum(ours * theirs, axis=1)) >= 0.999
        assert type(searcher._model(onnx_row)[0][0].model).__name__ == "Exported"
    finally:
        project.close()


def test_a_pooled_build_refuses_an_onnx_backend(tiny_embedder_path: Path, tmp_path: Path) -> None:
    from engine.index.build import IndexingError, build_index
    from engine.index.devices import Targets
    from tests.projects import make_project

    project = _with_backend(make_project(tmp_path, tiny_embedder_path), "onnx")
    try:
        with pytest.raises(IndexingError, match=r"encode_backend 'onnx' encodes in one process.*--processes"):
            build_index(project, targets=Targets(processes=2))
    finally:
        project.close()
