"""Quality of embtune's default pipeline against a plain sentence-transformers fine-tune, on a BEIR set.

    .venv/bin/python bench/pipeline.py --data ../shared/datasets/obliqa_adgm --work /tmp/pipeline \\
        [--max-steps 40] [--test-queries 600] [--distractors 3500] [--json results.json]

1. embtune, as a user runs it: `embtune init`, `import --beir` (train.tsv → train split, test.tsv → test split),
   `mine`, `train --wait` with the project defaults (mined hard negatives, fitted max_seq_length, the dev-slice
   rule, no-duplicates sampler).
2. The plain script a user would write (bench/train.py's plain worker): every train pair as (query, positive),
   MultipleNegativesRankingLoss, batch 32, lr 2e-5, warmup 10%, seed 42, no-duplicates sampler, the model's own
   max_seq_length, the same number of steps as the embtune run.
3. `embtune eval --models base,<embtune model>,<plain model>` on the test split; with --test-queries N, on a
   seeded subset (N test queries over their relevant passages plus --distractors other passages) so that three
   models fit in CPU time. Every model sees the same queries and passages.

Prints the metrics table and writes --json with the eval object and timings. Figures from a CPU machine are
slow (MiniLM: ~10-25 s a step); --max-steps caps both trainings alike.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import quiet_environment  # bench/common.py (this folder is on sys.path when run)

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


def plain_finetune(project_root: Path, dest: Path, steps: int) -> float:
    """bench/train.py's plain worker on every train pair of the project (no negatives, no dev slice)."""
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
        "max_steps": steps,
        "batch_size": 32,
        "lr": 2e-5,
        "warmup": 0.1,
        "seed": 42,
        "columns": data.columns(),
        "out": str(dest),
    }
    spec_path = dest.parent / "plain_spec.json"
    spec_path.write_text(json.dumps(spec))
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "bench" / "train.py"), "--plain-worker", str(spec_path)], check=True)
    return round(time.perf_counter() - started, 1)


def write_test_subset(data: Path, dest: Path, n_queries: int, distractors: int, seed: int = 7) -> Path:
    """A BEIR folder with n test queries, their relevant passages and `distractors` other passages (seeded)."""
    relevant: dict[str, list[str]] = {}
    for line in (data / "qrels" / "test.tsv").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] != "query-id" and int(parts[2]) > 0:
            relevant.setdefault(parts[0], []).append(parts[1])
    rng = random.Random(seed)
    picked = sorted(relevant)
    rng.shuffle(picked)
    queries = set(picked[:n_queries])
    needed = {d for q in queries for d in relevant[q]}
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").open()]
    others = [c["_id"] for c in corpus if c["_id"] not in needed]
    rng.shuffle(others)
    keep = needed | set(others[:distractors])
    (dest / "qrels").mkdir(parents=True, exist_ok=True)
    with (dest / "corpus.jsonl").open("w") as f:
        f.writelines(json.dumps(c) + "\n" for c in corpus if c["_id"] in keep)
    with (dest / "queries.jsonl").open("w") as f:
        for line in (data / "queries.jsonl").open():
            if json.loads(line)["_id"] in queries:
                f.write(line.rstrip("\n") + "\n")
    rows = [f"{q}\t{d}\t1\n" for q in sorted(queries) for d in relevant[q]]
    (dest / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(rows))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="A BEIR folder with qrels/train.tsv and test.tsv.")
    parser.add_argument("--work", type=Path, required=True, help="A new folder for the projects and models.")
    parser.add_argument("--max-steps", type=int, help="Cap both trainings at this many steps.")
    parser.add_argument("--test-queries", type=int, help="Evaluate on this many test queries (a seeded subset).")
    parser.add_argument("--distractors", type=int, default=3500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    quiet_environment()
    work = args.work.resolve()
    work.mkdir(parents=True)
    project = work / "project"
    timings: dict[str, float] = {}
    embtune("init", str(project))
    timings["import"] = embtune("import", str(project), "--beir", str(args.data.resolve()))
    timings["mine"] = embtune("mine", str(project))
    train = ["train", str(project), "--wait", "--json"]
    if args.max_steps:
        train += ["--max-steps", str(args.max_steps)]
    timings["embtune_train"] = embtune(*train, out=work / "train.json")
    run = json.loads((work / "train.json").read_text())
    timings["plain_train"] = plain_finetune(project, work / "plain-model", run["steps"])
    tuned = str(project / run["model_path"])
    target = project
    if args.test_queries:
        target = work / "eval-project"
        embtune("init", str(target))
        subset = write_test_subset(args.data.resolve(), work / "eval-beir", args.test_queries, args.distractors)
        embtune("import", str(target), "--beir", str(subset))
    models = ",".join(["base", tuned, str(work / "plain-model")])
    evaluate = ["eval", str(target), "--models", models, "--allow-leakage"]
    timings["eval"] = embtune(*evaluate, "--json", out=work / "eval.json")
    result: dict[str, Any] = json.loads((work / "eval.json").read_text())
    from engine.evaluate.report import render_text

    print(render_text(result))
    print("timings (s):", timings)
    if args.json:
        args.json.write_text(json.dumps({"eval": result, "timings": timings, "train": run}, indent=1))


if __name__ == "__main__":
    main()
