"""What a freshly loaded base model gets before training: its prompts, gradient checkpointing, a LoRA adapter.

Kept beside the other model concerns so the trainer asks one function, and the pre-flight (engine.train.memory)
and the tests see the same choices the run makes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.models.adapters import LoraSpec, attach_lora, parameter_counts
from engine.models.prompts import Prompts, apply_to_model, resolve_prompts, warn_if_missing


def prepare_for_training(
    model: Any,
    *,
    spec: str,
    path: Path,
    configured_prompts: dict[str, str] | None,
    adapter: dict[str, Any] | None,
    gradient_checkpointing: bool,
) -> tuple[Prompts, dict[str, Any]]:
    """Set the model up as the run trains it; returns its prompts and what the run records about them."""
    prompts = resolve_prompts(configured_prompts, path)
    warn_if_missing(spec, path, prompts)
    apply_to_model(model, prompts)  # the saved run folder (and an export of it) carries the prompts
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)
    counts = attach_lora(model, LoraSpec.from_setting(adapter)) if adapter else parameter_counts(model)
    info = {
        "prompts": prompts.as_dict(),
        "prompts_source": prompts.source,
        "adapter": dict(adapter) if adapter else None,
        "gradient_checkpointing": gradient_checkpointing,
        **counts,
    }
    return prompts, info


def enable_gradient_checkpointing(model: Any) -> None:
    """Non-reentrant checkpointing on the transformer: it works with frozen (LoRA) base weights as well."""
    transformer = model[0].model
    transformer.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(transformer, "config"):
        transformer.config.use_cache = False  # decoders: a KV cache is useless in training and breaks checkpointing
