"""The one training settings class: project.yaml's `training:` section parses into it (engine.config), `embtune
train` flags override it (`dataclasses.replace`), and a run stores it (`dataclasses.asdict`) for its worker.

Plain dataclasses only, so engine.config stays light (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOSSES = ("mnrl", "cached_mnrl", "matryoshka")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")

# Metadata of the fields a run carries but project.yaml does not have (engine.config skips them).
NOT_IN_YAML = {"yaml": False}


@dataclass
class TrainSettings:
    loss: str = "mnrl"
    epochs: int = 1
    batch_size: int = 32
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
    # Train on (query, positive, mined negative) triplets when `embtune mine` found negatives.
    hard_negatives: bool = True
    # cached_mnrl: rows per forward pass (memory), independent of batch_size (the in-batch negatives).
    mini_batch_size: int = 32
    # matryoshka: embedding sizes trained to work truncated (null: full, 1/2, 1/4, 1/8 of the model's).
    matryoshka_dims: list[int] | None = None
    # The project's top-level `seed` (or --seed) fills this: one seed per project, not one per section.
    seed: int = field(default=42, metadata=NOT_IN_YAML)
    # One timed step before training (the ETA, and a fast failure on memory); stored runs carry it.
    smoke_step: bool = field(default=True, metadata=NOT_IN_YAML)
