"""Re-indexing at corpus scale (#19): the whole `embtune index` pipeline against plain encode + LanceDB add.

    .venv/bin/python -m bench.scale --rows 100000 [--work /tmp/scale] [--kinds ivf_flat,ivf_pq,…] [--ray]

Synthetic chunks (clustered topics: each passage mixes words of one topic with common words; lengths log-normal,
median ~45 words) are imported into a project, then, each in its own process so peak RSS is its own:
  pipeline: build_index (stream pages from SQLite, encode, commit every index.commit_seconds), index.type flat;
  baseline: the same texts in memory, model.encode in the same batches, one LanceDB add per batch (as a plain
  script writes it).
Then `embtune index plan` runs on the pipeline's table: every index type and compression measured against exact
search (recall@10, p50/p95 ms, build s, bytes per vector) and the chooser's pick. `--ray`: the same rows built
again with `--engine ray` on a local Ray (the CPUs of this machine, Ray's startup included in its seconds) in a
second project on the same corpus. A tiny locally built model (tests.tinymodels, 64-d) keeps the pipeline's own
cost visible. Figures go to stdout as one JSON object; progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import log, quiet_environment

ROOT = Path(__file__).resolve().parents[1]
TOPICS = 300
QUERIES = 200


def words(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, size=rng.integers(3, 9))) for _ in range(n)]


def write_corpus(folder: Path, rows: int, seed: int = 0) -> None:
    """A BEIR folder of `rows` passages, streamed to disk (never held whole)."""
    rng = np.random.default_rng(seed)
    common = words(rng, 400)
    topics = [words(rng, 40) for _ in range(TOPICS)]
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as out:
        for i in range(rows):
            topic = topics[i % TOPICS]
            n = int(min(400, max(8, rng.lognormal(math.log(45), 0.6))))
            own = rng.random(n) < 0.4
            text = " ".join(topic[rng.integers(40)] if o else common[rng.integers(400)] for o in own)
            out.write(json.dumps({"_id": f"c{i:07d}", "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as out, (folder / "qrels" / "test.tsv").open("w") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for q in range(QUERIES):
            topic = topics[q % TOPICS]
            text = " ".join(topic[rng.integers(40)] for _ in range(6))
            out.write(json.dumps({"_id": f"q{q}", "text": text}) + "\n")
            qrels.write(f"q{q}\tc{q:07d}\t1\n")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def stage_import(work: Path, rows: int) -> dict[str, Any]:
    from engine.ingest.importing import import_beir
    from engine.project import init_project, open_project
    from tests.tinymodels import build_tiny_embedder

    model = build_tiny_embedder(work / "model") if not (work / "model").exists() else work / "model"
    write_corpus(work / "beir", rows)
    root = work / "project"
    init_project(root)
    (root / "project.yaml").write_text(f"base_model: {model}\nindex:\n  type: flat\n  batch_size: 256\n")
    started = time.perf_counter()
    import_beir(open_project(root), work / "beir")
    return {"import_seconds": round(time.perf_counter() - started, 1), "import_peak_rss_mb": peak_rss_mb()}


def warm_imports() -> None:
    """Import the libraries before either side starts its clock: a fixed ~7 s on this machine that the baseline
    pays before its timer too, and that would otherwise count against the pipeline's rows/s at 20k rows."""
    import lancedb  # noqa: F401
    import sentence_transformers  # noqa: F401


def stage_pipeline(work: Path) -> dict[str, Any]:
    from engine.index.build import build_index
    from engine.project import open_project

    warm_imports()
    started = time.perf_counter()
    result = build_index(open_project(work / "project"))
    seconds = time.perf_counter() - started
    return {
        "pipeline_seconds": round(seconds, 1),
        "pipeline_rows_per_s": round(result.rows / seconds, 1),
        "pipeline_peak_rss_mb": peak_rss_mb(),
        "table": result.table,
        "max_seq_length": result.max_seq_length,
    }


def stage_ray(work: Path) -> dict[str, Any]:
    """The same rows through `--engine ray` on a local Ray (this machine's CPUs), in a second project on the same
    corpus: the pipeline's project would copy every unchanged vector instead of encoding it."""
    import ray

    from engine.index.ray_build import build_index_ray
    from engine.ingest.importing import import_beir
    from engine.project import init_project, open_project

    root = work / "project_ray"
    init_project(root)
    (root / "project.yaml").write_text((work / "project" / "project.yaml").read_text())
    project = open_project(root)
    import_beir(project, work / "beir")
    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    startup = time.perf_counter() - started
    result = build_index_ray(project)
    seconds = time.perf_counter() - started
    ray.shutdown()
    return {
        "ray_seconds": round(seconds, 1),
        "ray_startup_seconds": round(startup, 1),
        "ray_rows_per_s": round(result.rows / seconds, 1),
        "ray_embedded": result.embedded,
        "ray_actors": result.targets["actors"],
        "ray_driver_peak_rss_mb": peak_rss_mb(),
    }


def stage_baseline(work: Path, max_seq_length: int) -> dict[str, Any]:
    """Plain sentence-transformers + LanceDB on the same rows: texts read up front, encode, add per batch."""
    import lancedb
    import pyarrow as pa
    from sentence_transformers import SentenceTransformer

    from engine.project import open_project
    from engine.store import indexes

    rows = indexes.index_chunks(open_project(work / "project").db)
    warm_imports()
    started = time.perf_counter()
    model = SentenceTransformer(str(work / "model"), device="cpu")
    model.max_seq_length = max_seq_length
    db = lancedb.connect(str(work / "baseline"))
    table = None
    for start in range(0, len(rows), 256):
        part = rows[start : start + 256]
        vectors = model.encode([r[3] for r in part], batch_size=32, normalize_embeddings=True)
        data = pa.table(
            {
                "chunk_id": [r[0] for r in part],
                "text": [r[3] for r in part],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1]),
            }
        )
        table = db.create_table("t", data, mode="overwrite") if table is None else table
        if start:
            table.add(data)
    seconds = time.perf_counter() - started
    return {
        "baseline_seconds": round(seconds, 1),
        "baseline_rows_per_s": round(len(rows) / seconds, 1),
        "baseline_peak_rss_mb": peak_rss_mb(),
    }


def stage_ann(work: Path, kinds: list[str]) -> dict[str, Any]:
    """`embtune index plan` on the pipeline's live table: every index type and compression against exact search
    on the project's queries, and the chooser's pick (the smallest, then fastest, meeting index.min_recall)."""
    from engine.index.plan import plan_index
    from engine.project import open_project

    started = time.perf_counter()
    plan = plan_index(open_project(work / "project"), kinds=tuple(kinds))
    out: dict[str, Any] = {"plan_seconds": round(time.perf_counter() - started, 1)}
    out.update({k: plan.to_json()[k] for k in ("min_recall", "queries", "pick", "index_pick")})
    for option in plan.options:
        row = option.to_json()
        out[option.name] = {k: row[k] for k in ("recall_at_10", "bytes_per_vector", "p50_ms", "p95_ms")}
        out[option.name].update(build_seconds=option.build_seconds, **option.settings)
    return out


def child(stage: str, work: Path, *extra: str) -> dict[str, Any]:
    """Run one stage in a fresh interpreter (its own peak RSS) and return its JSON."""
    command = [sys.executable, "-m", "bench.scale", "--stage", stage, "--work", str(work), *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    quiet_environment()
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--stage", default=None)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--kinds", default="ivf_flat,ivf_pq,ivf_hnsw_sq,ivf_rq")
    parser.add_argument("--ray", action="store_true", help="also build the rows with --engine ray (local Ray)")
    args = parser.parse_args()
    if args.stage:
        stages = {
            "import": lambda: stage_import(args.work, args.rows),
            "pipeline": lambda: stage_pipeline(args.work),
            "baseline": lambda: stage_baseline(args.work, args.max_seq_length),
            "ann": lambda: stage_ann(args.work, [k for k in args.kinds.split(",") if k]),
            "ray": lambda: stage_ray(args.work),
        }
        print(json.dumps(stages[args.stage]()))
        return
    work = args.work or Path(f"/tmp/embtune-scale-{args.rows}")
    if work.exists():
        raise SystemExit(f"{work} exists: remove it or name another --work")
    work.mkdir(parents=True)
    figures: dict[str, Any] = {"rows": args.rows}
    for stage in ("import", "pipeline"):
        log(f"{stage} ({args.rows:,} rows)")
        figures.update(child(stage, work, "--rows", str(args.rows)))
    log("baseline")
    figures.update(child("baseline", work, "--max-seq-length", str(figures["max_seq_length"])))
    figures["pipeline_vs_baseline"] = round(figures["pipeline_seconds"] / figures["baseline_seconds"], 3)
    if args.ray:
        log("ray")
        figures.update(child("ray", work))
        figures["ray_vs_pipeline"] = round(figures["ray_seconds"] / figures["pipeline_seconds"], 3)
    log("ann")
    figures["ann"] = child("ann", work, "--kinds", args.kinds)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
