"""The gate: should this project fine-tune at all?

Measures the base model and the cheaper fixes (re-ranking, query expansion, re-chunking, hybrid BM25) on the
project's gate queries, then applies the practitioner's guide's rules with the thresholds from project.yaml.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import EmbtuneError
from engine.gate.costs import Cost, Rates, arm_cost, fine_tune_cost
from engine.gate.verdict import SELECTION
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
from engine.retrieval.metrics import (
    DEFAULT_KS,
    bootstrap_ci,
    evaluate_run,
    first_relevant_rank,
    simultaneous_cis,
    wins_losses,
)
from engine.store import corpus, runs
from engine.train.settings import auto_batch_size

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
    chunks: int = 0  # the corpus size this arm searches, in chunks (a re-chunking's own)
    cost: Cost | None = None


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
    rule: str = ""  # the id of the rule that fired (engine.gate.verdict.RULES)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # simultaneous, per arm
    fine_tune_cost: Cost | None = None
    queries_excluded: list[dict[str, str]] = field(default_factory=list)  # gate queries left out, with why
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)  # gate queries copied in training

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
                f"{key}_ci_simultaneous": list(self.intervals.get(arm.name, arm.recall_ci)),
                "wins": arm.wins,
                "losses": arm.losses,
            }
            if arm.reranker:
                row["reranker"] = arm.reranker
            if arm.cost is not None:
                row["cost"] = arm.cost.to_json()
            arms.append(row)
        return {
            "verdict": self.verdict,
            "rule": self.rule,
            "selection": {"method": SELECTION, "arms": len(self.arms), "confidence": 0.95},
            "n_queries": self.n_queries,
            "queries_excluded": self.queries_excluded,
            "leakage": {"near_duplicates": self.near_duplicates},
            "k": self.k,
            "reasons": self.reasons,
            "hints": self.hints,
            "arms": arms,
            "skipped": self.skipped,
            "settings": self.settings,
            "run_id": self.run_id,
            "fine_tune_cost": self.fine_tune_cost.to_json() if self.fine_tune_cost else None,
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
    seconds: dict[str, float] = field(default_factory=dict)  # measured per-query latencies, by what
    encoders: dict[str, Encoder] = field(default_factory=dict)  # candidate base models' arms, by arm name


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
        prompts=project.config.prompts,
        backend=project.config.models.encode_backend,
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
        candidates = _candidate_rates(ctx)
        rates = _rates(ctx, candidates)
        settings["encode_seconds"] = {
            encoder.fingerprint: {"passage": rates.passage_seconds, "query": rates.query_seconds},
            **candidates,
        }
        report = _report(project, results, skipped, len(queries), settings)
        _price(project, report, rates, len(chunk_texts))
        _note_excluded(project, report)
        _note_near_duplicates(project, report)
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
        """An arm is wanted by its name, its family ("chunking" wants every chunking), or — for a family — by
        any of its members ("chunking:paragraph" wants the chunking family run, for that strategy only)."""
        if wanted is None or name in wanted or name.split(":")[0] in wanted:
            return True
        return ":" not in name and any(w.startswith(f"{name}:") for w in wanted)

    expander = _expander(ctx, skipped)
    expanded_chunks = None
    if expander and want("expansion"):
        started = time.perf_counter()
        expanded = [expander.expand(t) for t in ctx.query_texts]
        ctx.seconds["expansion"] = (time.perf_counter() - started) / len(expanded)
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
        started = time.perf_counter()
        fused = [
            reciprocal_rank_fusion([dense, bm25.search(q, ctx.chunk_depth)], ctx.chunk_depth)
            for dense, q in zip(base_chunks, ctx.query_texts, strict=True)
        ]
        ctx.seconds["bm25"] = (time.perf_counter() - started) / len(fused)
        results.append(_arm(ctx, "hybrid", "BM25 + dense, reciprocal rank fusion", fused, ctx.chunk_docs, k, base))
    results.extend(_rerank_arms(ctx, base, base_chunks, expanded_chunks, chunking_arms, skipped, want))
    results.extend(_candidate_arms(ctx, base, skipped, want))
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


def _candidate_arms(ctx: _Context, base: Arm, skipped: dict[str, str], want: Callable[[str], bool]) -> list[Arm]:
    """Another base model per `gate.candidates` entry, measured like the base: switching models is cheaper than
    fine-tuning (re-embed the corpus, no training) and the guide's first answer to a mismatched domain."""
    from engine.models.resolve import ModelNotFoundError

    project, out = ctx.project, []
    for spec in project.config.gate.candidates:
        name = f"model:{spec.rstrip('/').split('/')[-1]}"
        if not want(name):
            continue
        try:
            encoder = open_encoder(
                spec,
                base_dir=project.root,
                db=project.db,
                fit_texts=ctx.chunk_texts,
                trust_remote_code=project.config.trust_remote_code,
                prompts=project.config.prompts,
                backend=project.config.models.encode_backend,
            )
        except ModelNotFoundError as e:
            skipped[name] = f"candidate base model {spec} could not be loaded: {e}"
            continue
        vectors = encoder.encode(
            ctx.chunk_texts, "document", lambda d, t, n=name: ctx.progress(f"encode {n}", d, t), ctx.cancelled
        )
        queries = encoder.encode(ctx.query_texts, "query", cancelled=ctx.cancelled)
        rankings = dense_search(queries, vectors, ctx.chunk_depth)
        out.append(
            _arm(
                ctx,
                name,
                f"{spec}, dense cosine (another base model)",
                rankings,
                ctx.chunk_docs,
                ctx.project.config.gate.k,
                base,
            )
        )
        ctx.encoders[name] = encoder
    return out


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
        arm.chunks = len(texts)
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

    started = time.perf_counter()
    base_reranked = reranked("base", base_chunks, ctx.chunk_docs, ctx.chunk_texts)
    ctx.seconds["rerank"] = (time.perf_counter() - started) / len(base_reranked)
    arms = [
        _arm(
            ctx,
            "rerank",
            f"base + cross-encoder re-ranking of the top {top_n}",
            base_reranked,
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
    key = f"recall@{gate.k}"
    query_ids = list(arms[0].per_query)
    intervals = simultaneous_cis(
        {arm.name: [arm.per_query[q][key] for q in query_ids] for arm in arms},
        gate.bootstrap_samples,
        bounds=(0.0, 1.0),
    )
    pairs = corpus.training_pair_count(project.db)
    with_negatives = corpus.training_pairs_with_negatives(project.db)
    decision = decide(arms, intervals, skipped, gate, with_negatives, n_queries)
    return GateReport(
        decision.verdict,
        decision.reasons,
        hints(arms, gate.k, [q.text for q in corpus.judged_queries(project.db, "gate")]),
        n_queries,
        gate.k,
        arms,
        skipped,
        {**settings, "training_pairs": pairs, "training_pairs_with_negatives": with_negatives},
        rule=decision.rule,
        intervals=intervals,
    )


def _rates(ctx: _Context, candidates: dict[str, dict[str, float]]) -> Rates:
    """This machine's encode rates for the base model (uncached; measured once per model, then taken from the
    previous gate run so a re-run encodes nothing), the candidates' (by fingerprint) and the latencies the arms
    measured now."""
    passage_seconds, query_seconds = _encode_rates(ctx)
    expansion = ctx.seconds.get("expansion")
    return Rates(
        passage_seconds=passage_seconds,
        query_seconds=query_seconds,
        model_seconds={name: candidates[e.fingerprint]["passage"] for name, e in ctx.encoders.items()},
        rerank_seconds=ctx.seconds.get("rerank"),
        expansion_seconds=None if expansion is None else expansion + query_seconds,
        bm25_seconds=ctx.seconds.get("bm25"),
    )


def _encode_rates(ctx: _Context) -> tuple[float, float]:
    known = _known_rates(ctx).get(ctx.encoder.fingerprint)
    if known:
        return float(known["passage"]), float(known["query"])
    return (
        ctx.encoder.seconds_per_text(ctx.chunk_texts, "document"),
        ctx.encoder.seconds_per_text(ctx.query_texts, "query"),
    )


def _known_rates(ctx: _Context) -> dict[str, dict[str, float]]:
    """Encode rates the previous gate run measured, by model fingerprint."""
    latest = runs.latest_result(ctx.project.db, "gate")
    return dict(latest[1].get("settings", {}).get("encode_seconds", {})) if latest else {}


def _candidate_rates(ctx: _Context) -> dict[str, dict[str, float]]:
    known = _known_rates(ctx)
    out = {}
    for encoder in ctx.encoders.values():
        out[encoder.fingerprint] = known.get(encoder.fingerprint) or {
            "passage": encoder.seconds_per_text(ctx.chunk_texts, "document"),
            "query": encoder.seconds_per_text(ctx.query_texts, "query"),
        }
    return out


def _price(project: Project, report: GateReport, rates: Rates, corpus_chunks: int) -> None:
    """Each arm's cost beside its measured gain over the base (a paired bootstrap interval), and fine-tuning's."""
    key = f"recall@{report.k}"
    base = next(a for a in report.arms if a.name == "base")
    samples = project.config.gate.bootstrap_samples
    for arm in report.arms:
        diffs = [arm.per_query[q][key] - base.per_query[q][key] for q in base.per_query]
        low, high = bootstrap_ci(diffs, n_samples=samples, seed=project.config.seed)
        gain = arm.metrics[key] - base.metrics[key]
        arm.cost = arm_cost(arm.name, gain, (low, high), rates, arm.chunks or corpus_chunks, corpus_chunks)
    training = project.config.training
    rows = report.settings["training_pairs"]
    texts_per_row = 3 if training.hard_negatives and report.settings["training_pairs_with_negatives"] else 2
    report.fine_tune_cost = fine_tune_cost(
        rates, rows, texts_per_row, training.batch_size or auto_batch_size(rows), training.epochs, corpus_chunks
    )
    report.reasons += _switch_notes(report)


def _note_excluded(project: Project, report: GateReport) -> None:
    excluded = corpus.excluded_queries(project.db, "gate")
    report.queries_excluded = [{"id": qid, "reason": why} for qid, why in excluded]
    if excluded:
        report.reasons.append(
            f"{len(excluded)} gate queries left out ({', '.join(q for q, _ in excluded[:5])}"
            f"{', …' if len(excluded) > 5 else ''}): {excluded[0][1]}"
            + (" and others" if len({w for _, w in excluded}) > 1 else "")
            + "; review the gate pairs with the Review screen's split filter to restore them"
        )


def _note_near_duplicates(project: Project, report: GateReport) -> None:
    """Gate queries that train queries copy (near-duplicates): the base model's figures are unaffected, but a
    gate re-run after fine-tuning would flatter the tuned model, so say so now."""
    from engine.evaluate.leakage import near_duplicate_lines, near_duplicates

    found = near_duplicates(project, "gate")
    report.near_duplicates = [
        {"gate_id": d.query_id, "train_id": d.reference_id, "gate_text": d.query_text,
         "train_text": d.reference_text, "similarity": round(d.similarity, 4)}
        for d in found
    ]  # fmt: skip
    lines = near_duplicate_lines(found, "gate", project.config.leakage.near_duplicate_threshold)
    if lines:
        report.reasons.append(
            " ".join(lines[:1]) + " a gate re-run after fine-tuning on them would flatter the tuned model; "
            "remove them from training or from the gate: " + "; ".join(line.strip() for line in lines[1:4])
        )


def _switch_notes(report: GateReport) -> list[str]:
    """A candidate base model that beats the base for sure is cheaper than fine-tuning: say so."""
    notes = []
    for arm in report.arms:
        if not arm.name.startswith("model:") or arm.cost is None or arm.cost.gain_ci[0] <= 0:
            continue
        low, high = arm.cost.gain_ci
        notes.append(
            f"switching the base model to {arm.name[6:]} lifts Recall@{report.k} by {arm.cost.gain:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] for {arm.cost.note} — no training, no labelled pairs: try it before "
            "fine-tuning (set base_model: in project.yaml and re-run the gate)"
        )
    return notes


def _save(project: Project, run_id: int, report: GateReport) -> None:
    metrics = [(key, arm.name, value) for arm in report.arms for key, value in arm.metrics.items()]
    rows = [(arm.name, qid, arm.first_ranks[qid], arm.per_query[qid]) for arm in report.arms for qid in arm.per_query]
    runs.finish_run(project.db, run_id, report.to_json(), metrics, rows)
