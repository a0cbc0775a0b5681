"""Per query, after the library's ranking: exclusions, the cross-encoder check and sampling (engine.data.mining)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.config import MiningConfig
from engine.jobs.progress import Progress
from engine.project import Project
from engine.store import negatives as store


@dataclass
class Texts:
    """The unique corpus texts (chunks, then positives) and query texts, in the order the library de-duplicates
    them; everything past the library call refers to texts by their index here."""

    corpus: list[str]
    queries: list[str]

    @classmethod
    def of(cls, pairs: Sequence[store.MiningPair], chunk_texts: list[str]) -> Texts:
        return cls(
            list(dict.fromkeys(chunk_texts + [p.passage for p in pairs])), list(dict.fromkeys(p.query for p in pairs))
        )


@dataclass
class Candidates:
    """One unique query's ranked window from the library: (text index, cosine) best first, and positive scores."""

    ranked: list[tuple[int, float]] = field(default_factory=list)
    positive_scores: dict[int, float] = field(default_factory=dict)


@dataclass
class Query:
    id: str
    index: int  # in Texts.queries
    positives: list[int]  # indices in Texts.corpus
    pending: list[tuple[str, int, float]] = field(default_factory=list)  # (chunk id, text index, cosine), in order
    chosen: list[tuple[str, int, float]] = field(default_factory=list)
    positive_score: float | None = None


def queries_of(pairs: Sequence[store.MiningPair], texts: Texts) -> list[Query]:
    query_index = {q: i for i, q in enumerate(texts.queries)}
    corpus_index = {t: i for i, t in enumerate(texts.corpus)}
    out: dict[str, Query] = {}
    for p in pairs:
        out.setdefault(p.query_id, Query(p.query_id, query_index[p.query], [])).positives.append(
            corpus_index[p.passage]
        )
    return list(out.values())


def chunks_by_text(
    texts: Texts, chunk_ids: list[str], chunk_docs: list[str], chunk_texts: list[str], pairs: Sequence[store.MiningPair]
) -> dict[int, list[tuple[str, str]]]:
    """Text index -> (chunk id, document id) of every chunk holding that text: the library ranks texts."""
    corpus_index = {t: i for i, t in enumerate(texts.corpus)}
    out: dict[int, list[tuple[str, str]]] = {}
    for cid, doc, text in zip(chunk_ids, chunk_docs, chunk_texts, strict=True):
        out.setdefault(corpus_index[text], []).append((cid, doc))
    for p in pairs:  # a positive outside the retrieval chunking is in the library's corpus too
        holders = out.setdefault(corpus_index[p.passage], [])
        if (p.chunk_id, p.doc_id) not in holders:
            holders.append((p.chunk_id, p.doc_id))
    return out


def exclude(
    project: Project,
    queries: list[Query],
    candidates: dict[int, Candidates],
    chunks: dict[int, list[tuple[str, str]]],
    miner: str,
    config: MiningConfig,
) -> dict[str, int]:
    """Turn each query's ranked texts into the chunk ids it may use, in order; count what was left out."""
    ids = [q.id for q in queries]
    relevant = store.relevant_documents(project.db, ids)
    blocked = store.blocked_chunks(project.db, ids, miner)
    counts = {"excluded_relevant_document": 0, "excluded_reviewed": 0, "skipped_false_negative": 0}
    for q in queries:
        found = candidates.get(q.index)
        if found is None:
            continue
        scores = [found.positive_scores[t] for t in q.positives if t in found.positive_scores]
        q.positive_score = min(scores) if scores else None
        docs, skip = relevant.get(q.id, set()), blocked.get(q.id, set())
        for text, score in found.ranked:
            holders = chunks.get(text, [])
            if any(doc in docs for _, doc in holders):
                counts["excluded_relevant_document"] += 1
                continue
            usable = [cid for cid, _ in holders if cid not in skip]
            if not usable:
                counts["excluded_reviewed"] += 1
                continue
            q.pending.append((usable[0], text, score))
        if config.sampling == "random":
            random.Random(f"{project.config.seed}:{q.id}").shuffle(q.pending)
    return counts


def sample(queries: list[Query], config: MiningConfig) -> None:
    """Top up each query to num_negatives from the front of its (ranked or shuffled) pending list, which is
    all of the selection without a cross-encoder and a no-op after rescore; then order hardest first."""
    for q in queries:
        if q.pending:
            need = config.num_negatives - len(q.chosen)
            q.chosen.extend(q.pending[:need])
            q.pending = []
        q.chosen.sort(key=lambda c: -c[2])


def rescore(
    project: Project,
    spec: str,
    queries: list[Query],
    texts: Texts,
    config: MiningConfig,
    report: Progress,
    cancelled: Callable[[], bool],
) -> int:
    """Walk each query's pending candidates in rounds, one cross-encoder call per round across all queries,
    until it has num_negatives that score below its weakest positive; returns how many were dropped."""
    from engine.models.resolve import load_cross_encoder

    model = load_cross_encoder(spec, base_dir=project.root, trust_remote_code=project.config.trust_remote_code)
    todo = [q for q in queries if q.pending]
    pairs = [(texts.queries[q.index], texts.corpus[t]) for q in todo for t in q.positives]
    scores = iter(_predict(model, pairs, config.batch_size))
    floor = {q.id: min(float(next(scores)) for _ in q.positives) for q in todo}
    skipped, total, done = 0, len(todo), 0
    report("rescore", 0, total)
    while todo:
        if cancelled():
            raise InterruptedError("mining cancelled")
        batch = [(q, q.pending[: config.num_negatives - len(q.chosen)]) for q in todo]
        flat = [(texts.queries[q.index], texts.corpus[t]) for q, picks in batch for _, t, _ in picks]
        scores = iter(_predict(model, flat, config.batch_size))
        still: list[Query] = []
        for q, picks in batch:
            del q.pending[: len(picks)]
            for pick in picks:
                if float(next(scores)) >= floor[q.id]:
                    skipped += 1
                else:
                    q.chosen.append(pick)
            if len(q.chosen) < config.num_negatives and q.pending:
                still.append(q)
            else:
                done += 1
        todo = still
        report("rescore", done, total)
    return skipped


def _predict(model: Any, pairs: list[tuple[str, str]], batch_size: int) -> list[float]:
    if not pairs:
        return []
    return [float(s) for s in model.predict(pairs, batch_size=batch_size, show_progress_bar=False)]
