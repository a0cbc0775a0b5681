"""`embtune eval` on SciFact against sentence-transformers' InformationRetrievalEvaluator, and the embedding cache.

    HF_HUB_OFFLINE=1 flock /tmp/embtune-bench.lock .venv/bin/python bench/eval.py [--data ../shared/datasets/scifact]
        [--repeats 1] [--warm-repeats 3] [--json results.json]

A temporary project is made with the real commands (`embtune init DIR`, `embtune import DIR --beir FOLDER`, where
FOLDER links SciFact's corpus.jsonl, queries.jsonl and qrels/test.tsv + train.tsv: 300 judged test queries,
5,183 abstracts). The default base model is all-MiniLM-L6-v2 (the offline pip package). In this one process,
after an untimed warm-up (imports, one model load, one small encode):

1. Cold, alternating order over --repeats rounds, each embtune round on a freshly imported project (empty cache):
   - embtune: engine.evaluate.run.run_eval(project, ["base"], allow_leakage=True): what `embtune eval DIR --models
     base --allow-leakage` runs (SciFact's test split repeats 3 train queries: the guard names them)
     (load + fit max_seq_length, leakage guard, encode corpus and queries into the cache, search, metrics,
     bootstrap intervals, store the run);
   - plain: SentenceTransformer(path) with max_seq_length set to the length embtune fitted (like with like: on
     SciFact it is the model's own 256), then InformationRetrievalEvaluator(queries, corpus, relevant_docs,
     batch_size=32) called on it: it encodes the same 300 queries and 5,183 title + "\\n" + text passages itself.
   Numbers: Recall@1/5/10/100, MRR@10, nDCG@10 and MAP@100 of both, and the largest absolute difference. The
   evaluator is also given embtune's cached corpus vectors, which separates metric code from encoding noise
   (different batch composition pads differently, so vectors may differ in the last float bits).
2. Cache: run_eval again on the unchanged project (--warm-repeats times); speed-up = cold / warm median.
On 2 idle cores each cold pass takes ~3.5 min. Smoke test (numbers then mean nothing): --limit-docs 300
--limit-queries 20.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
BATCH = 32
KEYS = ("recall@1", "recall@5", "recall@10", "recall@100", "mrr@10", "ndcg@10", "map@100")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


# --- data and projects ----------------------------------------------------------------------------------


def write_beir(source: Path, folder: Path, limit_docs: int | None, limit_queries: int | None) -> Path:
    """SciFact as a BEIR folder with test and train qrels: links when unlimited, small copies for smoke tests."""
    (folder / "qrels").mkdir(parents=True)
    if limit_docs is None and limit_queries is None:
        for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "qrels/train.tsv"):
            (folder / name).symlink_to(source / name)
        return folder
    kept: dict[str, list[list[str]]] = {}
    for split in ("test", "train"):
        rows = [line.rstrip("\n").split("\t") for line in (source / "qrels" / f"{split}.tsv").open()][1:]
        queries = list(dict.fromkeys(r[0] for r in rows))[: limit_queries or None]
        kept[split] = [r for r in rows if r[0] in set(queries)]
        (folder / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in kept[split])
        )
    needed = {r[1] for rows in kept.values() for r in rows}
    lines = (source / "corpus.jsonl").read_text().splitlines()
    room = max(0, (limit_docs or len(lines)) - len(needed))
    chosen = []
    for line in lines:
        doc = json.loads(line)["_id"]
        if doc in needed or room > 0:
            room -= doc not in needed
            chosen.append(line)
    (folder / "corpus.jsonl").write_text("\n".join(chosen) + "\n")
    wanted = {r[0] for rows in kept.values() for r in rows}
    queries = [
        line
        for line in (source / "queries.jsonl").read_text().splitlines()
        if line.strip() and json.loads(line)["_id"] in wanted
    ]
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n")
    return folder


def embtune(*args: str) -> None:
    """The real command line (the console script next to this interpreter)."""
    command = [str(Path(sys.executable).parent / "embtune"), *args]
    subprocess.run(command, check=True, capture_output=True, text=True)


def new_project(work: Path, beir: Path, name: str) -> Any:
    from engine.project import open_project

    root = work / name
    embtune("init", str(root))
    embtune("import", str(root), "--beir", str(beir))
    return open_project(root)


# --- the two sides --------------------------------------------------------------------------------------


def run_embtune(project: Any) -> tuple[dict[str, Any], float, float]:
    from engine.evaluate.run import run_eval

    cpu, start = cpu_seconds(), time.perf_counter()
    # SciFact's test split repeats 3 train queries (the guard names them); measured anyway, like the evaluator
    report = run_eval(project, ["base"], allow_leakage=True)
    return report.to_json(), time.perf_counter() - start, cpu_seconds() - cpu


def evaluator_data(project: Any) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    from engine.store import corpus

    chunk_ids, chunk_docs, texts = corpus.retrieval_chunks(project.db)
    if chunk_ids != chunk_docs:
        raise RuntimeError("expected one source chunk per document (chunk id = document id) for a BEIR import")
    judged = corpus.judged_queries(project.db, "test")
    return (
        {q.id: q.text for q in judged},
        dict(zip(chunk_docs, texts, strict=True)),
        {q.id: set(q.relevant) for q in judged},
    )


def make_evaluator(data: tuple[dict[str, str], dict[str, str], dict[str, set[str]]]) -> Any:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    queries, corpus_texts, relevant = data
    return InformationRetrievalEvaluator(
        queries,
        corpus_texts,
        relevant,
        name="scifact",
        batch_size=BATCH,
        accuracy_at_k=[1, 5, 10, 100],
        precision_recall_at_k=[1, 5, 10, 100],
        mrr_at_k=[10],
        ndcg_at_k=[10],
        map_at_k=[100],
        write_csv=False,
        show_progress_bar=False,
    )


def ir_metrics(result: dict[str, float]) -> dict[str, float]:
    return {key: float(result[f"scifact_cosine_{key}"]) for key in KEYS}


def run_plain(model_path: str, max_seq_length: int, data: Any) -> tuple[dict[str, float], float, float]:
    from sentence_transformers import SentenceTransformer

    cpu, start = cpu_seconds(), time.perf_counter()
    model = SentenceTransformer(model_path, device="cpu")
    model.max_seq_length = max_seq_length
    result = make_evaluator(data)(model)
    return ir_metrics(result), time.perf_counter() - start, cpu_seconds() - cpu


def ir_on_cached_vectors(project: Any, data: Any) -> dict[str, float]:
    """The evaluator given embtune's cached corpus vectors (no encoding of the corpus on its side)."""
    import torch

    from engine.models.encoder import open_encoder

    _, corpus_texts, _ = data
    texts = list(corpus_texts.values())
    encoder = open_encoder(project.config.base_model, base_dir=project.root, db=project.db, fit_texts=texts)
    vectors = encoder.encode(texts, "document")
    encoder.model.max_seq_length = encoder.max_seq_length
    result = make_evaluator(data)(encoder.model, corpus_embeddings=torch.from_numpy(np.ascontiguousarray(vectors)))
    return ir_metrics(result)


def warm_up(model_path: str, texts: list[str]) -> int:
    """Imports, one model load and a small encode, untimed; returns the max_seq_length embtune fits to `texts`."""
    from sentence_transformers import SentenceTransformer

    import engine.evaluate.run  # noqa: F401  the engine's imports, outside any timing
    from engine.models.encoder import fit_max_seq_length

    model = SentenceTransformer(model_path, device="cpu")
    model.encode(["warm up", "the tokenizer and the threads"])
    return fit_max_seq_length(model, texts)


# --- main ---------------------------------------------------------------------------------------------------


def diff(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {key: abs(a[key] - b[key]) for key in KEYS}


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from engine.models.resolve import resolve_model

    beir = write_beir(args.data.resolve(), work / "beir", args.limit_docs, args.limit_queries)
    model_path = str(resolve_model("all-MiniLM-L6-v2").path)
    loads = [load_avg()]
    project = new_project(work, beir, "project-0")
    data = evaluator_data(project)
    log("warm-up (untimed)")
    length = warm_up(model_path, list(data[1].values()))
    rounds = []
    for i in range(args.repeats):
        if i:
            project = new_project(work, beir, f"project-{i}")
        order = ("embtune", "plain") if i % 2 == 0 else ("plain", "embtune")
        row: dict[str, Any] = {"order": list(order)}
        for side in order:
            row[f"{side}_load_before"] = load_avg()
            if side == "embtune":
                log(f"round {i + 1}: embtune eval, cold cache")
                result, seconds, cpu = run_embtune(project)
                row.update(embtune_seconds=seconds, embtune_cpu=cpu, embtune=result)
            else:
                log(f"round {i + 1}: InformationRetrievalEvaluator, max_seq_length {length}")
                metrics, seconds, cpu = run_plain(model_path, length, data)
                row.update(plain_seconds=seconds, plain_cpu=cpu, plain=metrics, plain_max_seq_length=length)
        loads.append(load_avg())
        rounds.append(row)
        log(f"round {i + 1}: embtune {row['embtune_seconds']:.1f} s, evaluator {row['plain_seconds']:.1f} s")
    if any(r["embtune"]["models"]["base"]["max_seq_length"] != length for r in rounds):
        raise RuntimeError("embtune fitted another max_seq_length than the evaluator was given")
    warm = []
    for j in range(args.warm_repeats):
        _, seconds, _ = run_embtune(project)
        warm.append(seconds)
        log(f"warm eval {j + 1}: {seconds:.2f} s")
    data = evaluator_data(project)
    last = rounds[-1]
    ours = {key: last["embtune"]["models"]["base"][key] for key in KEYS}
    cached = ir_on_cached_vectors(project, data)
    loads.append(load_avg())
    cold = statistics.median(r["embtune_seconds"] for r in rounds)
    plain = statistics.median(r["plain_seconds"] for r in rounds)
    return {
        "data": {
            "n_queries": last["embtune"]["n_queries"],
            "n_docs": len(data[1]),
            "split": last["embtune"]["split"],
            "fingerprint": last["embtune"]["models"]["base"]["fingerprint"],
            "max_seq_length": last["embtune"]["models"]["base"]["max_seq_length"],
            "document_overlap": last["embtune"]["leakage"]["document_overlap"],
            "leakage": {k: last["embtune"]["leakage"][k] for k in ("queries", "pairs", "query_examples")},
        },
        "embtune": ours,
        "ir_evaluator": last["plain"],
        "abs_diff": diff(ours, last["plain"]),
        "max_abs_diff": max(diff(ours, last["plain"]).values()),
        "ir_evaluator_on_embtune_vectors": cached,
        "max_abs_diff_same_vectors": max(diff(ours, cached).values()),
        "rounds": [{k: v for k, v in r.items() if k not in ("embtune", "plain")} for r in rounds],
        "cold_seconds_median": cold,
        "plain_seconds_median": plain,
        "wall_ratio": cold / plain,
        "round_wall_ratios": [r["embtune_seconds"] / r["plain_seconds"] for r in rounds],
        "cpu_ratio": statistics.median(r["embtune_cpu"] for r in rounds)
        / statistics.median(r["plain_cpu"] for r in rounds),
        "warm_seconds": warm,
        "cache_speedup": cold / statistics.median(warm),
        "load_avg": loads,
    }


def report(out: dict[str, Any]) -> None:
    d = out["data"]
    print(
        f"SciFact {d['split']}: {d['n_queries']} queries, {d['n_docs']:,} documents, all-MiniLM-L6-v2 "
        f"({d['fingerprint']}), max_seq_length {d['max_seq_length']}; "
        f"{d['document_overlap']['documents']} test documents are also train positives; the leakage guard "
        f"found {d['leakage']['queries']} test queries and {d['leakage']['pairs']} pairs repeating train ones "
        "(measured with --allow-leakage)"
    )
    print("| metric | embtune eval | InformationRetrievalEvaluator | |diff| | evaluator on embtune's vectors |")
    print("|---|---:|---:|---:|---:|")
    for key in KEYS:
        print(
            f"| {key} | {out['embtune'][key]:.6f} | {out['ir_evaluator'][key]:.6f} | {out['abs_diff'][key]:.1e} | "
            f"{out['ir_evaluator_on_embtune_vectors'][key]:.6f} |"
        )
    print(f"max |diff|: {out['max_abs_diff']:.2e} (same vectors: {out['max_abs_diff_same_vectors']:.2e})")
    for i, r in enumerate(out["rounds"], start=1):
        print(
            f"round {i} ({' then '.join(r['order'])}): embtune {r['embtune_seconds']:.1f} s "
            f"(cpu {r['embtune_cpu']:.0f} s, load {r['embtune_load_before']}), evaluator {r['plain_seconds']:.1f} s "
            f"(cpu {r['plain_cpu']:.0f} s, load {r['plain_load_before']}): ratio "
            f"{r['embtune_seconds'] / r['plain_seconds']:.3f}"
        )
    print(
        f"wall ratio embtune/evaluator {out['wall_ratio']:.3f} (cpu ratio {out['cpu_ratio']:.3f}); "
        f"warm evals {', '.join(f'{s:.2f}' for s in out['warm_seconds'])} s: cache speed-up "
        f"{out['cache_speedup']:.0f}x; load average {out['load_avg']}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SciFact in BEIR layout (read in place)")
    parser.add_argument("--repeats", type=int, default=1, help="cold rounds (alternating which side goes first)")
    parser.add_argument("--warm-repeats", type=int, default=3, help="evaluations on the unchanged project")
    parser.add_argument("--limit-docs", type=int, default=None, help="smoke tests: judged docs + fillers up to N")
    parser.add_argument("--limit-queries", type=int, default=None, help="smoke tests: first N queries per split")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the projects here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    return parser.parse_args()


def main() -> None:
    quiet_environment()
    sys.path.insert(0, str(ROOT))
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="embtune-eval-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out = run(args, work)
    report(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
