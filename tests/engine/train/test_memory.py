"""The memory pre-flight's arithmetic: shapes read without torch match the loaded model, and each lever (batch,
CachedMNRL mini-batch, gradient checkpointing, LoRA) moves the estimate the way the advice relies on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from engine.train.memory import advise, estimate, model_shapes


def test_shapes_from_the_safetensors_header_match_the_loaded_model(tiny_qwen3_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    shapes = model_shapes(tiny_qwen3_path)
    model = SentenceTransformer(str(tiny_qwen3_path), device="cpu")
    assert shapes.parameters == sum(p.numel() for p in model.parameters())
    assert (shapes.layers, shapes.hidden) == (2, 64)


def test_each_lever_lowers_the_estimate(tiny_embedder_path: Path) -> None:
    shapes = model_shapes(tiny_embedder_path)
    full = estimate(shapes, batch_size=64, seq_length=256)
    assert estimate(shapes, batch_size=128, seq_length=256).activations_gb > 1.9 * full.activations_gb
    assert estimate(shapes, batch_size=64, seq_length=256, mini_batch_size=8).activations_gb < full.activations_gb / 7
    # two layers only: one recomputed layer is half of them, so checkpointing saves less here than on 24 layers
    assert estimate(shapes, batch_size=64, seq_length=256, gradient_checkpointing=True).activations_gb < (
        full.activations_gb
    )
    lora = estimate(shapes, batch_size=64, seq_length=256, adapter={"kind": "lora", "r": 4})
    assert lora.trainable_parameters < shapes.parameters / 2
    assert lora.optimizer_gb < full.optimizer_gb


def test_advice_names_the_fix_that_fits(tiny_embedder_path: Path) -> None:
    shapes = model_shapes(tiny_embedder_path)
    settings = SimpleNamespace(
        precision="fp32", batch_size=512, mini_batch_size=32, loss="mnrl", gradient_checkpointing=False, adapter=None
    )
    roomy = advise(shapes, settings, seq_length=256, columns=2, device="cpu", available_gb=1000)
    assert roomy["fits"] is True
    assert roomy["advice"].startswith("fits in")
    need = roomy["memory_gb"]
    tight = advise(shapes, settings, seq_length=256, columns=2, device="cpu", available_gb=need * 0.6)
    assert tight["fits"] is False
    assert "cached_mnrl" in tight["advice"]
