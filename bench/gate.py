"""The gate on SciFact: embtune's base arm against plain sentence-transformers, the cache, and every arm's numbers.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/gate.py [--data ../shared/datasets/scifact] [--repeats 2]
        [--chunking paragraph,fixed128,window3 | none] [--train-reranker --reranker-steps 200] [--rerank-top-n 50]
        [--no-full-repeat] [--json results.json]

SciFact (BEIR layout) is used in place: a temporary BEIR folder links its corpus.jsonl and queries.jsonl, with
qrels/gate.tsv = SciFact's test.tsv (300 queries become the project's gate queries) and qrels/train.tsv = its
train.tsv (809 queries, 919 pairs). Each project is a fresh `init_project` with base_model all-MiniLM-L6-v2.
Everything runs in this one process, after an untimed warm-up (imports, one model load, one small encode):

1. Base arm, cold cache: `run_gate(project, arms={"base"})` on a freshly imported project, against a plain
   sentence-transformers script doing the same work (load, encode_document of title + "\\n" + text, encode_query,
   cosine top-100 by numpy matmul + argpartition, recall/MRR/nDCG), batch 32, the max_seq_length embtune fits.
   `--repeats` rounds alternate the order (embtune first, then plain first, ...); medians are compared.
   The plain script also runs at the model's default max_seq_length when the fitted one differs.
2. Cache: the same base-arm gate again on each unchanged project; and the full gate twice (before any re-ranker
   exists: cross-encoder scores are not cached, so their cost shows in the last gate's stages instead).
3. The full gate (all arms that can run) on the last project; with `--train-reranker` the project's cross-encoder
   is then trained (engine.train.reranker.train_reranker, capped at --reranker-steps) and the full gate runs once more,
   re-ranking arms included: its arms and verdict are the ones reported.
   Its base nDCG@10 is set against MTEB's published 0.645 and against sentence-transformers'
   InformationRetrievalEvaluator given the very same corpus embeddings.
4. Peak RSS of the process.

On 2 idle CPU cores MiniLM encodes ~24 SciFact abstracts/s (the fitted max_seq_length is the model's 256), so
each cold corpus pass takes ~3.6 min; the cross-encoder trains at ~10.5 s/step (batch 16, 512 tokens) and scores
~12-15 pairs/s. The default run (2 repeats, three chunking strategies, 50 re-ranked per query, 200 steps) takes
well over an hour there; `--chunking paragraph --train-reranker --reranker-steps 100 --rerank-top-n 10` about
45 minutes when nothing else competes for the cores (64 minutes measured at load average 4-9).
Smoke test (numbers then mean nothing): `--limit-queries 10 --limit-docs 300 --repeats 1`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import log, quiet_environment  # bench/common.py (this folder is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "scifact"
MODEL = "all-MiniLM-L6-v2"
PUBLISHED_NDCG10 = 0.645  # MTEB leaderboard, all-MiniLM-L6-v2 on SciFact (64.51)
BATCH = 32
DEPTH = 100
TABLE_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads): less sensitive than wall time to other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


# --- data -----------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path: Path) -> dict[str, set[str]]:
    """query id -> relevant doc ids (score > 0), in file order."""
    out: dict[str, set[str]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split("\t")
            if number == 1 and parts[0] == "query-id":
                continue
            if len(parts) >= 3 and float(parts[2]) > 0:
                out.setdefault(parts[0], set()).add(parts[1])
    return out


def write_beir(source: Path, folder: Path, limit_docs: int | None, limit_queries: int | None) -> Path:
    """A BEIR folder whose gate split is SciFact's test split: links when unlimited, small copies otherwise."""
    (folder / "qrels").mkdir(parents=True)
    splits = {"gate": source / "qrels" / "test.tsv", "train": source / "qrels" / "train.tsv"}
    if limit_docs is None and limit_queries is None:
        for name in ("corpus.jsonl", "queries.jsonl"):
            (folder / name).symlink_to(source / name)
        for split, path in splits.items():
            (folder / "qrels" / f"{split}.tsv").symlink_to(path)
        return folder
    kept: dict[str, dict[str, set[str]]] = {}
    for split, path in splits.items():
        qrels = read_qrels(path)
        kept[split] = dict(list(qrels.items())[: limit_queries or len(qrels)])
    needed = {d for qrels in kept.values() for rel in qrels.values() for d in rel}
    docs = read_jsonl(source / "corpus.jsonl")
    room = max(0, (limit_docs or len(docs)) - len(needed))
    fillers = [d["_id"] for d in docs if d["_id"] not in needed][:room]
    wanted = needed | set(fillers)
    lines = [json.dumps(d) for d in docs if d["_id"] in wanted]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    query_ids = {q for qrels in kept.values() for q in qrels}
    queries = [json.dumps(q) for q in read_jsonl(source / "queries.jsonl") if q["_id"] in query_ids]
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    for split, qrels in kept.items():
        rows = "".join(f"{q}\t{d}\t1\n" for q, rel in qrels.items() for d in sorted(rel))
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows, encoding="utf-8")
    return folder


def plain_text(doc: dict[str, Any]) -> str:
    # engine.ingest.batch.source_chunk_text: the title, a newline, the abstract (checked equal in main()).
    title = doc.get("title") or ""
    return f"{title}\n{doc['text']}" if title else doc["text"]


# --- projects -------------------------------------------------------------------------------------------


def new_project(root: Path, beir: Path, args: argparse.Namespace) -> tuple[Any, float]:
    """init_project + a project.yaml for this bench + the SciFact import; returns (project, import seconds)."""
    from engine.config import ChunkingConfig, config_from_dict, dump_config
    from engine.ingest.importing import import_beir
    from engine.project import init_project, open_project

    init_project(root).close()
    strategies = ChunkingConfig().strategies
    chosen = {name: strategies[name] for name in args.chunking} or {"paragraph": strategies["paragraph"]}
    data: dict[str, Any] = {
        "name": "scifact-bench",
        "base_model": MODEL,
        "chunking": {"default": next(iter(chosen)), "strategies": chosen},
    }
    if args.rerank_top_n:
        data["gate"] = {"rerank_top_n": args.rerank_top_n}
    (root / "project.yaml").write_text(dump_config(config_from_dict(data, "bench")), encoding="utf-8")
    project = open_project(root)
    start = time.perf_counter()
    import_beir(project, beir)
    return project, time.perf_counter() - start


class Stages:
    """A gate/reranker progress callback that logs now and then and keeps each stage's first and last time."""

    def __init__(self, label: str):
        self.label = label
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.totals: dict[str, int] = {}
        self.logged = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        self.first.setdefault(stage, now)
        self.last[stage] = now
        self.totals[stage] = total
        if now - self.logged > 30 or (done == total and not stage.startswith("arm ")):
            self.logged = now
            log(f"  {self.label}: {stage} {done:,}/{total:,}")

    def seconds(self) -> dict[str, dict[str, float]]:
        return {
            stage: {"seconds": round(self.last[stage] - self.first[stage], 2), "items": self.totals[stage]}
            for stage in self.first
            if not stage.startswith("arm ")
        }


def gate_once(project: Any, arms: set[str] | None, label: str) -> tuple[Any, float, Stages]:
    from engine.gate.run import run_gate

    stages = Stages(label)
    start = time.perf_counter()
    report = run_gate(project, stages, arms)
    return report, time.perf_counter() - start, stages


# --- the plain sentence-transformers script ------------------------------------------------------------


def plain_run(model_path: Path, beir: Path, max_seq_length: int) -> dict[str, Any]:
    """What a user would write with sentence-transformers alone; timed from reading the files to the metrics."""
    from sentence_transformers import SentenceTransformer

    start = time.perf_counter()
    docs = read_jsonl(beir / "corpus.jsonl")
    doc_ids = [d["_id"] for d in docs]
    texts = [plain_text(d) for d in docs]
    query_text = {q["_id"]: q["text"] for q in read_jsonl(beir / "queries.jsonl")}
    qrels = read_qrels(beir / "qrels" / "gate.tsv")
    query_ids = list(qrels)
    model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_length
    loaded = time.perf_counter()
    doc_vectors = model.encode_document(
        texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    encoded = time.perf_counter()
    query_vectors = model.encode_query(
        [query_text[q] for q in query_ids],
        batch_size=BATCH,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    queried = time.perf_counter()
    scores = query_vectors @ doc_vectors.T
    depth = min(DEPTH, scores.shape[1])
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    ranked = {}
    for qid, row, cand in zip(query_ids, scores, top, strict=True):
        ranked[qid] = [doc_ids[i] for i in cand[np.lexsort((cand, -row[cand]))]]
    metrics = plain_metrics(ranked, qrels)
    end = time.perf_counter()
    return {
        "seconds": end - start,
        "load_s": loaded - start,
        "encode_corpus_s": encoded - loaded,
        "encode_queries_s": queried - encoded,
        "search_metrics_s": end - queried,
        "metrics": metrics,
        "max_seq_length": max_seq_length,
        "docs": len(texts),
        "queries": len(query_ids),
        "_doc_ids": doc_ids,
        "_texts": texts,
        "_doc_vectors": doc_vectors,
    }


def plain_metrics(ranked: dict[str, list[str]], qrels: dict[str, set[str]]) -> dict[str, float]:
    """recall@1/5/10, MRR@10 and binary nDCG@10, written out independently of engine.retrieval.metrics."""
    sums = dict.fromkeys(TABLE_KEYS, 0.0)
    for qid, relevant in qrels.items():
        hits = [d in relevant for d in ranked.get(qid, [])]
        for k in (1, 5, 10):
            sums[f"recall@{k}"] += sum(hits[:k]) / len(relevant)
        sums["mrr@10"] += next((1 / (i + 1) for i, hit in enumerate(hits[:10]) if hit), 0.0)
        dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(hits[:10]) if hit)
        sums["ndcg@10"] += dcg / sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return {key: value / len(qrels) for key, value in sums.items()}


# --- InformationRetrievalEvaluator cross-check --------------------------------------------------------


def ir_check(project: Any, plain: dict[str, Any] | None) -> dict[str, Any]:
    """nDCG@10 and friends from sentence-transformers' evaluator vs engine.retrieval.metrics on the same embeddings."""
    import torch
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from engine.models.encoder import open_encoder
    from engine.retrieval.arms import dense_search, to_documents
    from engine.retrieval.metrics import evaluate_run
    from engine.store import corpus

    chunk_ids, chunk_docs, chunk_texts = corpus.retrieval_chunks(project.db)
    if chunk_ids != chunk_docs:
        raise RuntimeError("expected one source chunk per document (chunk id = document id) for a BEIR import")
    encoder = open_encoder(project.config.base_model, base_dir=project.root, db=project.db, fit_texts=chunk_texts)
    vectors = encoder.encode(chunk_texts, "document")  # from the gate's cache: the base arm's very embeddings
    model = encoder.model
    model.max_seq_length = encoder.max_seq_length
    gate_queries = corpus.judged_queries(project.db, "gate")
    queries = {q.id: q.text for q in gate_queries}
    relevant = {q.id: set(q.relevant) for q in gate_queries}

    def evaluator(corpus_texts: dict[str, str]) -> InformationRetrievalEvaluator:
        return InformationRetrievalEvaluator(
            queries,
            corpus_texts,
            relevant,
            name="scifact",
            batch_size=BATCH,
            accuracy_at_k=[1, 5, 10],
            precision_recall_at_k=[1, 5, 10],
            write_csv=False,
        )

    def ir_metrics(result: dict[str, float]) -> dict[str, float]:
        keys = {
            "recall@1": "recall@1",
            "recall@5": "recall@5",
            "recall@10": "recall@10",
            "mrr@10": "mrr@10",
            "ndcg@10": "ndcg@10",
            "map@100": "map@100",
        }
        return {ours: float(result[f"scifact_cosine_{theirs}"]) for ours, theirs in keys.items()}

    start = time.perf_counter()
    same = evaluator(dict(zip(chunk_ids, chunk_texts, strict=True)))
    ir_same = ir_metrics(same(model, corpus_embeddings=torch.from_numpy(np.ascontiguousarray(vectors))))
    # Our metrics on the evaluator's own query embeddings (the same encode_query call) and the same corpus vectors.
    q = model.encode_query(same.queries, batch_size=BATCH, convert_to_tensor=True, show_progress_bar=False)
    q_vectors = q.cpu().numpy().astype(np.float32)
    rankings = dense_search(q_vectors, vectors, 1000)
    run = {qid: to_documents(r, chunk_docs, DEPTH) for qid, r in zip(same.queries_ids, rankings, strict=True)}
    ours, _ = evaluate_run(run, relevant)
    out: dict[str, Any] = {
        "ir_evaluator_on_gate_embeddings": ir_same,
        "engine_metrics_on_same_embeddings": {k: ours[k] for k in ir_same},
        "abs_diff": {k: abs(ir_same[k] - ours[k]) for k in ir_same},
        "seconds": round(time.perf_counter() - start, 1),
    }
    if plain is not None:
        # What the evaluator computes when left to encode the corpus itself: encode_document of the same texts in
        # one call, batch 32 (the plain run made exactly that call).
        ev = evaluator(dict(zip(plain["_doc_ids"], plain["_texts"], strict=True)))
        plain_vectors = torch.from_numpy(np.ascontiguousarray(plain["_doc_vectors"]))
        out["ir_evaluator_on_plain_embeddings"] = ir_metrics(ev(model, corpus_embeddings=plain_vectors))
    return out


# --- output ---------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def gate_summary(report: Any, seconds: float, stages: Stages) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "stages": stages.seconds(),
        "verdict": report.verdict,
        "reasons": report.reasons,
        "hints": report.hints,
        "skipped": report.skipped,
        "n_queries": report.n_queries,
        "k": report.k,
        "settings": report.settings,
        "arms": arm_rows(report),
    }


def arm_rows(report: Any) -> list[dict[str, Any]]:
    key = f"recall@{report.k}"
    rows = []
    for arm in report.arms:
        rows.append(
            {
                "name": arm.name,
                "description": arm.description,
                **{k: arm.metrics[k] for k in (*TABLE_KEYS, "map@100", key)},
                f"{key}_ci": list(arm.recall_ci),
                "wins": len(arm.wins),
                "losses": len(arm.losses),
                "reranker": arm.reranker,
            }
        )
    return rows


def print_arms(rows: list[dict[str, Any]], k: int) -> None:
    print(f"| {'arm':<26} | R@1   | R@5   | R@10  | MRR@10 | nDCG@10 | R@{k} 95% CI     | wins/losses |")
    print(f"|{'-' * 28}|-------|-------|-------|--------|---------|-----------------|-------------|")
    for r in rows:
        ci = r[f"recall@{k}_ci"]
        wl = "-" if r["name"] == "base" else f"{r['wins']}/{r['losses']}"
        print(
            f"| {r['name']:<26} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['recall@10']:.3f} | "
            f"{r['mrr@10']:.4f} | {r['ndcg@10']:.4f}  | [{ci[0]:.3f}, {ci[1]:.3f}]  | {wl:>11} |"
        )


def print_summary(results: dict[str, Any]) -> None:
    cold = results["base_vs_plain"]
    print(f"\n## Setup\n{results['setup']}")
    print("\n## 1. Base arm, cold cache, vs plain sentence-transformers (seconds, same process)")
    print(
        "| round | order              | embtune | plain  | embtune encode corpus | plain encode corpus | load avg | "
        "CPU s embtune/plain |"
    )
    print(
        "|-------|--------------------|---------|--------|-----------------------|---------------------|----------|"
        "---------------------|"
    )
    for r in cold["rounds"]:
        loads = f"{r['embtune_load_avg_before']:.1f}/{r['plain_load_avg_before']:.1f}"
        print(
            f"| {r['round']:>5} | {r['order']:<18} | {r['embtune_s']:>7.1f} | {r['plain_s']:>6.1f} | "
            f"{r['embtune_encode_corpus_s']:>21.1f} | {r['plain_encode_corpus_s']:>19.1f} | {loads:>8} | "
            f"{r['embtune_cpu_s']:>9.0f}/{r['plain_cpu_s']:<9.0f} |"
        )
    print(
        f"median embtune {cold['embtune_median_s']:.1f} s, plain {cold['plain_median_s']:.1f} s, ratio "
        f"{cold['ratio']:.3f} (target ≤ 1.10: {'PASS' if cold['ratio'] <= 1.10 else 'FAIL'}); "
        f"max_seq_length fitted {cold['fitted_max_seq_length']} (model default {cold['default_max_seq_length']}); "
        f"CPU time median {cold['embtune_cpu_median_s']:.0f} / {cold['plain_cpu_median_s']:.0f} s, ratio "
        f"{cold['embtune_cpu_median_s'] / cold['plain_cpu_median_s']:.3f}"
    )
    if cold.get("plain_default_length"):
        d = cold["plain_default_length"]
        print(
            f"plain at the default max_seq_length {d['max_seq_length']}: {d['seconds']:.1f} s, "
            f"nDCG@10 {d['metrics']['ndcg@10']:.4f}"
        )
    else:
        print("plain at the default max_seq_length: the same configuration as the fitted one (not rerun)")
    print(
        "base-arm metrics embtune vs plain: "
        + ", ".join(f"{k} {cold['embtune_metrics'][k]:.4f}/{cold['plain_metrics'][k]:.4f}" for k in TABLE_KEYS)
    )
    cache = results["repeat"]
    print("\n## 2. Repeat on an unchanged corpus")
    print(
        f"base arm: cold median {cache['base_cold_median_s']:.1f} s, "
        f"repeat median {cache['base_repeat_median_s']:.2f} s "
        f"(each {', '.join(f'{s:.2f}' for s in cache['base_repeat_s'])}): {cache['base_speedup']:.0f}x "
        f"(target ≥ 20x: {'PASS' if cache['base_speedup'] >= 20 else 'FAIL'})"
    )
    if cache.get("full_repeat_s") is not None:
        print(
            f"full gate ({', '.join(cache['full_arms'])}): first {cache['full_first_s']:.1f} s, repeat "
            f"{cache['full_repeat_s']:.1f} s ({cache['full_speedup']:.1f}x; same metrics: "
            f"{cache['full_repeat_identical']}); repeat stages: "
            + ", ".join(
                f"{name} {v['seconds']:.2f} s ({v['items']:,})" for name, v in cache["full_repeat_stages"].items()
            )
        )
    full = results["full_gate"]
    print("\n## 3. Full gate on SciFact (all-MiniLM-L6-v2)")
    if results.get("full_gate_before_reranker"):
        before = results["full_gate_before_reranker"]
        print(f"before the re-ranker: {before['seconds']:.1f} s, verdict {before['verdict']}: {before['reasons'][-2:]}")
    if results.get("reranker"):
        rr = results["reranker"]
        print(
            f"re-ranker trained: {rr['steps']} steps, {rr['examples']:,} examples ({rr['negatives']}), "
            f"{rr['wall_s']:.1f} s wall ({rr['seconds']} s fit)"
        )
    print(
        f"{full['n_queries']} gate queries, {full['seconds']:.1f} s; stages: "
        + ", ".join(f"{name} {s['seconds']:.1f} s ({s['items']:,})" for name, s in full["stages"].items())
    )
    print_arms(full["arms"], full["k"])
    for name, why in full["skipped"].items():
        print(f"skipped {name}: {why}")
    print(f"verdict: {full['verdict']}")
    for reason in full["reasons"]:
        print(f"  - {reason}")
    ir = results["ir_check"]
    same, ours = ir["ir_evaluator_on_gate_embeddings"], ir["engine_metrics_on_same_embeddings"]
    base_ndcg = full["arms"][0]["ndcg@10"]
    print(
        f"\nnDCG@10: base arm {base_ndcg:.4f} | published (MTEB) {PUBLISHED_NDCG10:.3f} "
        f"(diff {base_ndcg - PUBLISHED_NDCG10:+.4f}) | InformationRetrievalEvaluator {same['ndcg@10']:.6f} vs "
        f"embtune metrics {ours['ndcg@10']:.6f} on the same embeddings (|diff| {ir['abs_diff']['ndcg@10']:.1e}; "
        f"max over R@1/5/10, MRR, nDCG, MAP {max(ir['abs_diff'].values()):.1e})"
    )
    if "ir_evaluator_on_plain_embeddings" in ir:
        print(
            f"InformationRetrievalEvaluator on the plain run's embeddings: nDCG@10 "
            f"{ir['ir_evaluator_on_plain_embeddings']['ndcg@10']:.6f}"
        )
    print(f"\n## 4. Peak RSS {results['peak_rss_mib']:.0f} MiB; total {results['total_s'] / 60:.1f} min")


# --- main -----------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SciFact in BEIR layout (read in place)")
    parser.add_argument("--repeats", type=int, default=2, help="cold rounds of embtune and plain (alternating order)")
    parser.add_argument(
        "--chunking",
        default="paragraph,fixed128,window3",
        help="chunking strategies the gate compares (comma list of the default ones, or 'none')",
    )
    parser.add_argument(
        "--train-reranker",
        action="store_true",
        help="train the project's cross-encoder on SciFact's train pairs so the rerank arms run",
    )
    parser.add_argument("--reranker-steps", type=int, default=200, help="cap on the re-ranker's optimizer steps")
    parser.add_argument(
        "--rerank-top-n", type=int, default=None, help="candidates re-ranked per query (project default 50)"
    )
    parser.add_argument("--no-full-repeat", action="store_true", help="skip the second full gate")
    parser.add_argument("--limit-docs", type=int, default=None, help="smoke tests: judged docs + fillers up to N")
    parser.add_argument("--limit-queries", type=int, default=None, help="smoke tests: first N queries per split")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the projects here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args()
    known = ("paragraph", "fixed128", "window3")
    args.chunking = [] if args.chunking == "none" else [c.strip() for c in args.chunking.split(",") if c.strip()]
    unknown = [c for c in args.chunking if c not in known]
    if unknown:
        parser.error(f"--chunking: unknown strategies {unknown} (known: {', '.join(known)}, or none)")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    quiet_environment()
    started = time.perf_counter()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=False)
        results = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="embtune-gate-bench-") as tmp:
            results = run(args, Path(tmp))
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["peak_rss_mib"] = round(peak_rss_mib(), 1)
    print_summary(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    rss: dict[str, float] = {}

    # Warm-up, untimed: the imports, one model load and a small encode, so neither side pays first-use costs.
    t = time.perf_counter()
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    from engine.ingest.batch import source_chunk_text
    from engine.models.encoder import fit_max_seq_length
    from engine.models.resolve import resolve_model

    import_s = time.perf_counter() - t
    model_path = resolve_model(MODEL).path
    beir = write_beir(args.data.resolve(), work / "beir", args.limit_docs, args.limit_queries)
    docs = read_jsonl(beir / "corpus.jsonl")
    texts = [plain_text(d) for d in docs]
    mismatched = sum(plain_text(d) != source_chunk_text(d.get("title") or "", d["text"]) for d in docs)
    if mismatched:
        raise RuntimeError(f"{mismatched} documents compose differently from engine.ingest.batch.source_chunk_text")
    warm = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    default_length = int(warm.max_seq_length)
    fitted = fit_max_seq_length(warm, texts)
    warm.encode_document(texts[:64], batch_size=BATCH, show_progress_bar=False)
    del warm
    results["setup"] = (
        f"{len(docs):,} docs, {len(read_qrels(beir / 'qrels' / 'gate.tsv'))} gate queries, "
        f"{sum(len(r) for r in read_qrels(beir / 'qrels' / 'train.tsv').values())} train pairs; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), sentence-transformers "
        f"{sentence_transformers.__version__}, {os.cpu_count()} CPUs, imports {import_s:.1f} s, "
        f"load average at start {load_avg()}"
    )
    log(results["setup"])
    rss["after_warmup"] = peak_rss_mib()

    # 1 + 2: cold base arm vs plain, alternating; then the cached repeat on each project.
    rounds, projects, plain_last = [], [], None
    for i in range(args.repeats):
        order = ("embtune", "plain") if i % 2 == 0 else ("plain", "embtune")
        row: dict[str, Any] = {"round": i + 1, "order": " then ".join(order)}
        for side in order:
            load_before = load_avg()
            if side == "embtune":
                project, import_seconds = new_project(work / f"project{i + 1}", beir, args)
                log(f"round {i + 1}: imported in {import_seconds:.1f} s; embtune base arm, cold")
                cpu = cpu_seconds()
                report, seconds, stages = gate_once(project, {"base"}, f"embtune {i + 1}")
                row["embtune_cpu_s"] = cpu_seconds() - cpu
                base = report.arms[0]
                repeat_report, repeat_s, _ = gate_once(project, {"base"}, f"embtune {i + 1} repeat")
                row.update(
                    embtune_s=seconds,
                    embtune_encode_corpus_s=stages.seconds()["encode corpus"]["seconds"],
                    embtune_import_s=import_seconds,
                    embtune_repeat_s=repeat_s,
                    embtune_max_seq_length=report.settings["max_seq_length"],
                    embtune_metrics={k: base.metrics[k] for k in TABLE_KEYS},
                    repeat_identical=repeat_report.arms[0].metrics == base.metrics,
                    embtune_load_avg_before=load_before,
                )
                projects.append(project)
                log(
                    f"round {i + 1}: embtune {seconds:.1f} s (repeat {repeat_s:.2f} s), nDCG@10 "
                    f"{base.metrics['ndcg@10']:.4f}"
                )
            else:
                log(f"round {i + 1}: plain sentence-transformers, max_seq_length {fitted}")
                cpu = cpu_seconds()
                plain_last = plain_run(model_path, beir, fitted)
                row["plain_cpu_s"] = cpu_seconds() - cpu
                row.update(
                    plain_s=plain_last["seconds"],
                    plain_encode_corpus_s=plain_last["encode_corpus_s"],
                    plain_parts={
                        k: round(plain_last[k], 2)
                        for k in ("load_s", "encode_corpus_s", "encode_queries_s", "search_metrics_s")
                    },
                    plain_metrics=plain_last["metrics"],
                    plain_load_avg_before=load_before,
                )
                log(
                    f"round {i + 1}: plain {plain_last['seconds']:.1f} s, nDCG@10 "
                    f"{plain_last['metrics']['ndcg@10']:.4f}"
                )
        rounds.append(row)
    rss["after_cold_rounds"] = peak_rss_mib()
    embtune_times = [r["embtune_s"] for r in rounds]
    plain_times = [r["plain_s"] for r in rounds]
    cold: dict[str, Any] = {
        "rounds": rounds,
        "embtune_median_s": median(embtune_times),
        "plain_median_s": median(plain_times),
        "ratio": median(embtune_times) / median(plain_times),
        "fitted_max_seq_length": fitted,
        "embtune_cpu_median_s": median([r["embtune_cpu_s"] for r in rounds]),
        "plain_cpu_median_s": median([r["plain_cpu_s"] for r in rounds]),
        "default_max_seq_length": default_length,
        "embtune_metrics": rounds[-1]["embtune_metrics"],
        "plain_metrics": rounds[-1]["plain_metrics"],
    }
    if rounds[0]["embtune_max_seq_length"] != fitted:
        raise RuntimeError(f"the gate fitted {rounds[0]['embtune_max_seq_length']}, this bench {fitted}")
    if fitted != default_length:
        log(f"plain sentence-transformers at the default max_seq_length {default_length}")
        d = plain_run(model_path, beir, default_length)
        cold["plain_default_length"] = {k: d[k] for k in ("seconds", "encode_corpus_s", "metrics", "max_seq_length")}
    results["base_vs_plain"] = cold

    # 3: the full gate on the last project (its corpus embeddings are cached by now).
    main_project = projects[-1]
    for project in projects[:-1]:
        project.close()
    full_arms = None if args.chunking else {"base", "expansion", "hybrid", "rerank"}
    cache: dict[str, Any] = {
        "base_cold_median_s": median(embtune_times),
        "base_repeat_s": [r["embtune_repeat_s"] for r in rounds],
        "base_repeat_median_s": median([r["embtune_repeat_s"] for r in rounds]),
        "base_repeat_identical": all(r["repeat_identical"] for r in rounds),
    }
    cache["base_speedup"] = cache["base_cold_median_s"] / cache["base_repeat_median_s"]
    # The full gate and its repeat run before any re-ranker exists: cross-encoder scores are not cached, so a
    # repeat with re-ranking arms would mostly time the cross-encoder again (its cost is in the last gate's stages).
    log("full gate")
    report, full_s, stages = gate_once(main_project, full_arms, "full gate")
    first = gate_summary(report, full_s, stages)
    rss["after_full_gate"] = peak_rss_mib()
    if not args.no_full_repeat:
        log("full gate, repeat")
        again, repeat_s, repeat_stages = gate_once(main_project, full_arms, "full gate repeat")
        cache.update(
            full_first_s=full_s,
            full_repeat_s=repeat_s,
            full_speedup=full_s / repeat_s,
            full_arms=[a.name for a in report.arms],
            full_repeat_stages=repeat_stages.seconds(),
            full_repeat_identical=[a.metrics for a in again.arms] == [a.metrics for a in report.arms],
        )
    results["repeat"] = cache
    results["full_gate"] = first
    if args.train_reranker:
        from engine.train.reranker import RerankerSettings, train_reranker

        log(f"training the re-ranker (at most {args.reranker_steps} steps)")
        stages = Stages("reranker")
        t = time.perf_counter()
        trained = train_reranker(main_project, RerankerSettings(max_steps=args.reranker_steps), stages)
        results["reranker"] = {**trained, "wall_s": time.perf_counter() - t, "stages": stages.seconds()}
        log(f"re-ranker: {trained['steps']} steps in {trained['seconds']} s")
        rss["after_reranker"] = peak_rss_mib()
        log("full gate with the re-ranker")
        report, full_s, stages = gate_once(main_project, full_arms, "full gate + reranker")
        results["full_gate_before_reranker"] = {k: first[k] for k in ("seconds", "verdict", "reasons", "skipped")}
        results["full_gate"] = gate_summary(report, full_s, stages)
        rss["after_full_gate_with_reranker"] = peak_rss_mib()

    log("InformationRetrievalEvaluator cross-check")
    results["ir_check"] = ir_check(main_project, plain_last)
    results["published_ndcg@10"] = PUBLISHED_NDCG10
    rss["after_ir_check"] = peak_rss_mib()
    results["rss_mib"] = {k: round(v, 1) for k, v in rss.items()}
    results["load_avg_end"] = load_avg()
    main_project.close()
    return results


if __name__ == "__main__":
    main()
