"""Importing at corpus scale (#19): wall time, rows/s, peak RSS and the longest wait for the write lock.

    .venv/bin/python -m bench.import_scale --rows 100000 [--work /tmp/import-scale]

Writes a BEIR folder of `rows` synthetic passages (bench.scale's corpus: clustered topics, log-normal lengths with
a median of ~45 words; generated here in vectorised blocks, since 1M rows one word at a time takes many minutes),
kept in --work and reused by later runs of the same size. Each run imports it into a fresh project in a child
process (its own peak RSS, ru_maxrss) while a second process tries BEGIN IMMEDIATE on project.db every 100 ms
and records how long each try waited: its longest wait is how long the import held the write lock (within a
probe's ~100 ms). Figures go to stdout as one JSON object; progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import log, quiet_environment
from bench.scale import QUERIES, TOPICS, words
from engine.store.db import BUSY_TIMEOUT_ENV

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 20_000
PROBE_EVERY_S = 0.1


def write_corpus(folder: Path, rows: int, seed: int = 0) -> None:
    """bench.scale.write_corpus's corpus (same vocabulary, topic mix and lengths), drawn a block at a time."""
    rng = np.random.default_rng(seed)
    common = np.array(words(rng, 400), dtype=object)
    topics = np.array([words(rng, 40) for _ in range(TOPICS)], dtype=object)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as out:
        for start in range(0, rows, BLOCK):
            ids = np.arange(start, min(rows, start + BLOCK))
            lengths = np.clip(rng.lognormal(math.log(45), 0.6, len(ids)).astype(int), 8, 400)
            total = int(lengths.sum())
            owner = np.repeat(ids % TOPICS, lengths)
            own = rng.random(total) < 0.4
            picked = np.where(own, topics[owner, rng.integers(40, size=total)], common[rng.integers(400, size=total)])
            ends = np.cumsum(lengths)
            lines = []
            for i, end, n in zip(ids, ends, lengths, strict=True):
                text = " ".join(picked[end - n : end])
                lines.append(json.dumps({"_id": f"c{i:07d}", "text": text}) + "\n")
            out.writelines(lines)
    with (folder / "queries.jsonl").open("w") as out, (folder / "qrels" / "test.tsv").open("w") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for q in range(QUERIES):
            text = " ".join(topics[q % TOPICS][rng.integers(40)] for _ in range(6))
            out.write(json.dumps({"_id": f"q{q}", "text": text}) + "\n")
            qrels.write(f"q{q}\tc{q:07d}\t1\n")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def stage_import(work: Path) -> dict[str, Any]:
    from engine.ingest.importing import import_beir
    from engine.project import open_project

    project = open_project(work / "project")
    before = peak_rss_mb()
    commit: dict[int, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "commit":  # 0 once the write lock is held, 1 just before COMMIT
            commit[done] = time.perf_counter()

    started = time.perf_counter()
    result = import_beir(project, work / "beir", progress)
    seconds = time.perf_counter() - started
    rows = result["added"]["documents"]
    return {
        "import_seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "documents_added": rows,
        "copy_under_lock_s": round(commit[1] - commit[0], 2),
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_import_mb": before,
    }


def stage_probe(db_path: Path, stop: Path) -> dict[str, Any]:
    """Take the write lock (the store's `write`: BEGIN IMMEDIATE) every PROBE_EVERY_S until `stop` exists: the
    longest wait and how many tries waited over 1 s. SQLite's busy handler waits the whole time (its sleeps are
    at most 100 ms), so a wait is the holder's time within that."""
    os.environ[BUSY_TIMEOUT_ENV] = str(3_600_000)
    from engine.store.db import open_db, write

    db = open_db(db_path)
    waits: list[float] = []
    while not stop.exists():
        time.sleep(PROBE_EVERY_S)
        started = time.monotonic()
        with write(db):
            waits.append(time.monotonic() - started)
    db.conn.close()
    return {
        "lock_longest_wait_s": round(max(waits, default=0.0), 2),
        "lock_probes": len(waits),
        "lock_probes_over_1s": sum(w > 1.0 for w in waits),
    }


def child(*args: str, wait: bool = True) -> Any:
    command = [sys.executable, "-m", "bench.import_scale", *args]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return _result(process) if wait else process


def _result(process: subprocess.Popen) -> dict[str, Any]:
    out, err = process.communicate()
    if process.returncode:
        raise SystemExit(f"{process.args} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    quiet_environment()
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--stage", default=None)
    parser.add_argument("--stop", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(f"/tmp/embtune-import-scale-{args.rows}")
    if args.stage == "import":
        print(json.dumps(stage_import(work)))
        return
    if args.stage == "probe":
        print(json.dumps(stage_probe(work / "project" / "project.db", args.stop)))
        return
    figures = run(work, args.rows)
    print(json.dumps(figures, indent=1))


def run(work: Path, rows: int) -> dict[str, Any]:
    from engine.project import init_project

    beir = work / "beir"
    if not (beir / "queries.jsonl").exists():
        log(f"writing {rows:,} passages to {beir}")
        write_corpus(beir, rows)
    project = work / "project"
    if project.exists():
        import shutil

        shutil.rmtree(project)
    init_project(project).close()
    stop = work / "probe.stop"
    stop.unlink(missing_ok=True)
    probe = child("--stage", "probe", "--work", str(work), "--stop", str(stop), wait=False)
    log(f"importing {rows:,} passages")
    figures: dict[str, Any] = {"rows": rows, "corpus_mb": round((beir / "corpus.jsonl").stat().st_size / 2**20, 1)}
    try:
        figures.update(child("--stage", "import", "--work", str(work)))
    finally:
        stop.touch()
        figures.update(_result(probe))
    return figures


if __name__ == "__main__":
    main()
