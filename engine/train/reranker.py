"""`embtune reranker train`: a domain cross-encoder trained on the project's pairs.

No PyPI package ships cross-encoder weights, so the gate's re-ranking arm needs either a local cross-encoder or
this: the base model's encoder with a fresh one-logit head, trained with binary cross-entropy on (query, positive)
and (query, negative) pairs. Cheaper than fine-tuning the embedder: the corpus need not be re-embedded.
"""

from __future__ import annotations

import logging as std_logging
import math
import random
import time
from dataclasses import dataclass
from typing import Any

from engine.errors import EmbtuneError
from engine.jobs.progress import Progress
from engine.project import Project
from engine.store import corpus, runs


class RerankerError(EmbtuneError):
    """Training cannot start (no training pairs)."""


@dataclass
class RerankerSettings:
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 2e-5
    max_steps: int | None = None
    negatives_per_pair: int = 1
    # Dense negatives come from this rank window of the base model's results: deep enough to skip most
    # unlabelled positives (false negatives), shallow enough to be hard.
    negative_ranks: tuple[int, int] = (10, 40)


def train_reranker(
    project: Project, settings: RerankerSettings | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    settings = settings or RerankerSettings()
    report = progress or (lambda stage, done, total: None)
    pairs = corpus.training_pairs(project.db)
    if not pairs:
        raise RerankerError("no training pairs: import pairs first (embtune import DIR --pairs FILE)")
    config = {"base_model": project.config.base_model, **settings.__dict__, "pairs": len(pairs)}
    run_id = runs.create_run(project.db, "reranker", config)
    try:
        examples, source = _examples(project, pairs, settings, report)
        model_dir = project.root / "models" / f"reranker-{run_id}"
        started = time.monotonic()
        steps, max_seq_length = _fit(project, examples, settings, model_dir, report)
        result = {
            "run_id": run_id,
            "model_path": f"models/reranker-{run_id}",
            "examples": len(examples),
            "negatives": source,
            "steps": steps,
            "max_seq_length": max_seq_length,
            "seconds": round(time.monotonic() - started, 1),
        }
        runs.finish_model_run(project.db, run_id, result["model_path"], result)
        return result
    except BaseException as e:
        runs.fail_run(project.db, run_id, f"{type(e).__name__}: {e}")
        raise


def _examples(
    project: Project, pairs: list[corpus.TrainingPair], settings: RerankerSettings, report: Progress
) -> tuple[list[tuple[str, str, float]], str]:
    rng = random.Random(project.config.seed)
    mined = corpus.usable_negatives(project.db)
    source = "mined" if mined else "dense ranks {}-{} of the base model".format(*settings.negative_ranks)
    negatives = mined or _dense_negatives(project, pairs, settings, report)
    examples: list[tuple[str, str, float]] = []
    for pair in pairs:
        examples.append((pair.query, pair.passage, 1.0))
        pool = negatives.get(pair.query_id, [])
        for text in rng.sample(pool, min(settings.negatives_per_pair, len(pool))):
            examples.append((pair.query, text, 0.0))
    rng.shuffle(examples)
    return examples, source


def _dense_negatives(
    project: Project, pairs: list[corpus.TrainingPair], settings: RerankerSettings, report: Progress
) -> dict[str, list[str]]:
    """Hard negatives from the base model's ranking, skipping every document judged relevant to the query."""
    from engine.models.encoder import open_encoder
    from engine.retrieval.arms import dense_search

    _, chunk_docs, chunk_texts = corpus.retrieval_chunks(project.db)
    encoder = open_encoder(
        project.config.base_model,
        base_dir=project.root,
        db=project.db,
        fit_texts=chunk_texts,
        trust_remote_code=project.config.trust_remote_code,
        prompts=project.config.prompts,
        backend=project.config.models.encode_backend,
    )
    doc_vectors = encoder.encode(chunk_texts, "document", lambda d, t: report("encode corpus", d, t))
    queries: dict[str, str] = {p.query_id: p.query for p in pairs}
    relevant: dict[str, set[str]] = {}
    for p in pairs:
        relevant.setdefault(p.query_id, set()).add(p.doc_id)
    ids = list(queries)
    low, high = settings.negative_ranks
    rankings = dense_search(encoder.encode([queries[q] for q in ids], "query"), doc_vectors, high)
    return {
        qid: [chunk_texts[c] for c in ranking[low:high] if chunk_docs[c] not in relevant[qid]]
        for qid, ranking in zip(ids, rankings, strict=True)
    }


def _fit(
    project: Project,
    examples: list[tuple[str, str, float]],
    settings: RerankerSettings,
    model_dir: Any,
    report: Progress,
) -> tuple[int, int]:
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import TrainerCallback
    from transformers.utils import logging

    from engine.models.resolve import pick_device, resolve_model

    path = resolve_model(project.config.base_model, project.root).path
    device = pick_device()
    # The new one-logit head is meant to be untrained, and loading an embedder as a cross-encoder is the point:
    # silence transformers' "newly initialized" and sentence-transformers' "Converting ..." reports.
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    st_logger = std_logging.getLogger("sentence_transformers")
    st_level = st_logger.level
    st_logger.setLevel(std_logging.ERROR)
    try:
        model = CrossEncoder(
            str(path),
            num_labels=1,
            local_files_only=True,
            device=device,
            trust_remote_code=project.config.trust_remote_code,
        )
    finally:
        logging.set_verbosity(verbosity)
        st_logger.setLevel(st_level)
    model.max_seq_length = fit_pair_length(model.tokenizer, examples, int(model.max_seq_length or 512))
    data = Dataset.from_dict(
        {"query": [e[0] for e in examples], "passage": [e[1] for e in examples], "label": [e[2] for e in examples]}
    )

    class Progress(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            report("train reranker", state.global_step, state.max_steps)

    args = CrossEncoderTrainingArguments(
        output_dir=str(model_dir / "checkpoints"),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=0.1,
        max_steps=settings.max_steps or -1,
        seed=project.config.seed,
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
        logging_strategy="no",
        dataloader_pin_memory=device == "cuda",
    )
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=data, loss=BinaryCrossEntropyLoss(model), callbacks=[Progress()]
    )
    _quiet(trainer)
    trainer.train()
    model.save_pretrained(str(model_dir))
    return int(trainer.state.global_step), int(model.max_seq_length)


def fit_pair_length(
    tokenizer: Any, examples: list[tuple[str, str, float]], cap: int, *, sample: int = 2000, multiple: int = 32
) -> int:
    """The multiple of 32 covering 99% of the (query, passage) pairs' token lengths, capped by the model.

    A cross-encoder reads query and passage together; padding every pair to the model's 512 made training 3-4x
    slower on short-passage corpora for nothing (measured on SciFact: 10.5 s per step at 512).
    """
    if not examples:
        return cap
    picked = examples[:: max(1, math.ceil(len(examples) / sample))]
    ids = tokenizer([e[0] for e in picked], [e[1] for e in picked], truncation=False, verbose=False)["input_ids"]
    longest = sorted(len(x) for x in ids)[min(len(ids) - 1, int(len(ids) * 0.99))]
    return min(cap, max(multiple, math.ceil(longest / multiple) * multiple))


def _quiet(trainer: Any) -> None:
    # The trainer's PrinterCallback prints every log dict, which would draw over progress bars and the TUI.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
