"""Evaluations during training that cost what they are worth.

A dev slice carved from the train split *chooses* the checkpoint kept, so it is evaluated on schedule. Held-out
queries evaluated without a dev slice only *watch* (they never choose: the last step is kept), so under
`training.watch: auto` they get a time budget: together they may take WATCH_BUDGET (10%) of the training wall time
so far ("pay as you go": an evaluation runs once the training time since the start has earned its measured cost), so
they spread evenly over the run and the last one lands near the end. `every N` evaluates every N steps; `off` never.

The step-0 evaluation of the base model reads the project's embedding cache (the gate, mining and eval store base
vectors by model fingerprint, prompts and length), so after a gate or a mine it encodes nothing, and it stops within
one encoding block when the run is cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.train.dataset import TrainData
from engine.train.settings import WATCH_BUDGET, parse_watch

FORWARD_SHARE = 1 / 3  # a forward pass without gradients is about a third of a training step's forward+backward
STEP0_KS = (1, 3, 5, 10)  # the cut-offs sentence-transformers' InformationRetrievalEvaluator reports
CANCEL_SLICE = 64  # texts encoded between two cancel checks in the base evaluation


@dataclass
class WatchBudget:
    """When watched evaluations run: every `every` steps, or (every=None) within `share` of the training time."""

    every: int | None
    share: float = WATCH_BUDGET
    eval_seconds: float | None = None  # the cost of one evaluation: estimated from a step, then measured
    spent: float = 0.0
    evaluations: int = 0
    base_seconds: float = 0.0  # the step-0 evaluation of the base model (in `spent` too)
    train_seconds: float = 0.0  # training time so far, evaluations excluded (updated at every decision)

    @classmethod
    def from_setting(cls, watch: str) -> WatchBudget:
        return cls(every=parse_watch(watch))

    @property
    def off(self) -> bool:
        return self.every == 0

    def estimate(self, step_seconds: float, texts_per_step: int, eval_texts: int) -> None:
        """Before the first evaluation: its forward-only passes over `eval_texts`, at the measured step's rate."""
        if self.eval_seconds is None and texts_per_step:
            self.eval_seconds = step_seconds * FORWARD_SHARE * eval_texts / texts_per_step

    def due(self, step: int, max_steps: int, train_seconds: float) -> bool:
        self.train_seconds = train_seconds
        if self.off:
            return False
        if self.every is not None:
            return step % self.every == 0 or step == max_steps
        return self.eval_seconds is not None and self.spent + self.eval_seconds <= self.share * train_seconds

    def record(self, seconds: float) -> None:
        self.spent += seconds
        self.evaluations += 1
        self.eval_seconds = seconds  # the newest measure: evaluation cost changes little within a run

    def summary(self) -> dict[str, float]:
        """What watching cost (a run's result carries it)."""
        return {
            "evaluations": self.evaluations,
            "seconds": round(self.spent, 3),
            "base_seconds": round(self.base_seconds, 3),
            "train_seconds": round(self.train_seconds, 3),
        }

    def describe(self) -> str:
        if self.off:
            return "off"
        if self.every is not None:
            return f"every {self.every} steps"
        return f"auto: at most {self.share:.0%} of training time"


def base_metrics(
    model: Any,
    fingerprint: str,
    data: TrainData,
    db: Any,
    prompts: Any,
    cancelled: Callable[[], bool] | None = None,
) -> dict[str, float]:
    """The base model's metrics on the run's evaluation queries through the embedding cache (the keys
    InformationRetrievalEvaluator reports: accuracy/precision/recall@1,3,5,10, ndcg@10, mrr@10, map@100).
    Raises InterruptedError when `cancelled` turns true between encoding blocks."""
    import numpy as np

    from engine.models.encoder import Encoder
    from engine.retrieval.arms import dense_search
    from engine.retrieval.metrics import evaluate_run

    encoder = Encoder(model, fingerprint, int(model.max_seq_length), db, prompts=prompts)
    query_ids, corpus_ids = list(data.dev_queries), list(data.dev_corpus)
    queries = _encode(encoder, [data.dev_queries[q] for q in query_ids], "query", cancelled)
    passages = _encode(encoder, [data.dev_corpus[c] for c in corpus_ids], "document", cancelled)
    ranked = dense_search(np.asarray(queries), np.asarray(passages), 100)
    run = {q: [corpus_ids[i] for i in r] for q, r in zip(query_ids, ranked, strict=True)}
    means, _ = evaluate_run(run, {q: data.dev_relevant[q] for q in query_ids}, STEP0_KS)
    return means


def _encode(encoder: Any, texts: list[str], role: Any, cancelled: Callable[[], bool] | None) -> Any:
    """Encoded in slices of CANCEL_SLICE texts, each checking cancel first: MiniLM on 2 CPU cores encodes ~27
    passages/s, so a cancel waits at most ~2.5 s here (the encoder's own blocks of 256 would take ~9 s)."""
    import numpy as np

    parts = [
        encoder.encode(texts[i : i + CANCEL_SLICE], role, cancelled=cancelled)
        for i in range(0, len(texts), CANCEL_SLICE)
    ]
    return np.concatenate(parts) if parts else encoder.encode([], role)
