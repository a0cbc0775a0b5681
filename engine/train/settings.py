"""The one training settings class: project.yaml's `training:` section parses into it (engine.config), `embtune
train` flags override it (`dataclasses.replace`), and a run stores it (`dataclasses.asdict`) for its worker.

Plain dataclasses only, so engine.config stays light (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOSSES = ("mnrl", "cached_mnrl", "matryoshka")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
IN_BATCH = ("gte", "query_to_doc")
BATCHES = ("topic", "random")
# Watched (never choosing) evaluations may take this share of the training wall time under `watch: auto`.
WATCH_BUDGET = 0.10

# Metadata of the fields a run carries but project.yaml does not have (engine.config skips them).
NOT_IN_YAML = {"yaml": False}


@dataclass
class TrainSettings:
    loss: str = "mnrl"
    epochs: int = 1
    # Rows per batch; null: chosen from the row count (auto_batch_size): 16 below SMALL_SET_ROWS, else 32.
    batch_size: int | None = None
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    # None: fitted to the token lengths of the training data.
    max_seq_length: int | None = None
    eval_steps: int = 100
    save_steps: int = 100
    precision: str = "auto"
    # Stop after this many optimizer steps (null: epochs decide).
    max_steps: int | None = None
    # Dev slice carved from the TRAIN split, by document, for checkpoint selection (dev nDCG@10; the test split
    # is never used for that). 0 turns evaluation off and keeps the last step.
    dev_fraction: float = 0.1
    dev_max_queries: int = 200
    # Fewer dev queries than this within the row budget (dev_fraction of the rows): no dev slice, every row trains
    # and the last step is kept (a small dev slice's nDCG is too noisy to pick checkpoints with).
    dev_min_queries: int = 200
    # Passages the dev evaluation ranks (dev positives + seeded distractors): bounds each evaluation's cost.
    dev_corpus_max: int = 1000
    # Train on (query, positive, mined negative) triplets when `embtune mine` found negatives. Off by default: a
    # mined negative per row makes every step ~1.8x dearer (measured: bench/recipes.py), more than its gain; the
    # topic-aware batches below give hard in-batch negatives at no extra cost per step.
    hard_negatives: bool = False
    # In-batch loss terms (engine/train/recipe.py): gte = query->passage, passage->query, query->query and
    # passage->passage in one softmax (GTE, Li et al. 2023); query_to_doc = the plain MNRL.
    in_batch: str = "gte"
    # topic: each batch drawn from a cluster of similar queries (TAS-B), so in-batch negatives are hard;
    # random: the no-duplicates sampler's random batches.
    batches: str = "topic"
    # Hardness-weighted in-batch negatives (Lan et al. 2025, "LLaVE", eq. 5; MNRL's hardness_mode): each in-batch
    # negative's logit gains hardness * stop_grad(cosine), so the negatives the model confuses weigh more in the
    # softmax. Free per step; 9 is the paper's alpha. 0 turns it off.
    hardness: float = 9.0
    # Evaluations that only watch (held-out test/gate queries; they never choose a checkpoint): auto = as many as
    # fit in 10% of the training time (measured as the run goes), off, or "every N" steps.
    watch: str = "auto"
    # cached_mnrl: rows per forward pass (memory), independent of batch_size (the in-batch negatives).
    mini_batch_size: int = 32
    # matryoshka: embedding sizes trained to work truncated (null: full, 1/2, 1/4, 1/8 of the model's).
    matryoshka_dims: list[int] | None = None
    # The project's top-level `seed` (or --seed) fills this: one seed per project, not one per section.
    seed: int = field(default=42, metadata=NOT_IN_YAML)
    # Report the first real step's time as the pre-flight (the ETA); stored runs carry it.
    smoke_step: bool = field(default=True, metadata=NOT_IN_YAML)
    # {kind: lora, r: 16, alpha: 32, dropout: 0.05, target_modules: all-linear}: train a LoRA adapter (peft)
    # instead of every weight (engine.models.adapters); null: full fine-tuning. `embtune train --adapter lora`.
    adapter: dict[str, Any] | None = None
    # Recompute activations in the backward pass: far less activation memory for ~30% more time per step.
    gradient_checkpointing: bool = False


# Below this many rows an epoch at batch 32 is under 100 optimizer steps: too few at lr 2e-5 (SciFact's 919 pairs make
# 29). Batch 16 doubles the steps at the same compute per epoch; topic-aware batches keep its 15 in-batch passages
# hard, and GTE's four directions give each row 60 contrasts (bench/recipes.py: +0.020 nDCG@10 on SciFact).
SMALL_SET_ROWS = 3200


def auto_batch_size(rows: int) -> int:
    """training.batch_size: null's choice for this many training rows."""
    return 16 if rows < SMALL_SET_ROWS else 32


def parse_watch(value: str) -> int | None:
    """The step interval of a `watch` value: None for auto, 0 for off, N for "every N"; ValueError otherwise."""
    text = str(value).strip().lower()
    if text == "auto":
        return None
    if text == "off":
        return 0
    parts = text.split()
    if len(parts) == 2 and parts[0] == "every" and parts[1].isdigit() and int(parts[1]) > 0:
        return int(parts[1])
    raise ValueError(f'must be "auto", "off" or "every N" (N a positive number of steps), got {value!r}')
