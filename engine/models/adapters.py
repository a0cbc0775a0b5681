"""LoRA adapters (PyPI `peft`) on a SentenceTransformer's transformer: attach for training, tell an adapter folder
from full weights, merge for export.

A model fine-tuned with LoRA trains and saves only the low-rank matrices: `models/run-N` then holds
adapter_config.json + adapter_model.safetensors (a few MB) beside the sentence-transformers files, and names its
base model in adapter_config.json. sentence-transformers loads such a folder like any other (the base is read from
there), so evaluation, indexing and search need nothing special. peft is imported inside functions only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EmbtuneError

ADAPTER_CONFIG = "adapter_config.json"
KINDS = ("lora",)
# "all-linear": every linear layer of the transformer (peft leaves out an output head); the usual choice for
# decoders such as Qwen3, and safe for BERT and XLM-RoBERTa.
DEFAULT_TARGETS = "all-linear"


class AdapterError(EmbtuneError):
    """An adapter setting peft cannot apply (no matching module, peft missing)."""


@dataclass(frozen=True)
class LoraSpec:
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: list[str] | str = field(default=DEFAULT_TARGETS)

    @classmethod
    def from_setting(cls, setting: dict[str, Any]) -> LoraSpec:
        """training.adapter ({kind: lora, r, alpha, dropout, target_modules}); checked by engine.config."""
        values = {k: v for k, v in setting.items() if k != "kind" and v is not None}
        return cls(**values)


def is_adapter_dir(path: Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: Path) -> str | None:
    """The base model an adapter folder names (its `base_model_name_or_path`)."""
    try:
        config = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    return base if isinstance(base, str) else None


def set_adapter_base(path: Path, base: str) -> None:
    """Point an adapter folder at another copy of its base (an exported adapter names the hub id, not a path)."""
    file = Path(path) / ADAPTER_CONFIG
    config = json.loads(file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _transformer(model: Any) -> Any:
    """The first module of a SentenceTransformer: the transformer whose weights LoRA adapts."""
    first = model[0]
    if not hasattr(first, "model"):
        raise AdapterError(f"the model's first module ({type(first).__name__}) is not a transformer LoRA can adapt")
    return first


def attach_lora(model: Any, spec: LoraSpec) -> dict[str, int]:
    """Wrap the transformer in a peft LoRA model (base weights frozen); returns trainable and total parameters."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # a dependency of embtune; an install without it gets a clear line
        raise AdapterError("training.adapter needs the `peft` package: pip install peft") from e
    module = _transformer(model)
    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=spec.target_modules)
    try:
        module.model = get_peft_model(module.model, config)
    except ValueError as e:  # e.g. "Target modules {...} not found in the base model"
        raise AdapterError(f"training.adapter.target_modules: {e}") from e
    module.model._register_load_state_dict_pre_hook(_peft_key_layout)
    return parameter_counts(model)


_WRAPPED = "base_model.model."


def _peft_key_layout(state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """The trainer's checkpoints hold the wrapped weights under the plain layout ("layers.0…lora_A…", without
    peft's "base_model.model."), so loading the best checkpoint or resuming would fail on every key: move them."""
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(prefix + _WRAPPED)]:
        state_dict[prefix + _WRAPPED + key[len(prefix) :]] = state_dict.pop(key)


def parameter_counts(model: Any) -> dict[str, int]:
    params = list(model.parameters())
    return {
        "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
        "parameters": sum(p.numel() for p in params),
    }


def merge_adapter(model: Any) -> bool:
    """Fold a peft-wrapped transformer's LoRA into its weights (plain weights again); False when it has none."""
    module = _transformer(model)
    if not hasattr(module.model, "merge_and_unload"):
        return False
    module.model = module.model.merge_and_unload()
    return True
