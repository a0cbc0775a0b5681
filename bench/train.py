"""Training on SciFact: quality of embtune's default run and the cost of its monitoring against plain
sentence-transformers.

    flock /tmp/embtune-bench.lock .venv/bin/python bench/train.py [--data ../shared/datasets/scifact]
        [--epochs 1] [--batch-size 32] [--max-steps N] [--skip-plain-eval] [--json results.json]

A fresh project (base_model all-MiniLM-L6-v2) imports SciFact: train.tsv → train split (809 queries, 919 pairs),
test.tsv → test split (300 queries), the 5,183 abstracts as the corpus. Then, each training in a subprocess of
its own (wall time from spawn to exit, peak RSS from os.wait4's ru_maxrss):

1. Quality: embtune's default run (`engine.jobs.worker`, the detached worker `embtune train` starts): MNRL, no-dup
   sampler, warmup 10%, max_seq_length fitted; a dev slice carved from TRAIN by document (best checkpoint by dev
   nDCG@10) only when it would hold training.dev_min_queries (200) queries, else every row trains and the last
   step is kept, as on SciFact (10% of 809 train queries is too few to pick checkpoints with). Base vs tuned
   nDCG@10 / Recall@5 on the 300 TEST queries over the full corpus
   (InformationRetrievalEvaluator, the same max_seq_length for every model); the test split is never seen in
   training.
2. Overhead: embtune with the dev slice off (dev_fraction 0) against a plain sentence-transformers script
   (SentenceTransformerTrainer, same rows in the same order, model, batch size, steps, lr, warmup, seed,
   max_seq_length, no-duplicates sampler; it saves the final model only). embtune's side includes everything a
   user's run does: data snapshot, smoke step, per-step metrics, heartbeats, checkpoint, model card.
   The plain model's test metrics are reported too (a plain fine-tune on all train rows, last step).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import QUIET, log  # bench/common.py (this folder is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "scifact"
MODEL = "all-MiniLM-L6-v2"


def timed_child(command: list[str]) -> dict[str, float]:
    """Run a command; its wall time, its own peak RSS (os.wait4, not the sum of all children) and load."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=str(ROOT), env={**os.environ, **QUIET})
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"{command} exited with {status}")
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "load_avg": round((load + os.getloadavg()[0]) / 2, 2),
    }


def new_project(root: Path, data: Path, settings: dict[str, Any]) -> Any:
    from engine.config import config_from_dict, dump_config
    from engine.ingest.importing import import_beir
    from engine.project import init_project, open_project

    beir = root.parent / "beir"
    (beir / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (beir / name).symlink_to(data / name)
    for split in ("train", "test"):
        (beir / "qrels" / f"{split}.tsv").symlink_to(data / "qrels" / f"{split}.tsv")
    init_project(root).close()
    config = {"name": "scifact-train-bench", "base_model": MODEL, "training": settings}
    (root / "project.yaml").write_text(dump_config(config_from_dict(config, "bench")), encoding="utf-8")
    project = open_project(root)
    import_beir(project, beir)
    return project


def test_metrics(project: Any, model_path: str, max_seq_length: int) -> dict[str, float]:
    """nDCG@10, Recall@5 and friends on the test queries over the whole corpus."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from engine.models.resolve import resolve_model
    from engine.store import corpus

    ids, _, texts = corpus.retrieval_chunks(project.db)
    test = corpus.judged_queries(project.db, "test")
    path = str(resolve_model(model_path, project.root).path)
    from transformers.utils import logging

    logging.disable_progress_bar()
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_length
    evaluator = InformationRetrievalEvaluator(
        {q.id: q.text for q in test},
        dict(zip(ids, texts, strict=True)),
        {q.id: set(q.relevant) for q in test},
        name="test",
        batch_size=32,
        write_csv=False,
        accuracy_at_k=[1, 5, 10],
        precision_recall_at_k=[1, 5, 10],
    )
    started = time.perf_counter()
    result = evaluator(model)
    keys = ("ndcg@10", "recall@1", "recall@5", "recall@10", "mrr@10")
    out = {k: round(float(result[f"test_cosine_{k}"]), 4) for k in keys}
    out["eval_seconds"] = round(time.perf_counter() - started, 1)
    return out


def embtune_run(project: Any, overrides: dict[str, Any]) -> tuple[int, dict[str, float]]:
    from engine.train.run import settings_for, start_training

    run_id, _ = start_training(project, settings_for(project, **overrides), launch=False)
    usage = timed_child([sys.executable, "-m", "engine.jobs.worker", str(project.root), str(run_id)])
    return run_id, usage


def plain_worker(spec_path: str) -> None:
    """The plain sentence-transformers script (run in its own process)."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    spec = json.loads(Path(spec_path).read_text())
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = SentenceTransformer(spec["model"], device="cpu", local_files_only=True)
    model.max_seq_length = spec["max_seq_length"]
    args = SentenceTransformerTrainingArguments(
        output_dir=spec["out"] + "-ckpt",
        max_steps=spec["max_steps"],
        per_device_train_batch_size=spec["batch_size"],
        learning_rate=spec["lr"],
        warmup_steps=spec["warmup"],
        seed=spec["seed"],
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_strategy="no",
        dataloader_pin_memory=False,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(spec["columns"]),
        loss=MultipleNegativesRankingLoss(model),
    )
    trainer.train()
    model.save_pretrained(spec["out"])


def plain_run(project: Any, run_id: int, work: Path) -> tuple[str, dict[str, float]]:
    """The plain script on exactly the rows, steps and length the embtune run used."""
    from engine.models.resolve import resolve_model
    from engine.store import jobs as store
    from engine.train.run import load_data
    from engine.train.settings import TrainSettings

    run = store.train_run(project.db, run_id)
    assert run is not None
    s = TrainSettings(**run["config"]["settings"])
    data = load_data(project, s)
    out = str(work / "plain-model")
    spec = {
        "model": str(resolve_model(MODEL).path),
        "max_seq_length": run["config"]["max_seq_length"],
        "max_steps": run["config"]["schedule"]["max_steps"],
        "batch_size": s.batch_size,
        "lr": s.learning_rate,
        "warmup": s.warmup_ratio,
        "seed": s.seed,
        "columns": data.columns(),
        "out": out,
    }
    spec_path = work / "plain.json"
    spec_path.write_text(json.dumps(spec))
    return out, timed_child([sys.executable, str(Path(__file__).resolve()), "--plain-worker", str(spec_path)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--skip-plain-eval", action="store_true")
    parser.add_argument("--skip-quality", action="store_true", help="Only the overhead comparison (no test evals).")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plain-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_worker:
        plain_worker(args.plain_worker)
        return
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    with tempfile.TemporaryDirectory(prefix="embtune-train-bench-") as tmp:
        results = run(args, Path(tmp))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from engine.store import jobs as store

    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "max_steps": args.max_steps}
    log("importing SciFact")
    project = new_project(work / "project", args.data.resolve(), settings)
    results: dict[str, Any] = {"machine": f"{os.cpu_count()} CPUs", "settings": settings}

    if args.skip_quality:
        return overhead(project, work, results, args, None)
    log("quality: embtune's default run (dev slice from train, best checkpoint)")
    run_id, usage = embtune_run(project, {})
    quality_run = store.train_run(project.db, run_id)
    if quality_run is None or quality_run["status"] != "finished":
        raise RuntimeError(f"the default run did not finish: {quality_run}")
    length = quality_run["config"]["max_seq_length"]
    results["default_run"] = {
        **usage,
        "steps": quality_run["result"]["steps"],
        "dev": quality_run["result"]["dev"],
        "preflight": quality_run["config"]["preflight"],
        "data": quality_run["config"]["data"],
        "max_seq_length": length,
    }
    log(f"default run: {usage}; evaluating base and tuned on the test split")
    results["test_base"] = test_metrics(project, MODEL, length)
    results["test_tuned_default"] = test_metrics(project, quality_run["model_path"], length)
    log(f"base {results['test_base']} tuned {results['test_tuned_default']}")
    save_partial(args, results)

    return overhead(project, work, results, args, length)


def save_partial(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """What is known so far, so a bench stopped midway still leaves its figures."""
    if args.json:
        args.json.with_suffix(".partial.json").write_text(json.dumps(results, indent=2))


def overhead(
    project: Any, work: Path, results: dict[str, Any], args: argparse.Namespace, length: int | None
) -> dict[str, Any]:
    from engine.store import jobs as store

    log("overhead: embtune (no dev slice) vs plain sentence-transformers, same rows and steps")
    nodev_id, embtune_usage = embtune_run(project, {"dev_fraction": 0.0})
    plain_path, plain_usage = plain_run(project, nodev_id, work)
    nodev = store.train_run(project.db, nodev_id)
    if nodev is None or nodev["status"] != "finished":
        raise RuntimeError(f"the no-dev run did not finish: {nodev}")
    results["overhead"] = {
        "embtune": {**embtune_usage, "steps": nodev["result"]["steps"], "train_seconds": nodev["result"]["seconds"]},
        "plain": plain_usage,
        "wall_ratio": round(embtune_usage["seconds"] / plain_usage["seconds"], 3),
        "rss_ratio": round(embtune_usage["peak_rss_mib"] / plain_usage["peak_rss_mib"], 3),
    }
    log(f"overhead: {results['overhead']}")
    save_partial(args, results)
    if not args.skip_plain_eval and length is not None:
        results["test_tuned_plain"] = test_metrics(project, plain_path, length)
        log(f"plain fine-tune: {results['test_tuned_plain']}")
    project.close()
    return results


if __name__ == "__main__":
    main()
