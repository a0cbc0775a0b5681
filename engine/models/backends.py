"""CPU encoding backends: the model's transformer exported to ONNX and run by ONNX Runtime (float32 or int8) or
OpenVINO, inside the same SentenceTransformer.

Why not sentence-transformers' own `backend="onnx"`: it loads through optimum-onnx, whose only release caps
transformers below 4.58 (this project runs transformers 5: optimum's exporter fails to import), and optimum-intel
pins older transformers and another torch. So the transformer is exported with torch.onnx and the exported graph
replaces the Transformer module's `model`: tokenization, prompts, pooling and normalization stay
sentence-transformers' own, and only the transformer's forward pass changes runtime.

Exports are cached per model fingerprint under the project (.embtune/backends/<fingerprint>/), never in the model
folder: a pip-packaged model in site-packages may be read-only, and a file added there would change the model's own
fingerprint. Training always uses torch; these backends only encode, on the CPU.

Vectors from two backends agree closely but are not bit-identical, so every backend but torch mixes its name into
the encoding fingerprint: the embedding cache and index tables never mix them (torch keeps the plain fingerprint,
so existing caches stay valid).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import ENCODE_BACKENDS as SETTINGS
from engine.errors import EmbtuneError

BACKENDS = tuple(b for b in SETTINGS if b != "auto")
# What `auto` picks on a CPU: only a backend that is faster than torch AND agrees with it (min cosine >= 0.999,
# nDCG@10 equal to 3 decimals). bench/encode_backends.py on the 2-core AVX2 dev machine (all-MiniLM-L6-v2, batch 32,
# max_seq_length 256, SciFact, quiet): onnx 0.92x torch's passages/s, onnx-int8 1.33x with min cosine 0.986
# (disagrees), openvino 1.16x with identical nDCG@10. Still torch: training, Ray and multi-process builds encode with
# torch and the embedding cache keys backends apart, so an openvino auto would re-encode what a gate or mine cached.
AUTO_CPU = "torch"
CACHE_DIR = Path(".embtune") / "backends"
ONNX_FILE = "model.onnx"
INT8_FILE = "model_qint8.onnx"

# The modules each backend imports, and the install that provides them.
_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "onnx": (("onnxruntime", "onnx"), "pip install 'embtune[onnx]'  (onnxruntime, onnx)"),
    "onnx-int8": (("onnxruntime", "onnx"), "pip install 'embtune[onnx]'  (onnxruntime, onnx)"),
    "openvino": (("openvino", "onnx"), "pip install 'embtune[openvino]'  (openvino, onnx)"),
}


class BackendError(EmbtuneError):
    """An encode backend that is unknown, not installed, or failed to export the model."""


def resolve_backend(setting: str, device: str = "cpu") -> str:
    """The backend `setting` (models.encode_backend) means on `device`: `auto` is AUTO_CPU on a CPU and torch on a
    GPU (these runtimes are CPU builds here; a GPU runs torch faster)."""
    if setting not in SETTINGS:
        raise BackendError(f"models.encode_backend must be one of {', '.join(SETTINGS)}, got {setting!r}")
    if setting != "auto":
        return setting
    return AUTO_CPU if device == "cpu" else "torch"


def backend_fingerprint(fingerprint: str, backend: str) -> str:
    """`fingerprint` for torch (old caches stay valid), else one mixed with the backend's name."""
    if backend == "torch":
        return fingerprint
    return hashlib.sha256(f"{fingerprint}\0backend={backend}".encode()).hexdigest()[:16]


def require(backend: str) -> None:
    """Raise a BackendError naming the pip install when `backend`'s runtime is missing."""
    if backend == "torch":
        return
    if backend not in _NEEDS:
        raise BackendError(f"models.encode_backend must be one of {', '.join(SETTINGS)}, got {backend!r}")
    modules, install = _NEEDS[backend]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendError(
            f"models.encode_backend is {backend!r}, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed: {install}, "
            "or set models.encode_backend: torch in project.yaml"
        )


def cache_root(base_dir: Path | str | None) -> Path:
    """Where exports live: the project's .embtune/backends, or the user cache when there is no project or the
    project folder is read-only (a shared copy still encodes; the export is rebuilt once per user)."""
    if base_dir is not None:
        project = Path(base_dir) / CACHE_DIR
        if project.is_dir() or _writable(base_dir):
            return project
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "embtune" / "backends"


def _writable(folder: Path | str | None) -> bool:
    return folder is not None and Path(folder).is_dir() and os.access(folder, os.W_OK)


def apply_backend(model: Any, backend: str, folder: Path) -> Any:
    """Swap `model`'s transformer forward for `backend`'s runtime (exporting into `folder` once); torch: as is."""
    if backend == "torch":
        return model
    require(backend)
    module = model[0]
    if not hasattr(module, "model") or not hasattr(module, "tokenizer"):
        raise BackendError(f"encode backend {backend!r} needs a transformer model as the first module")
    onnx_file = export_onnx(module, folder)
    if backend == "onnx-int8":
        onnx_file = quantize_int8(onnx_file, folder / INT8_FILE)
    run, names = _openvino(onnx_file) if backend == "openvino" else _onnxruntime(onnx_file)
    module.model = exported_transformer(run, names, module.model.config)
    model.to("cpu")
    return model


def export_onnx(module: Any, folder: Path) -> Path:
    """`folder`/model.onnx: the transformer's forward (token ids → last_hidden_state) with dynamic batch and
    length. Written to a temporary file and renamed, so a killed or concurrent export never leaves half a file."""
    target = folder / ONNX_FILE
    if target.is_file():
        return target
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    hf_model = module.model.to("cpu").eval()
    sample = module.tokenizer(["an example passage", "a second, longer example passage"], padding=True)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    inputs = tuple(torch.tensor(sample[n], dtype=torch.long) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    with _temporary(folder, ".onnx") as scratch, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        try:
            torch.onnx.export(
                _traceable(hf_model, names),
                inputs,
                str(scratch),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,  # the dynamo exporter needs onnxscript and fails on dynamic shapes of some models
            )
        except Exception as e:  # any exporter failure: name the model's architecture and the way back
            raise BackendError(
                f"could not export {type(hf_model).__name__} to ONNX ({type(e).__name__}: {e}); "
                "set models.encode_backend: torch in project.yaml"
            ) from e
        os.replace(scratch, target)
    return target


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantization of the weights (activations quantized per batch at run time): no calibration
    data, as sentence-transformers' export_dynamic_quantized_onnx_model. Per channel with a reduced range: on an
    AVX2 CPU without VNNI, per-tensor int8 kept MiniLM's vectors at min cosine 0.90 of torch's, this at 0.99."""
    if target.is_file():
        return target
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _temporary(target.parent, ".onnx") as scratch:
        quantize_dynamic(source, scratch, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        os.replace(scratch, target)
    return target


class _temporary:
    """A scratch file path in `folder`, removed on exit unless it was renamed away."""

    def __init__(self, folder: Path, suffix: str) -> None:
        self.folder, self.suffix = folder, suffix

    def __enter__(self) -> Path:
        handle, name = tempfile.mkstemp(prefix=".export-", suffix=self.suffix, dir=self.folder)
        os.close(handle)
        os.chmod(name, 0o644)  # mkstemp makes it owner-only; an export is as readable as the project
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)
        # the exporter may write external-data files beside a large model; they are named after the scratch file
        for extra in self.folder.glob(f"{self.path.name}*"):
            extra.unlink(missing_ok=True)


def _threads() -> int:
    import torch

    return max(1, torch.get_num_threads())  # the same thread count torch would use: a fair, polite comparison


def _onnxruntime(path: Path) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], list[str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle threads sleep instead of spinning: on a busy machine spinning took 31 s where sleeping took 26 s
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return (lambda feed: session.run(None, feed)[0]), names


def _openvino(path: Path) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], list[str]]:
    import openvino as ov

    # f32: on CPUs with bf16 support OpenVINO otherwise computes in bf16, and the vectors would drift from torch's
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": _threads()}
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    names = [next(iter(i.get_names())) for i in compiled.inputs]
    return (lambda feed: compiled(feed)[0]), names


@functools.cache
def _forward_module() -> type:
    import torch

    class Forward(torch.nn.Module):
        """The HF model as positional inputs → last_hidden_state: what the exporter traces."""

        def __init__(self, model: Any, names: list[str]) -> None:
            super().__init__()
            self.model, self.names = model, names

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(self.names, inputs, strict=True)), return_dict=True).last_hidden_state

    return Forward


def _traceable(model: Any, names: list[str]) -> Any:
    return _forward_module()(model, names)


@functools.cache
def _exported_class() -> type:
    import torch

    class Exported(torch.nn.Module):
        """Stands in for the HF model inside sentence-transformers' Transformer module: same config, same
        output key, the forward pass run by an exported graph on the CPU."""

        def __init__(self, run: Callable[[dict[str, np.ndarray]], np.ndarray], names: list[str], config: Any):
            super().__init__()
            self.config, self._run, self._names = config, run, names
            self.register_buffer("_anchor", torch.zeros(0), persistent=False)  # its device is where inputs go

        def forward(self, **features: Any) -> dict[str, Any]:
            ids = features["input_ids"]
            feed = {}
            for name in self._names:
                value = features.get(name)
                feed[name] = np.zeros(tuple(ids.shape), np.int64) if value is None else _int64(value)
            return {"last_hidden_state": torch.from_numpy(np.asarray(self._run(feed)))}

    return Exported


def _int64(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy().astype(np.int64, copy=False)


def exported_transformer(run: Callable[[dict[str, np.ndarray]], np.ndarray], names: list[str], config: Any) -> Any:
    """A torch module with `config` whose forward runs `run` (an exported graph) on the inputs named `names`."""
    return _exported_class()(run, names, config)
