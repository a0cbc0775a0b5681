"""Training recipes against the plain sentence-transformers script, in one run, on a BEIR set.

    .venv/bin/python bench/recipes.py --data ../shared/datasets/scifact --work /tmp/recipes \\
        [--recipes plain,gte,gte_topic] [--train-pairs 1200] [--test-queries 300] [--distractors 4000]

Every recipe trains all-MiniLM-L6-v2 on the same train pairs (qrels/train.tsv; --train-pairs takes a seeded subset)
for one epoch at max_seq_length 256, seed 42, and is scored on the same test queries (qrels/test.tsv; a seeded subset
of --test-queries over their relevant passages plus --distractors other passages, or the full corpus) by exact
cosine search: nDCG@10 per query, the mean, and the paired bootstrap 95% interval of each recipe's gain over
`plain`. This is the bench that chose embtune's default recipe (engine/train/recipe.py); bench/pipeline.py then
checks the default end to end as a user runs it.

Recipes (see engine/train/recipe.py for the reasons and references):
  plain      the 30-line script: MNRL, batch 32, lr 2e-5, warmup 10%, no-duplicates sampler, pairs only
  gte        plain, with GTE's bidirectional in-batch loss (query->doc, doc->query, query->query, doc->doc)
  topic      plain, with topic-aware batches (TAS-B): each batch drawn from one cluster of base query vectors
  gte_topic  both
  lr5        plain at lr 5e-5 (and the combinations named gte_topic_lr5, gte_topic_b16 [batch 16], ...)
  *_hard     with hardness-weighted in-batch negatives (Lan et al. 2025, strength 9): gte_topic_b16_hard is the default
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from common import quiet_environment, read_qrels  # bench/common.py (this folder is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODEL = "all-MiniLM-L6-v2"
SEQ = 256

RECIPES: dict[str, dict[str, Any]] = {
    "plain": {},
    "gte": {"directions": "gte"},
    "topic": {"batches": "topic"},
    "gte_topic": {"directions": "gte", "batches": "topic"},
    "lr5": {"lr": 5e-5},
    "gte_lr5": {"directions": "gte", "lr": 5e-5},
    "gte_topic_lr5": {"directions": "gte", "batches": "topic", "lr": 5e-5},
    "gte_topic_b16": {"directions": "gte", "batches": "topic", "batch_size": 16},
    "gte_topic_b16_lr5": {"directions": "gte", "batches": "topic", "batch_size": 16, "lr": 5e-5},
    # hardness-weighted in-batch negatives (Lan et al. 2025, alpha 9; MNRL hardness_mode in sentence-transformers 6)
    "gte_topic_b16_hard": {"directions": "gte", "batches": "topic", "batch_size": 16, "hardness": 9.0},
    "gte_b16_hard": {"directions": "gte", "batch_size": 16, "hardness": 9.0},
}


def load(data: Path, train_pairs: int | None, test_queries: int | None, distractors: int) -> dict[str, Any]:
    corpus = {}
    for line in (data / "corpus.jsonl").open():
        row = json.loads(line)
        corpus[row["_id"]] = (row.get("title", "") + " " + row["text"]).strip() if row.get("title") else row["text"]
    queries = {json.loads(line)["_id"]: json.loads(line)["text"] for line in (data / "queries.jsonl").open()}
    train = read_qrels(data / "qrels" / "train.tsv")
    pairs = [(queries[q], corpus[d]) for q in sorted(train) for d in train[q] if q in queries and d in corpus]
    rng = random.Random(42)
    if train_pairs and train_pairs < len(pairs):
        pairs = rng.sample(pairs, train_pairs)
    test = read_qrels(data / "qrels" / "test.tsv")
    picked = sorted(q for q in test if q in queries)
    if test_queries and test_queries < len(picked):
        picked = sorted(random.Random(7).sample(picked, test_queries))
        needed = {d for q in picked for d in test[q]}
        others = sorted(d for d in corpus if d not in needed)
        keep = needed | set(random.Random(7).sample(others, min(distractors, len(others))))
        corpus = {d: t for d, t in corpus.items() if d in keep}
    return {"pairs": pairs, "test": {q: set(test[q]) for q in picked}, "queries": queries, "corpus": corpus}


def evaluate(model: Any, data: dict[str, Any]) -> dict[str, float]:
    """nDCG@10 per test query by exact cosine search over the (sub)corpus."""
    import numpy as np

    from engine.retrieval.arms import dense_search
    from engine.retrieval.metrics import ndcg_at_k

    model.max_seq_length = SEQ
    ids = list(data["test"])
    docs = list(data["corpus"])
    q = model.encode([data["queries"][i] for i in ids], batch_size=64, normalize_embeddings=True)
    d = model.encode([data["corpus"][i] for i in docs], batch_size=32, normalize_embeddings=True)
    ranked = dense_search(np.asarray(q), np.asarray(d), 10)
    return {qid: ndcg_at_k([docs[j] for j in r], data["test"][qid], 10) for qid, r in zip(ids, ranked, strict=True)}


def train(recipe: dict[str, Any], data: dict[str, Any], base_path: str, out: Path) -> tuple[Any, float]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.base.sampler import BatchSamplers

    from engine.train.recipe import TopicBatches, make_loss_for

    model = SentenceTransformer(base_path, device="cpu", local_files_only=True)
    model.max_seq_length = SEQ
    queries, positives = [p[0] for p in data["pairs"]], [p[1] for p in data["pairs"]]
    sampler: Any = BatchSamplers.NO_DUPLICATES
    started = time.perf_counter()
    if recipe.get("batches") == "topic":
        vectors = model.encode(queries, batch_size=64, normalize_embeddings=True)
        sampler = TopicBatches(vectors, recipe.get("batch_size", 32), 42)
    args = Args(
        output_dir=str(out),
        num_train_epochs=1,
        per_device_train_batch_size=recipe.get("batch_size", 32),
        learning_rate=recipe.get("lr", 2e-5),
        warmup_steps=0.1,
        seed=42,
        batch_sampler=sampler,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_strategy="no",
        dataloader_pin_memory=False,
    )
    loss = make_loss_for(model, recipe.get("directions", "query_to_doc"), recipe.get("hardness", 0.0))
    dataset = Dataset.from_dict({"anchor": queries, "positive": positives})
    SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss).train()
    return model, round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--recipes", default="plain,gte,topic,gte_topic")
    parser.add_argument("--train-pairs", type=int)
    parser.add_argument("--test-queries", type=int)
    parser.add_argument("--distractors", type=int, default=4000)
    args = parser.parse_args()
    quiet_environment()
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from engine.models.resolve import resolve_model
    from engine.retrieval.metrics import bootstrap_ci

    args.work.mkdir(parents=True, exist_ok=True)
    data = load(args.data.resolve(), args.train_pairs, args.test_queries, args.distractors)
    print(f"{len(data['pairs'])} train pairs, {len(data['test'])} test queries, {len(data['corpus'])} passages")
    base_path = str(resolve_model(MODEL).path)
    results: dict[str, dict[str, Any]] = {}
    scores_path = args.work / "scores.json"
    saved = json.loads(scores_path.read_text()) if scores_path.exists() else {}
    for name in ["base", *args.recipes.split(",")]:
        if name in saved:
            results[name] = saved[name]
        elif name == "base":
            results[name] = {"scores": evaluate(SentenceTransformer(base_path, device="cpu"), data), "seconds": 0}
        else:
            model, seconds = train(RECIPES[name], data, base_path, args.work / name)
            results[name] = {"scores": evaluate(model, data), "seconds": seconds}
            del model
            gc.collect()
        saved[name] = results[name]
        scores_path.write_text(json.dumps(saved))
        plain = results.get("plain")
        mean = float(np.mean(list(results[name]["scores"].values())))
        line = f"{name:>14}  nDCG@10 {mean:.4f}  train {results[name]['seconds']:>6} s"
        if plain and name not in ("base", "plain"):
            ids = sorted(plain["scores"])
            delta = [results[name]["scores"][i] - plain["scores"][i] for i in ids]
            low, high = bootstrap_ci(delta, n_samples=2000, seed=0)
            line += f"  vs plain {float(np.mean(delta)):+.4f} [{low:+.4f}, {high:+.4f}]"
        print(line, flush=True)


if __name__ == "__main__":
    main()
