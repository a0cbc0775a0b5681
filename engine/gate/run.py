"""The gate: should this project fine-tune at all?

Measures the base model and the cheaper fixes (re-ranking, query expansion, re-chunking, hybrid BM25) on the
project's gate queries, then applies the practitioner's guide's rules with the thresholds from project.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import EmbtuneError
from engine.ingest.batch import source_chunk_text
from engine.ingest.chunking import chunk_text, spec_from_dict
from engine.jobs.progress import Progress, cancellable
from engine.models.encoder import Encoder, open_encoder
from engine.project import Project
from engine.retrieval.arms import (
    BM25,
    Expander,
    dense_search,
    load_expansions,
    reciprocal_rank_fusion,
    rerank,
    to_documents,
)
from engine.retrieval.metrics import DEFAULT_KS, bootstrap_ci, evaluate_run, first_relevant_rank, wins_losses
from engine.store import corpus, runs

DOC_DEPTH = 100  # documents kept per query: enough for recall@100 and map@100
VERDICTS = ("STOP", "FINE_TUNE", "GREY", "COLLECT_MORE", "INCOMPLETE")


class GateError(EmbtuneError):
    """The gate cannot run at all (no gate queries, no judgments, empty corpus)."""


@dataclass
class Arm:
    name: str
    description: str
    metrics: dict[str, float]
    recall_ci: tuple[float, float]
    wins: list[str]
    losses: list[str]
    per_query: dict[str, dict[str, float]] = field(repr=False)
    first_ranks: dict[str, int | None] = field(repr=False)
    reranker: str | None = None


@dataclass
class GateReport:
    verdict: str
    reasons: list[str]
    hints: list[str]
    n_queries: int
    k: int
    arms: list[Arm]
    skipped: dict[str, str]
    settings: dict[str, Any]
    run_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The `embtune gate --json` contract."""
        key = f"recall@{self.k}"
        arms = []
        for arm in self.arms:
            row = {
                "name": arm.name,
                "description": arm.description,
                **arm.metrics,
                f"{key}_ci": list(arm.recall_ci),
                "wins": arm.wins,
                "losses": arm.losses,
            }
            if arm.reranker:
                row["reranker"] = arm.reranker
            arms.append(row)
        return {
            "verdict": self.verdict,
            "n_queries": self.n_queries,
            "k": self.k,
            "reasons": self.reasons,
            "hints": self.hints,
            "arms": arms,
            "skipped": self.skipped,
            "settings": self.settings,
            "run_id": self.run_id,
        }


@dataclass
class _Context:
    """What every arm needs: queries, judgments, the corpus and its vectors."""

    project: Project
    encoder: Encoder
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, set[str]]
    chunk_docs: list[str]
    chunk_texts: list[str]
    chunk_vectors: np.ndarray
    progress: Progress
    cancelled: Callable[[], bool]
    chunk_depth: int = 1000


def run_gate(
    project: Project,
    progress: Progress | None = None,
    arms: set[str] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> GateReport:
    """Run every arm that can run, record the result as a 'gate' run, and return the report.

    `cancelled` is polled at every progress step and encoded block; when it turns true the run stops with
    InterruptedError and is recorded as 'cancelled'."""
    is_cancelled = cancelled or (lambda: False)
    report_progress = cancellable(progress, is_cancelled, "gate")

    gate = project.config.gate
    queries = _gate_queries(project)
    _, chunk_docs, chunk_texts = corpus.retrieval_chunks(project.db)
    if not chunk_texts:
        raise GateError("the project has no corpus: import documents first (embtune import DIR --beir/--docs)")
    encoder = open_encoder(
        project.config.base_model,
        base_dir=project.root,
        db=project.db,
        fit_texts=chunk_texts,
        trust_remote_code=project.config.trust_remote_code,
    )
    settings = {
        "base_model": project.config.base_model,
        "model_fingerprint": encoder.fingerprint,
        "max_seq_length": encoder.max_seq_length,
        "rerank_top_n": gate.rerank_top_n,
        "finetune_recall": gate.finetune_recall,
        "stop_recall": gate.stop_recall,
    }
    run_id = runs.create_run(project.db, "gate", settings)
    try:
        vectors = encoder.encode(
            chunk_texts, "document", lambda d, t: report_progress("encode corpus", d, t), is_cancelled
        )
        ctx = _Context(
            project,
            encoder,
            [q.id for q in queries],
            [q.text for q in queries],
            {q.id: set(q.relevant) for q in queries},
            chunk_docs,
            chunk_texts,
            vectors,
            report_progress,
            is_cancelled,
        )
        results, skipped = _run_arms(ctx, arms)
        report = _report(project, results, skipped, len(queries), settings)
    except BaseException as e:
        status = "cancelled" if isinstance(e, InterruptedError) and is_cancelled() else "failed"
        runs.fail_run(project.db, run_id, f"{type(e).__name__}: {e}", status)
        raise
    report.run_id = run_id
    _save(project, run_id, report)
    return report


def _gate_queries(project: Project) -> list[corpus.JudgedQuery]:
    queries = corpus.judged_queries(project.db, "gate")
    if not queries:
        total = corpus.query_count(project.db, "gate")
        if total:
            raise GateError(
                f"the project's {total} gate queries have no judgments: give each the documents that "
                "answer it (qrels/gate.tsv, or 'relevant' in a --queries file)"
            )
        raise GateError(
            "the project has no gate queries: import ~30+ representative queries with judgments, e.g. "
            "embtune import DIR --queries gate.jsonl --tag gate (or qrels/gate.tsv in a BEIR folder)"
        )
    return queries


# --- arms -----------------------------------------------------------------------------------------------


def _run_arms(ctx: _Context, wanted: set[str] | None) -> tuple[list[Arm], dict[str, str]]:
    config = ctx.project.config
    skipped: dict[str, str] = {}
    k = config.gate.k
    q_vectors = ctx.encoder.encode(ctx.query_texts, "query", cancelled=ctx.cancelled)
    base_chunks = dense_search(q_vectors, ctx.chunk_vectors, ctx.chunk_depth)
    base = _arm(ctx, "base", f"{config.base_model}, dense cosine", base_chunks, ctx.chunk_docs, k, None)
    results = [base]

    def want(name: str) -> bool:
        return wanted is None or name in wanted or name.split(":")[0] in wanted

    expander = _expander(ctx, skipped)
    expanded_chunks = None
    if expander and want("expansion"):
        expanded = [expander.expand(t) for t in ctx.query_texts]
        expanded_vectors = ctx.encoder.encode(expanded, "query", cancelled=ctx.cancelled)
        expanded_chunks = dense_search(expanded_vectors, ctx.chunk_vectors, ctx.chunk_depth)
        results.append(
            _arm(
                ctx, "expansion", f"queries expanded from {config.expansions}", expanded_chunks, ctx.chunk_docs, k, base
            )
        )
    chunking_arms = _chunking_arms(ctx, base, want) if want("chunking") else []
    results.extend(arm for arm, _ in chunking_arms)
    if want("hybrid"):
        bm25 = BM25(ctx.chunk_texts)
        fused = [
            reciprocal_rank_fusion([dense, bm25.search(q, ctx.chunk_depth)], ctx.chunk_depth)
            for dense, q in zip(base_chunks, ctx.query_texts, strict=True)
        ]
        results.append(_arm(ctx, "hybrid", "BM25 + dense, reciprocal rank fusion", fused, ctx.chunk_docs, k, base))
    results.extend(_rerank_arms(ctx, base, base_chunks, expanded_chunks, chunking_arms, skipped, want))
    return results, skipped


def _arm(
    ctx: _Context,
    name: str,
    description: str,
    chunk_rankings: list[list[int]],
    chunk_docs: list[str],
    k: int,
    base: Arm | None,
    reranker: str | None = None,
) -> Arm:
    run = {qid: to_documents(r, chunk_docs, DOC_DEPTH) for qid, r in zip(ctx.query_ids, chunk_rankings, strict=True)}
    means, per_query = evaluate_run(run, ctx.qrels, ks=sorted({*DEFAULT_KS, k}))
    key = f"recall@{k}"
    recall = [per_query[q][key] for q in ctx.query_ids]
    samples = ctx.project.config.gate.bootstrap_samples
    ci = bootstrap_ci(recall, n_samples=samples, seed=ctx.project.config.seed)
    wins, losses = (
        ([], [])
        if base is None
        else wins_losses(
            {q: base.per_query[q][key] for q in ctx.query_ids}, {q: per_query[q][key] for q in ctx.query_ids}
        )
    )
    ranks = {q: first_relevant_rank(run[q], ctx.qrels[q]) for q in ctx.query_ids}
    ctx.progress(f"arm {name}", 1, 1)
    return Arm(name, description, means, (float(ci[0]), float(ci[1])), wins, losses, per_query, ranks, reranker)


def _expander(ctx: _Context, skipped: dict[str, str]) -> Expander | None:
    config = ctx.project.config
    if not config.expansions:
        skipped["expansion"] = (
            "no acronym/synonym file: set 'expansions: synonyms.yaml' in project.yaml "
            "(a YAML mapping TERM: [expansion, ...])"
        )
        return None
    path = ctx.project.resolve(config.expansions)
    if not path.is_file():
        skipped["expansion"] = f"expansions file {path} does not exist"
        return None
    return Expander(load_expansions(path))


def _chunking_arms(ctx: _Context, base: Arm, want: Callable[[str], bool]) -> list[tuple[Arm, tuple]]:
    """Re-chunk every document with each configured strategy; a document is found when any chunk is."""
    config = ctx.project.config
    docs = corpus.documents(ctx.project.db)
    q_vectors = ctx.encoder.encode(ctx.query_texts, "query", cancelled=ctx.cancelled)
    out = []
    for name, raw in config.chunking.strategies.items():
        if not want(f"chunking:{name}"):
            continue
        spec = spec_from_dict(name, raw)
        doc_ids, texts = [], []
        for doc in docs:
            for chunk in chunk_text(doc.text, spec):
                doc_ids.append(doc.id)
                texts.append(source_chunk_text(doc.title, chunk.text))
        vectors = ctx.encoder.encode(
            texts, "document", lambda d, t, n=name: ctx.progress(f"chunk {n}", d, t), ctx.cancelled
        )
        rankings = dense_search(q_vectors, vectors, ctx.chunk_depth)
        arm = _arm(
            ctx,
            f"chunking:{name}",
            f"corpus re-chunked: {_describe(raw)} ({len(texts):,} chunks)",
            rankings,
            doc_ids,
            config.gate.k,
            base,
        )
        out.append((arm, (rankings, doc_ids, texts)))
    return out


def _describe(raw: dict[str, Any]) -> str:
    params = ", ".join(f"{k} {v}" for k, v in raw.items() if k != "kind")
    return f"{raw['kind']}" + (f" ({params})" if params else "")


def _rerank_arms(
    ctx: _Context,
    base: Arm,
    base_chunks: list[list[int]],
    expanded_chunks: list[list[int]] | None,
    chunking_arms: list[tuple[Arm, tuple]],
    skipped: dict[str, str],
    want: Callable[[str], bool],
) -> list[Arm]:
    if not want("rerank"):
        return []
    found = _load_reranker(ctx.project, skipped)
    if found is None:
        return []
    model, origin = found
    k, top_n = ctx.project.config.gate.k, ctx.project.config.gate.rerank_top_n

    def reranked(name: str, rankings: list[list[int]], docs: list[str], texts: list[str]) -> list[list[int]]:
        return rerank(
            model, ctx.query_texts, rankings, texts, top_n, progress=lambda d, t: ctx.progress(f"rerank {name}", d, t)
        )

    arms = [
        _arm(
            ctx,
            "rerank",
            f"base + cross-encoder re-ranking of the top {top_n}",
            reranked("base", base_chunks, ctx.chunk_docs, ctx.chunk_texts),
            ctx.chunk_docs,
            k,
            base,
            origin,
        )
    ]
    if expanded_chunks is not None:
        arms.append(
            _arm(
                ctx,
                "expansion+rerank",
                f"expanded queries + re-ranking of the top {top_n}",
                reranked("expansion", expanded_chunks, ctx.chunk_docs, ctx.chunk_texts),
                ctx.chunk_docs,
                k,
                base,
                origin,
            )
        )
    if chunking_arms:
        best, (rankings, docs, texts) = max(chunking_arms, key=lambda a: a[0].metrics[f"recall@{k}"])
        arms.append(
            _arm(
                ctx,
                f"{best.name}+rerank",
                f"best chunking ({best.name}) + re-ranking of the top {top_n}",
                reranked(best.name, rankings, docs, texts),
                docs,
                k,
                base,
                origin,
            )
        )
    return arms


def _load_reranker(project: Project, skipped: dict[str, str]) -> tuple[Any, str] | None:
    """The configured cross-encoder, else the newest one trained in this project, else None (and why)."""
    from engine.models.resolve import ModelNotFoundError, load_cross_encoder

    spec = project.config.reranker
    origin = f"project.yaml reranker: {spec}"
    if spec is None:
        trained = runs.latest_model_run(project.db, "reranker")
        if trained is None:
            skipped["rerank"] = (
                "no cross-encoder available offline: set 'reranker:' in project.yaml to a local "
                "cross-encoder folder or cached id, or train one on this project's pairs with "
                "`embtune reranker train DIR`"
            )
            return None
        spec, origin = trained["model_path"], f"trained in this project (run {trained['id']})"
    try:
        return load_cross_encoder(
            spec, base_dir=project.root, trust_remote_code=project.config.trust_remote_code
        ), origin
    except ModelNotFoundError as e:
        skipped["rerank"] = f"the re-ranker could not be loaded: {e}"
        return None


# --- verdict --------------------------------------------------------------------------------------------


def _report(
    project: Project, arms: list[Arm], skipped: dict[str, str], n_queries: int, settings: dict[str, Any]
) -> GateReport:
    from engine.gate.verdict import decide, hints

    gate = project.config.gate
    pairs = corpus.training_pair_count(project.db)
    verdict, reasons = decide(arms, skipped, gate, pairs, n_queries)
    return GateReport(
        verdict,
        reasons,
        hints(arms, gate.k, [q.text for q in corpus.judged_queries(project.db, "gate")]),
        n_queries,
        gate.k,
        arms,
        skipped,
        {**settings, "training_pairs": pairs},
    )


def _save(project: Project, run_id: int, report: GateReport) -> None:
    metrics = [(key, arm.name, value) for arm in report.arms for key, value in arm.metrics.items()]
    rows = [(arm.name, qid, arm.first_ranks[qid], arm.per_query[qid]) for arm in report.arms for qid in arm.per_query]
    runs.finish_run(project.db, run_id, report.to_json(), metrics, rows)
