"""Memory pre-flight: will this run fit on this device, and if not, what makes it fit.

`estimate` is arithmetic on the model's shapes (read from its safetensors header and config.json: no torch):
weights, gradients and AdamW's two moments for the trainable parameters, activations per sequence at the fitted
length (every column of the batch is a forward pass: anchor, positive, negative; a cached loss keeps only one
mini-batch's), gradient checkpointing (one layer's activations plus each layer's input) and LoRA (frozen base
weights, no gradients or optimizer states for them), plus the runtime's own footprint. `advise` turns it into the
line a user needs before starting: "fits in 80 GB with batch 64", "needs CachedMNRL mini-batch 16", "use LoRA".
`probe_batch_size` (`embtune train --auto-batch`) measures instead of estimating: real forward+backward steps
on the real device at growing batch sizes, keeping the largest that fits.

Activation elements per token per layer: ~9h for attention projections, residuals and norms, 2I for the MLP
(hidden h, intermediate I; Korthikanti et al. 2022 count 34·h bytes at fp16 for I = 4h), and 2.5·heads·s for
attention scores and softmax when they are materialised (CPU, eager attention); memory-efficient attention on CUDA
keeps O(s) of them instead.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

GB = 2**30
# The process before the first batch: torch, tokenizers, datasets and the trainer (CPU: measured RSS of a
# loaded trainer less its model, ~0.9 GB); on CUDA the context and the allocator's reserve.
RUNTIME_GB = {"cpu": 0.9, "mps": 0.9, "cuda": 0.6}
GPU_SIZES_GB = (24, 48, 80)  # the cards users ask about: RTX 4090 / A6000·L40S / A100·H100
HEADROOM = 0.9  # keep 10% of the device free: fragmentation and the evaluation's own batches


@dataclass(frozen=True)
class Shapes:
    """What the estimate needs from a model folder."""

    parameters: int
    linear_parameters: int  # 2-D weights inside the layers (what LoRA "all-linear" adapts)
    linear_dims: int  # sum of (in + out) over those weights: LoRA adds r·(in + out) per weight
    hidden: int
    intermediate: int
    layers: int
    heads: int
    max_length: int


@dataclass(frozen=True)
class Estimate:
    memory_gb: float
    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    runtime_gb: float
    trainable_parameters: int
    parameters: int
    sequences_per_pass: int  # forward passes whose activations are held at once (batch or mini-batch × columns)
    seq_length: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def model_shapes(path: Path) -> Shapes:
    """Parameter counts from the safetensors header(s), sizes from config.json; the transformer of a
    sentence-transformers folder is at its root (or in 0_Transformer/ for old saves)."""
    root = Path(path)
    folder = root if (root / "config.json").is_file() else root / "0_Transformer"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config = config.get("text_config", config)  # multimodal wrappers keep the text model's sizes inside
    total = linear = dims = 0
    for file in sorted(folder.glob("*.safetensors")):
        for name, info in _safetensors_header(file).items():
            if name == "__metadata__":
                continue
            shape = info["shape"]
            total += math.prod(shape)
            if len(shape) == 2 and "embed" not in name and "layer" in name:
                linear += math.prod(shape)
                dims += sum(shape)
    hidden = int(config.get("hidden_size") or config.get("d_model") or 768)
    if total == 0:  # a .bin-only model: the usual transformer count, 12h² per layer plus embeddings
        total = int(config.get("num_hidden_layers", 12)) * 12 * hidden**2 + int(config.get("vocab_size", 0)) * hidden
    return Shapes(
        parameters=total,
        linear_parameters=linear,
        linear_dims=dims,
        hidden=hidden,
        intermediate=int(config.get("intermediate_size") or 4 * hidden),
        layers=int(config.get("num_hidden_layers") or config.get("num_layers") or 12),
        heads=int(config.get("num_attention_heads") or 12),
        max_length=_max_length(root, config),
    )


def _safetensors_header(file: Path) -> dict[str, Any]:
    with file.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size))


def _max_length(root: Path, config: dict[str, Any]) -> int:
    try:
        st = json.loads((root / "sentence_bert_config.json").read_text(encoding="utf-8"))
        if st.get("max_seq_length"):
            return int(st["max_seq_length"])
    except (OSError, ValueError):
        pass
    return int(config.get("max_position_embeddings") or 512)


def lora_parameters(shapes: Shapes, adapter: dict[str, Any]) -> int:
    """Trainable parameters of a LoRA adapter on every linear layer (r·(in + out) each)."""
    return int(adapter.get("r", 16)) * shapes.linear_dims


def estimate(
    shapes: Shapes,
    *,
    batch_size: int,
    seq_length: int,
    columns: int = 2,
    precision: str = "fp32",
    device: str = "cpu",
    mini_batch_size: int | None = None,
    gradient_checkpointing: bool = False,
    adapter: dict[str, Any] | None = None,
    query_length: int | None = None,
) -> Estimate:
    """Peak memory of one training step. `mini_batch_size`: a cached loss (CachedMNRL) holds one mini-batch's
    activations; `query_length`: the anchors' fitted length when shorter than the passages'."""
    half = precision in ("bf16", "fp16")
    trainable = lora_parameters(shapes, adapter) if adapter else shapes.parameters
    # mixed precision keeps fp32 master weights (autocast casts per op); LoRA adds its small matrices
    weights = 4 * shapes.parameters + (4 * trainable if adapter else 0)
    gradients = 4 * trainable
    optimizer = 8 * trainable  # AdamW: first and second moments in fp32
    rows = min(batch_size, mini_batch_size) if mini_batch_size else batch_size
    lengths = [query_length or seq_length] + [seq_length] * (columns - 1)
    act_bytes = 2 if half else 4
    attention = device != "cuda"  # CUDA's SDPA kernels do not materialise the s×s scores
    per_layer = sum(rows * s * (9 * shapes.hidden + 2 * shapes.intermediate) for s in lengths)
    scores = sum(rows * 2.5 * shapes.heads * s * s for s in lengths) if attention else 0
    if gradient_checkpointing:  # each layer's input kept, one layer recomputed at a time
        activations = act_bytes * (shapes.layers * sum(rows * s * shapes.hidden for s in lengths) + per_layer + scores)
    else:
        activations = act_bytes * shapes.layers * (per_layer + scores)
    runtime = RUNTIME_GB.get(device, 0.9) * GB
    total = weights + gradients + optimizer + activations + runtime
    return Estimate(
        memory_gb=round(total / GB, 2),
        weights_gb=round(weights / GB, 3),
        gradients_gb=round(gradients / GB, 3),
        optimizer_gb=round(optimizer / GB, 3),
        activations_gb=round(activations / GB, 3),
        runtime_gb=round(runtime / GB, 2),
        trainable_parameters=int(trainable),
        parameters=shapes.parameters,
        sequences_per_pass=rows * columns,
        seq_length=seq_length,
    )


def device_memory_gb(device: str) -> float | None:
    """Memory the device offers: the first GPU's total (nvidia-smi, no torch), else available RAM."""
    if device == "cuda":
        import subprocess

        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            return round(int(out.split()[0]) / 1024, 1)
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None
    import psutil

    return round(psutil.virtual_memory().available / GB, 1)


def detect_device() -> str:
    """cuda when an NVIDIA GPU answers, else cpu (the pre-flight imports no torch; the run picks the same)."""
    import shutil

    if os.environ.get("CUDA_VISIBLE_DEVICES", "x") == "" or shutil.which("nvidia-smi") is None:
        return "cpu"
    return "cuda" if device_memory_gb("cuda") else "cpu"


def advise(shapes: Shapes, settings: Any, *, seq_length: int, columns: int, device: str, available_gb: float | None,
           query_length: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The pre-flight's memory fields: `memory_gb`, `fits`, `advice`, and the estimate at common GPU sizes."""
    precision = _precision(settings.precision, device)
    common = {
        "seq_length": seq_length,
        "columns": columns,
        "precision": precision,
        "device": device,
        "query_length": query_length,
    }

    def at(**changes: Any) -> Estimate:
        options = {
            "batch_size": settings.batch_size,
            "mini_batch_size": settings.mini_batch_size if settings.loss == "cached_mnrl" else None,
            "gradient_checkpointing": settings.gradient_checkpointing,
            "adapter": settings.adapter,
        } | changes
        return estimate(shapes, **common, **options)

    chosen = at()
    budget = available_gb * HEADROOM if available_gb else None
    fits = budget is None or chosen.memory_gb <= budget
    return {
        "memory_gb": chosen.memory_gb,
        "fits": fits,
        "device_memory_gb": available_gb,
        "device": device,
        "precision": precision,
        "memory": chosen.to_json(),
        "advice": _advice(at, settings, chosen, budget, device),
        "gpu_table": {f"{size} GB": _largest_batch(at, size * HEADROOM) for size in GPU_SIZES_GB},
    }


def _precision(precision: str, device: str) -> str:
    if precision != "auto":
        return precision
    return "bf16" if device == "cuda" else "fp32"


def _advice(at: Any, settings: Any, chosen: Estimate, budget: float | None, device: str) -> str:
    where = f"{budget / HEADROOM:.0f} GB" if budget else "this machine"
    batch = settings.batch_size
    if budget is None or chosen.memory_gb <= budget:
        return f"fits in {where} with batch {batch} (~{chosen.memory_gb} GB of {where} on {device})"
    for mini in (64, 32, 16, 8, 4):
        if mini < batch and at(mini_batch_size=mini).memory_gb <= budget:
            return (
                f"needs ~{chosen.memory_gb} GB, more than {where}: use --loss cached_mnrl with "
                f"training.mini_batch_size {mini} (CachedMNRL keeps batch {batch}'s in-batch negatives)"
            )
    if not settings.gradient_checkpointing and at(gradient_checkpointing=True).memory_gb <= budget:
        return f"needs ~{chosen.memory_gb} GB: set training.gradient_checkpointing: true (~30% slower steps)"
    if not settings.adapter and at(adapter={"kind": "lora", "r": 16}, gradient_checkpointing=True).memory_gb <= budget:
        return f"needs ~{chosen.memory_gb} GB: use LoRA (--adapter lora) with gradient checkpointing"
    return (
        f"needs ~{chosen.memory_gb} GB, more than {where} even with LoRA: lower --max-seq-length or pick a "
        "smaller model"
    )


def _largest_batch(at: Any, budget: float) -> int:
    """The largest power-of-two batch (up to 4096) whose estimate fits `budget` GB; 0 when none does."""
    best = 0
    for power in range(13):
        if at(batch_size=2**power).memory_gb > budget:
            break
        best = 2**power
    return best


def preflight(project: Any, settings: Any, columns: int, passages: list[str], queries: list[str]) -> dict[str, Any]:
    """plan()'s memory fields for the project's base model on this machine (no torch). Lengths are the fitted
    ones' stand-in: 99th percentile of characters / 4, rounded up to 32 and capped by the model."""
    from engine.models.resolve import resolve_model

    path = resolve_model(project.config.base_model, project.root).path
    shapes = model_shapes(path)
    seq = settings.max_seq_length or _fitted_length(passages, shapes.max_length)
    query = min(seq, _fitted_length(queries, shapes.max_length)) if queries else None
    device = detect_device()
    return advise(shapes, settings, seq_length=seq, columns=columns, device=device,
                  available_gb=device_memory_gb(device), query_length=query)  # fmt: skip


def _fitted_length(texts: list[str], cap: int, chars_per_token: float = 4.0) -> int:
    if not texts:
        return cap
    lengths = sorted(len(t) for t in texts)
    p99 = lengths[min(len(lengths) - 1, math.ceil(0.99 * len(lengths)) - 1)]
    return int(min(cap, max(32, math.ceil(p99 / chars_per_token / 32) * 32)))


# --- measured: --auto-batch -------------------------------------------------------------------------------


def probe_batch_size(
    project: Any, settings: Any, data: Any, schedule: Any, *, start: int = 8, limit: int = 4096
) -> dict[str, Any]:
    """The largest batch (a power of two from `start`) whose real forward+backward step fits on this device.

    Each probe builds the batch from the run's own rows at the fitted length, runs the configured loss's step
    (CachedMNRL's mini-batches included) and reads the peak: CUDA's allocator peak, or the process's RSS growth
    on CPU. A probe that runs out of memory, or whose peak plus the optimizer's states would pass 90% of the
    device, ends the search."""
    import gc

    import torch

    from engine.models.resolve import pick_device

    device = pick_device()
    trainer_for = _probe_trainer(project, data, schedule)
    available = (device_memory_gb(device) or 0) * GB * HEADROOM
    tried: list[dict[str, Any]] = []
    best, batch = 0, start
    while batch <= min(limit, data.rows):
        try:
            peak, optimizer = _probe(trainer_for, replace(settings, batch_size=batch), device)
        except torch.OutOfMemoryError:
            tried.append({"batch_size": batch, "fits": False, "error": "out of memory"})
            break
        finally:
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
        fits = peak + optimizer <= available
        tried.append({"batch_size": batch, "peak_gb": round(peak / GB, 2), "fits": fits})
        if not fits:
            break
        best, batch = batch, batch * 2
    return {"device": device, "batch_size": best or start, "probes": tried}


def _probe_trainer(project: Any, data: Any, schedule: Any) -> Any:
    """A one-step trainer for given settings (`schedule`: engine.train.run.schedule, passed in: no import circle)."""
    from engine.train.trainer import build_trainer

    class _Quiet:
        cancelled = False

        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: None

    def make(s: Any) -> Any:
        steps = schedule(replace(s, max_steps=1), data.rows, False, False)
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="embtune-probe-"))
        return build_trainer(project, replace(s, max_steps=1, batches="random"), data, steps, folder, _Quiet())[0]

    return make


def _probe(make: Any, settings: Any, device: str) -> tuple[int, int]:
    import resource

    import torch

    trainer = make(settings)
    batch = next(iter(trainer.get_train_dataloader()))
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        trainer.training_step(trainer.model, batch)
        peak = torch.cuda.max_memory_allocated()
    else:  # the process's peak RSS: batches grow probe by probe, so the newest peak is this probe's
        trainer.training_step(trainer.model, batch)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    trainer.model.zero_grad(set_to_none=True)
    del trainer
    return peak, 8 * trainable


def plan_fields(project: Any, settings: Any, data: Any) -> dict[str, Any]:
    """The memory fields of `embtune train --dry-run --json` (engine.train.run.plan); a model whose shapes
    cannot be read gets `memory_gb: null` and says why, rather than failing the plan."""
    from engine.errors import EmbtuneError

    columns = data.columns()
    try:
        return preflight(project, settings, len(columns), columns["positive"], columns["anchor"])
    except (EmbtuneError, OSError, ValueError, KeyError, struct.error) as e:
        return {"memory_gb": None, "fits": None, "advice": f"no memory estimate: {e}"}
