"""Building the SentenceTransformerTrainer for a run: model, fitted length, loss, batch sampler, dev evaluator,
arguments; and what a run records about itself. Imports torch and sentence-transformers, so only the worker
(and benches) import this module.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from engine.models.encoder import fit_max_seq_length
from engine.models.prepare import prepare_for_training
from engine.models.prompts import Prompts
from engine.models.resolve import load_embedder, model_fingerprint, pick_device, resolve_model
from engine.project import Project
from engine.train.dataset import TrainData
from engine.train.settings import TrainSettings

LOGGED_STEPS = 1000  # at most this many loss points per run: one per step on short runs
BEST_METRIC = "eval_dev_cosine_ndcg@10"  # the checkpoint kept when a dev slice selects one


def resolve_precision(precision: str, device: str) -> str:
    """auto: bf16 on a CUDA GPU that supports it, else fp16 on CUDA, else fp32 (CPU and MPS)."""
    if precision != "auto":
        return precision
    if device != "cuda":
        return "fp32"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def make_loss(model: Any, s: TrainSettings) -> Any:
    """The configured loss with the recipe's in-batch terms (engine.train.recipe: GTE's bidirectional loss)."""
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss, MatryoshkaLoss

    from engine.train.recipe import DIRECTIONS, hardness_args, make_loss_for

    # under torchrun/accelerate every GPU's batch joins the in-batch negatives (else each sees only its share)
    gather = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if s.loss == "cached_mnrl":
        return CachedMultipleNegativesRankingLoss(
            model,
            mini_batch_size=s.mini_batch_size,
            directions=DIRECTIONS[s.in_batch],
            partition_mode="joint",
            gather_across_devices=gather,
            **hardness_args(s.hardness),
        )
    inner = make_loss_for(model, s.in_batch, s.hardness, gather_across_devices=gather)
    if s.loss == "matryoshka":
        full = int(model.get_embedding_dimension())
        dims = s.matryoshka_dims or [d for d in (full, full // 2, full // 4, full // 8) if d >= 8]
        return MatryoshkaLoss(model, inner, matryoshka_dims=sorted(set(dims), reverse=True))
    return inner


def dev_evaluator(data: TrainData, batch_size: int, prompts: Prompts | None = None) -> Any:
    if not data.dev_queries:
        return None
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    return InformationRetrievalEvaluator(
        data.dev_queries,
        data.dev_corpus,
        data.dev_relevant,
        name="dev",
        batch_size=batch_size,
        query_prompt=prompts.query or None if prompts else None,
        corpus_prompt=prompts.document or None if prompts else None,
        write_csv=False,
        show_progress_bar=False,
    )


def batch_sampler(s: TrainSettings, model: Any, data: TrainData, encode_queries: Any) -> Any:
    """The no-duplicates sampler, or topic-aware batches over the base model's query vectors (cached)."""
    from sentence_transformers.base.sampler import BatchSamplers

    from engine.train.recipe import TopicBatches

    if s.batches != "topic" or data.rows < 2 * s.batch_size:  # one or two batches: nothing to arrange
        return BatchSamplers.NO_DUPLICATES
    return TopicBatches(encode_queries(data.columns()["anchor"]), s.batch_size, s.seed)


def _query_vectors(model: Any, base_encoder: Any, texts: list[str]) -> Any:
    if base_encoder is not None:  # the project's cache: after a gate or a mine these are read, not encoded
        return base_encoder(model).encode(texts, "query")
    return model.encode_query(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


def build_trainer(
    project: Project,
    s: TrainSettings,
    data: TrainData,
    steps: dict[str, int],
    out_dir: Path,
    reporter: Any,
    is_main: bool = True,
    *,
    watch: Any = None,
    on_first_step: Any = None,
    base_encoder: Any = None,
) -> tuple[Any, dict[str, Any]]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from engine.train.callbacks import make_callback

    resolved = resolve_model(project.config.base_model, project.root)
    device = pick_device()
    # under torchrun/accelerate each rank loads onto its own GPU (the trainer would move it there anyway)
    load_on = f"cuda:{os.environ['LOCAL_RANK']}" if device == "cuda" and "LOCAL_RANK" in os.environ else device
    model = load_embedder(str(resolved.path), device=load_on, trust_remote_code=project.config.trust_remote_code)
    prompts, prepared = prepare_for_training(
        model,
        spec=project.config.base_model,
        path=resolved.path,
        configured_prompts=project.config.prompts,
        adapter=s.adapter,
        gradient_checkpointing=s.gradient_checkpointing,
    )
    # Fitted on the passages (queries are shorter): 99% of them fit untruncated, nothing is padded beyond that.
    passages = [prompts.document + t for t in data.positives + (data.negatives or [])]
    model.max_seq_length = s.max_seq_length or fit_max_seq_length(model, passages)
    precision = resolve_precision(s.precision, device)
    evaluator = dev_evaluator(data, s.batch_size, prompts)
    has_dev = evaluator is not None and steps["eval_steps"] > 0
    select = has_dev and data.selects_checkpoint  # gate queries are only watched: the last step is kept
    sampler = batch_sampler(s, model, data, lambda texts: _query_vectors(model, base_encoder, texts))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out_dir),
        num_train_epochs=s.epochs,
        max_steps=steps["max_steps"],
        per_device_train_batch_size=s.batch_size,
        prompts=prompts.training(list(data.columns())) or None,  # the same prompts as every encode (models.prompts)
        per_device_eval_batch_size=s.batch_size,
        learning_rate=s.learning_rate,
        warmup_steps=s.warmup_ratio if s.warmup_ratio > 0 else 0,
        seed=s.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        batch_sampler=sampler,
        eval_strategy="steps" if has_dev else "no",
        eval_steps=steps["eval_steps"] or None,
        save_strategy="steps",
        save_steps=steps["save_steps"],
        save_total_limit=2,
        load_best_model_at_end=select,
        metric_for_best_model=BEST_METRIC if select else None,
        greater_is_better=True if select else None,
        logging_strategy="steps",
        logging_steps=max(1, steps["max_steps"] // LOGGED_STEPS),
        logging_first_step=True,
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=device == "cuda",
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(data.columns()),
        loss=make_loss(model, s),
        evaluator=evaluator if has_dev else None,
        callbacks=[make_callback(reporter, is_main, None if select else watch, on_first_step)],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict into the worker log
    info = {
        "device": device,
        "precision": precision,
        "max_seq_length": int(model.max_seq_length),
        "base_model_path": str(resolved.path),
        "base_model_fingerprint": model_fingerprint(resolved.path),
        **prepared,  # prompts, adapter, gradient checkpointing, parameter counts
    }
    return trainer, info


def record(
    project: Project, s: TrainSettings, data: TrainData, steps: dict[str, int], info: dict[str, Any]
) -> dict[str, Any]:
    """What a run stores about itself: enough to know exactly what was trained on what, how and where."""
    return {
        "seed": s.seed,
        "data_hash": data.snapshot_hash(),
        "data": data.counts,
        "schedule": steps,
        "versions": library_versions(),
        **info,
    }


def library_versions() -> dict[str, str]:
    """The versions a run was trained with (recorded on the run and shown in its model card)."""
    out = {"python": platform.python_version()}
    for name in ("torch", "sentence-transformers", "transformers", "accelerate", "datasets"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out
