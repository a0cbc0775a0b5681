"""Quality and time of embtune's default pipeline against a plain sentence-transformers fine-tune, on a BEIR set.

    .venv/bin/python bench/pipeline.py --data ../shared/datasets/obliqa_adgm --work /tmp/pipeline \\
        [--train-pairs 1200] [--test-queries 300] [--distractors 3000] [--warm] [--seed 42] [--json results.json]

1. embtune, as a user runs it: `embtune init`, `import --beir`, (with --warm: `eval --models base` first, which
   caches the base model's corpus vectors as a gate run does), `mine`, `train --wait` with the project defaults.
2. The plain script a user would write (bench/train.py's plain worker): every train pair as (query, positive),
   MultipleNegativesRankingLoss, batch 32, lr 2e-5, warmup 10%, seed 42, no-duplicates sampler, the model's own
   max_seq_length (256), one epoch (embtune's default batch on a small set is 16: the same rows, twice the steps).
3. `embtune eval --models base,<embtune model>,<plain model>` on the test split: every model sees the same queries
   and passages; per-query nDCG@10 gains with bootstrap intervals, over the base and of embtune over the plain
   script (mean difference, 95% interval, paired p).

--train-pairs / --test-queries / --distractors make a seeded working subset of the set (that many train pairs,
test queries, and other passages beside the judged ones), so a 2-core CPU finishes in minutes; without them the
whole set is used. Prints the metrics table, the wall times of every step and mine+train over the plain training.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import quiet_environment, read_qrels  # bench/common.py (this folder is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EMBTUNE = [sys.executable, "-c", "from engine.cli.main import main; main()"]
MODEL = "all-MiniLM-L6-v2"


def embtune(*args: str, out: Path | None = None) -> float:
    """Run an embtune command as a user would; its stdout goes to `out` when given. Returns wall seconds."""
    started = time.perf_counter()
    if out is None:
        subprocess.run([*EMBTUNE, *args], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    else:
        with out.open("w") as sink:
            subprocess.run([*EMBTUNE, *args], check=True, stdout=sink, cwd=ROOT)
    return round(time.perf_counter() - started, 1)


def plain_finetune(project_root: Path, dest: Path, seed: int = 42) -> float:
    """bench/train.py's plain worker on every train pair of the project (no negatives, no dev slice): one epoch at
    batch 32, as the user's script runs (not embtune's step count: at its batch 16 that would be two epochs)."""
    from engine.models.resolve import resolve_model
    from engine.project import open_project
    from engine.train.run import load_data
    from engine.train.settings import TrainSettings

    project = open_project(project_root)
    data = load_data(project, TrainSettings(hard_negatives=False, dev_fraction=0.0))
    project.close()
    spec = {
        "model": str(resolve_model(MODEL).path),
        "max_seq_length": 256,  # all-MiniLM-L6-v2's own setting
        "max_steps": math.ceil(len(data.columns()["anchor"]) / 32),
        "batch_size": 32,
        "lr": 2e-5,
        "warmup": 0.1,
        "seed": seed,
        "columns": data.columns(),
        "out": str(dest),
    }
    spec_path = dest.parent / "plain_spec.json"
    spec_path.write_text(json.dumps(spec))
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "bench" / "train.py"), "--plain-worker", str(spec_path)], check=True)
    return round(time.perf_counter() - started, 1)


def versus_plain(project_root: Path, eval_run: int, tuned: str, plain: str) -> dict[str, Any]:
    """embtune's model against the plain script's, query by query: the mean nDCG@10 difference with its 95%
    bootstrap interval and the paired bootstrap p-value (engine.retrieval.metrics, as `embtune eval` judges)."""
    from engine.evaluate.results import load_eval_result
    from engine.project import open_project
    from engine.retrieval.metrics import bootstrap_ci, paired_bootstrap_p

    project = open_project(project_root)
    result = load_eval_result(project, eval_run)
    project.close()
    assert result is not None, f"eval run {eval_run} has no stored per-query results"
    ours = [q.metrics[tuned]["ndcg@10"] for q in result.queries]
    theirs = [q.metrics[plain]["ndcg@10"] for q in result.queries]
    diffs = [a - b for a, b in zip(ours, theirs, strict=True)]
    low, high = bootstrap_ci(diffs, n_samples=10_000)
    return {
        "queries": len(diffs),
        "delta_ndcg@10": round(sum(diffs) / len(diffs), 4),
        "interval": [round(low, 4), round(high, 4)],
        "p": round(paired_bootstrap_p(ours, theirs), 4),
        "better": sum(d > 1e-9 for d in diffs),
        "worse": sum(d < -1e-9 for d in diffs),
    }


def write_subset(data: Path, dest: Path, train_pairs: int, test_queries: int, distractors: int, seed: int = 7) -> Path:
    """A BEIR folder: `train_pairs` train pairs, `test_queries` test queries, their passages and `distractors`
    other passages (seeded)."""
    rng = random.Random(seed)
    train, test = read_qrels(data / "qrels" / "train.tsv"), read_qrels(data / "qrels" / "test.tsv")
    pairs = sorted((q, d) for q, docs in train.items() for d in docs)
    pairs = sorted(rng.sample(pairs, min(train_pairs, len(pairs))))
    picked = sorted(test)
    picked = sorted(rng.sample(picked, min(test_queries, len(picked))))
    needed = {d for _, d in pairs} | {d for q in picked for d in test[q]}
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").open()]
    others = sorted(c["_id"] for c in corpus if c["_id"] not in needed)
    keep = needed | set(rng.sample(others, min(distractors, len(others))))
    queries = {q for q, _ in pairs} | set(picked)
    (dest / "qrels").mkdir(parents=True, exist_ok=True)
    with (dest / "corpus.jsonl").open("w") as f:
        f.writelines(json.dumps(c) + "\n" for c in corpus if c["_id"] in keep)
    with (dest / "queries.jsonl").open("w") as f:
        f.writelines(line for line in (data / "queries.jsonl").open() if json.loads(line)["_id"] in queries)
    head = "query-id\tcorpus-id\tscore\n"
    (dest / "qrels" / "train.tsv").write_text(head + "".join(f"{q}\t{d}\t1\n" for q, d in pairs))
    (dest / "qrels" / "test.tsv").write_text(head + "".join(f"{q}\t{d}\t1\n" for q in picked for d in test[q]))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="A BEIR folder with qrels/train.tsv and test.tsv.")
    parser.add_argument("--work", type=Path, required=True, help="A new folder for the projects and models.")
    parser.add_argument("--train-pairs", type=int, help="Work on a seeded subset: this many train pairs...")
    parser.add_argument("--test-queries", type=int, default=300, help="...this many test queries (with a subset)...")
    parser.add_argument("--distractors", type=int, default=3000, help="...and this many other passages.")
    parser.add_argument("--warm", action="store_true", help="Evaluate the base model first (caches its vectors).")
    parser.add_argument("--seed", type=int, default=42, help="Training seed of both sides (batch order, init).")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    quiet_environment()
    work = args.work.resolve()
    work.mkdir(parents=True)
    source = args.data.resolve()
    if args.train_pairs:
        source = write_subset(source, work / "beir", args.train_pairs, args.test_queries, args.distractors)
    project = work / "project"
    timings: dict[str, float] = {}
    embtune("init", str(project))
    timings["import"] = embtune("import", str(project), "--beir", str(source))
    if args.warm:
        timings["base_eval"] = embtune("eval", str(project), "--models", "base", "--allow-leakage")
    timings["mine"] = embtune("mine", str(project))
    seed = ("--seed", str(args.seed))
    timings["embtune_train"] = embtune("train", str(project), *seed, "--wait", "--json", out=work / "train.json")
    run = json.loads((work / "train.json").read_text())
    timings["plain_train"] = plain_finetune(project, work / "plain-model", args.seed)
    tuned = str(project / run["model_path"])
    models = ",".join(["base", tuned, str(work / "plain-model")])
    timings["eval"] = embtune(
        "eval", str(project), "--models", models, "--allow-leakage", "--json", out=work / "eval.json"
    )
    result: dict[str, Any] = json.loads((work / "eval.json").read_text())
    from engine.evaluate.report import render_text

    ratio = (timings["mine"] + timings["embtune_train"]) / timings["plain_train"]
    versus = versus_plain(project, result["run_id"], tuned, str(work / "plain-model"))
    print(render_text(result))
    print(
        f"embtune vs plain: nDCG@10 {versus['delta_ndcg@10']:+.4f}, 95% interval "
        f"[{versus['interval'][0]:+.4f}, {versus['interval'][1]:+.4f}], p = {versus['p']}, "
        f"{versus['better']} queries better / {versus['worse']} worse"
    )
    print("timings (s):", timings)
    print(f"mine + train = {ratio:.2f} x the plain training")
    if args.json:
        summary = {"eval": result, "versus_plain": versus, "timings": timings, "ratio": ratio, "train": run}
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
