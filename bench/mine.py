"""Hard-negative mining on the sample project: `embtune mine` against a plain mine_hard_negatives call.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/mine.py [--repeats 3] [--json results.json]

The project is `embtune init DIR --from sample_project` (base model all-MiniLM-L6-v2, the default `mining:`
settings: ranks 10-50, relative margin 0.05, top 3). Everything runs in this one process, after an untimed
warm-up (imports, one model load, one small encode):

- embtune, cold: engine.data.mining.mine_negatives on the project with its embedding cache and negatives emptied
  first (untimed), so it encodes the whole corpus and every train query, as a first run does;
- plain: what a user would write with sentence-transformers alone, timed from reading the sample's files: the
  train pairs from qrels/train.tsv, the corpus as title + newline + text (the project's chunk texts, checked
  equal), SentenceTransformer(...), mine_hard_negatives with the same settings, batch 32, use_faiss=False,
  and the max_seq_length embtune fits to the corpus (the model's default 256 is also timed once).

`--repeats` rounds alternate the order (embtune first, then plain first, ...); medians are compared, target
embtune/plain <= 1.10. Process CPU time is reported beside wall time, and so is the time inside
SentenceTransformer.encode on both sides: encoding is the same work in both and dominates, so on a shared
machine, where another process can stretch one encode by half, "other" (total minus encoding) shows what
embtune adds around the library (reading the store, fitting the length, caching, filtering, writing).
Then one warm embtune run (cache filled, nothing new to store) and the agreement of the two negative sets per
query (they differ only where embtune excludes chunks of other relevant documents or skips candidates review
ruled out).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import log, quiet_environment  # bench/common.py (this folder is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_project"
sys.path.insert(0, str(ROOT))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def make_project(root: Path) -> Any:
    """`embtune init ROOT --from sample_project`, through the same engine calls the command makes."""
    from engine.ingest.importing import import_sources
    from engine.project import init_project

    project = init_project(root, template=SAMPLE)
    import_sources(project, SAMPLE, project.config.data.sources)
    return project


def reset(project: Any) -> None:
    """Empty the embedding cache and the negatives (untimed): the next mine is a first run."""
    from engine.store import embeddings, negatives

    embeddings.clear_cache(project.db)
    negatives.delete_all(project.db)


ENCODING = {"seconds": 0.0}


def time_encoding() -> None:
    """Add the wall time spent in SentenceTransformer.encode (both sides encode only through it) to ENCODING, so
    the work around the encoding, which is what embtune adds or saves, can be read apart from it."""
    from sentence_transformers import SentenceTransformer

    original = SentenceTransformer.encode

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            ENCODING["seconds"] += time.perf_counter() - start

    SentenceTransformer.encode = timed  # type: ignore[method-assign]


def embtune_once(project: Any) -> tuple[float, float, dict[str, Any]]:
    from engine.data.mining import mine_negatives

    start, cpu = time.perf_counter(), time.process_time()
    summary = mine_negatives(project)
    return time.perf_counter() - start, time.process_time() - cpu, summary


def plain_once(model_path: str, max_seq_length: int | None, settings: dict[str, Any]) -> tuple[float, float, Any]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    start, cpu = time.perf_counter(), time.process_time()
    docs = {
        d["_id"]: f"{d['title']}\n{d['text']}" if d.get("title") else d["text"]
        for d in read_jsonl(SAMPLE / "corpus.jsonl")
    }
    queries = {q["_id"]: q["text"] for q in read_jsonl(SAMPLE / "queries.jsonl")}
    anchors, positives = [], []
    for line in (SAMPLE / "qrels" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, doc, score = line.split("\t")
        if float(score) > 0:
            anchors.append(queries[qid])
            positives.append(docs[doc])
    model = SentenceTransformer(model_path, local_files_only=True, device="cpu")
    if max_seq_length:
        model.max_seq_length = max_seq_length
    with contextlib.redirect_stderr(io.StringIO()):  # its encode bars show even with verbose=False
        mined = mine_hard_negatives(
            Dataset.from_dict({"anchor": anchors, "positive": positives}),
            model,
            corpus=list(docs.values()),
            range_min=settings["range_min"],
            range_max=settings["range_max"],
            relative_margin=settings["relative_margin"],
            absolute_margin=settings["absolute_margin"],
            num_negatives=settings["num_negatives"],
            sampling_strategy=settings["sampling"],
            batch_size=32,
            use_faiss=False,
            verbose=False,
            output_format="triplet",
        )
    return time.perf_counter() - start, time.process_time() - cpu, mined


def agreement(project: Any, mined: Any) -> dict[str, float]:
    """Per query: the share of plain's negatives that embtune stored too."""
    from engine.store.corpus import chunk_texts, query_texts
    from engine.store.negatives import all_negatives

    texts = chunk_texts(project.db)
    query_text = query_texts(project.db)
    ours: dict[str, set[str]] = {}
    for row in all_negatives(project.db):
        ours.setdefault(query_text[row["query_id"]], set()).add(texts[row["chunk_id"]])
    theirs: dict[str, set[str]] = {}
    for anchor, negative in zip(mined["anchor"], mined["negative"], strict=True):
        theirs.setdefault(anchor, set()).add(negative)
    shared = [len(ours.get(q, set()) & n) / len(n) for q, n in theirs.items()]
    return {
        "queries_plain": len(theirs),
        "queries_embtune": len(ours),
        "mean_overlap": round(statistics.mean(shared), 4) if shared else 0.0,
        "identical_queries": sum(ours.get(q, set()) == n for q, n in theirs.items()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    quiet_environment()
    from engine.models.encoder import fit_max_seq_length
    from engine.models.resolve import load_embedder, resolve_model
    from engine.store.corpus import retrieval_chunks

    with tempfile.TemporaryDirectory(prefix="embtune-bench-mine-") as tmp:
        project = make_project(Path(tmp) / "project")
        config = project.config
        model_path = str(resolve_model(config.base_model, project.root).path)
        _, _, chunk_texts = retrieval_chunks(project.db)
        corpus_texts = [
            f"{d['title']}\n{d['text']}" if d.get("title") else d["text"] for d in read_jsonl(SAMPLE / "corpus.jsonl")
        ]
        assert sorted(corpus_texts) == sorted(chunk_texts), "plain corpus differs from the project's chunks"
        log("warm-up: imports, one model load, one small encode")
        warm = load_embedder(model_path)
        length = fit_max_seq_length(warm, chunk_texts)
        warm.encode(chunk_texts[:8])
        settings = {
            "range_min": config.mining.range_min,
            "range_max": config.mining.range_max,
            "relative_margin": config.mining.relative_margin,
            "absolute_margin": config.mining.absolute_margin,
            "num_negatives": config.mining.num_negatives,
            "sampling": config.mining.sampling,
        }
        times: dict[str, list[float]] = {"embtune": [], "plain": []}
        cpu_times: dict[str, list[float]] = {"embtune": [], "plain": []}
        encode_times: dict[str, list[float]] = {"embtune": [], "plain": []}
        time_encoding()
        summary: dict[str, Any] = {}
        mined: Any = None
        for round_no in range(args.repeats):
            order = ("embtune", "plain") if round_no % 2 == 0 else ("plain", "embtune")
            for who in order:
                ENCODING["seconds"] = 0.0
                if who == "embtune":
                    reset(project)
                    seconds, cpu, summary = embtune_once(project)
                else:
                    seconds, cpu, mined = plain_once(model_path, length, settings)
                times[who].append(seconds)
                cpu_times[who].append(cpu)
                encode_times[who].append(ENCODING["seconds"])
                log(
                    f"round {round_no + 1} {who}: {seconds:.2f} s wall ({ENCODING['seconds']:.2f} s encoding), "
                    f"{cpu:.2f} s CPU (load {os.getloadavg()[0]:.2f})"
                )
        plain_default, _, _ = plain_once(model_path, None, settings)
        log(f"plain at the model's default max_seq_length: {plain_default:.2f} s")
        warm_seconds, _, warm_summary = embtune_once(project)
        log(f"embtune warm (cache filled, nothing new): {warm_seconds:.2f} s")
        medians = {who: statistics.median(values) for who, values in times.items()}
        cpu_medians = {who: statistics.median(values) for who, values in cpu_times.items()}
        result = {
            "project": "sample_project",
            "model": config.base_model,
            "max_seq_length": length,
            "settings": settings,
            "pairs": summary["pairs"],
            "queries": summary["queries"],
            "corpus_chunks": len(chunk_texts),
            "repeats": args.repeats,
            "embtune_seconds": [round(t, 2) for t in times["embtune"]],
            "plain_seconds": [round(t, 2) for t in times["plain"]],
            "embtune_median": round(medians["embtune"], 2),
            "plain_median": round(medians["plain"], 2),
            "ratio": round(medians["embtune"] / medians["plain"], 3),
            "embtune_cpu_seconds": [round(t, 2) for t in cpu_times["embtune"]],
            "plain_cpu_seconds": [round(t, 2) for t in cpu_times["plain"]],
            "cpu_ratio": round(cpu_medians["embtune"] / cpu_medians["plain"], 3),
            "embtune_encoding_seconds": [round(t, 2) for t in encode_times["embtune"]],
            "plain_encoding_seconds": [round(t, 2) for t in encode_times["plain"]],
            "embtune_other_median": round(
                statistics.median(t - e for t, e in zip(times["embtune"], encode_times["embtune"], strict=True)), 2
            ),
            "plain_other_median": round(
                statistics.median(t - e for t, e in zip(times["plain"], encode_times["plain"], strict=True)), 2
            ),
            "plain_default_length_seconds": round(plain_default, 2),
            "embtune_warm_seconds": round(warm_seconds, 2),
            "warm_negatives_added": warm_summary["negatives_added"],
            "embedding_cache_handed_over": summary["embedding_cache"],
            "embtune_summary": {
                k: summary[k]
                for k in ("negatives_added", "short", "excluded_relevant_document", "skipped_false_negative")
            },
            "plain_triplets": len(mined),
            "agreement": agreement(project, mined),
            "load_average": round(os.getloadavg()[0], 2),
        }
        project.close()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    verdict = "within" if result["ratio"] <= 1.10 else "ABOVE"
    log(f"embtune/plain = {result['ratio']} wall ({verdict} the 1.10 target), {result['cpu_ratio']} CPU")


if __name__ == "__main__":
    main()
