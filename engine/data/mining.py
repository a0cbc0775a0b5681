"""`embtune mine`: hard negatives for the train pairs, from sentence-transformers' mine_hard_negatives.

The library does the ranking: the base model scores every retrieval chunk for each train query, the query's
positives are removed, candidates within the margin of the positive are dropped (relative_margin /
absolute_margin), and the rank window range_min..range_max is kept in order. embtune then applies what the
library cannot know from texts alone, per query id:

- no chunk of a document judged relevant to the query (any split, or marked false negative in review) is kept:
  the library only removes the positive chunk itself, not its siblings, which are false negatives by
  construction;
- chunks review rejected for the query, or that another miner already stored, are skipped;
- sampling ('top', or 'random' seeded by project seed and query id, so a re-run picks the same negatives: the
  library's own random sampling uses the unseeded global RNG);
- optionally a cross-encoder check: a candidate it scores at least as high as the query's (weakest) positive is
  a likely false negative and is dropped (counted as skipped_false_negative), and the next candidate is tried.

The library is asked for the whole window (num_negatives = range_max - range_min, sampling 'top') so these
filters can fall through to the next candidate (engine.data.mining_select). Its embeddings come from embtune's
cache: the query and corpus vectors are encoded (or read) through engine.models.encoder.Encoder and handed over as
the `cache_folder` files the library looks for, so a re-run, or a mine after a gate on the same model, encodes
nothing (see _mine for how, and for the fallback should the library's cache naming change).

All negatives of a run are inserted in one transaction together with the run's result; (query, chunk, miner) is
unique, so re-running with the same settings adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import MiningConfig
from engine.data import mining_select as select
from engine.errors import EmbtuneError
from engine.jobs.progress import Progress, cancellable
from engine.project import Project
from engine.store import corpus, runs
from engine.store import negatives as store
from engine.store.db import write

MINER = "mine_hard_negatives"


class MiningError(EmbtuneError):
    """Mining cannot start: no train pairs, no corpus, or a required cross-encoder is missing."""


def mine_negatives(
    project: Project,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    split: str = "train",
) -> dict[str, Any]:
    """Mine, store and record as a 'mine' run; returns the `embtune mine --json` summary.

    `cancelled` is polled between stages and encoded blocks (the library's search itself runs uninterrupted);
    a cancelled run raises InterruptedError, is recorded as 'cancelled' and stores nothing."""
    started = time.monotonic()
    is_cancelled = cancelled or (lambda: False)
    report = cancellable(progress, is_cancelled, "mining")

    config = project.config.mining
    pairs = store.mining_pairs(project.db, split)
    if not pairs:
        raise MiningError(
            f"no {split} pairs to mine negatives for: import pairs first "
            "(embtune import DIR --pairs FILE, or a BEIR folder with qrels/train.tsv)"
        )
    chunk_ids, chunk_docs, chunk_texts = corpus.retrieval_chunks(project.db)
    if not chunk_texts:
        raise MiningError("the project has no corpus: import documents first (embtune import DIR --beir/--docs)")
    reranker = _reranker_spec(project)
    os.environ.setdefault("TQDM_DISABLE", "1")  # the library's similarity bar would draw over ours
    from engine.models.encoder import open_encoder

    encoder = open_encoder(
        project.config.base_model,
        base_dir=project.root,
        db=project.db,
        fit_texts=chunk_texts,
        trust_remote_code=project.config.trust_remote_code,
        prompts=project.config.prompts,
        batch_size=config.batch_size,
        backend=project.config.models.encode_backend,
    )
    miner = f"{MINER}:{encoder.fingerprint}"
    settings = _settings(project, config, encoder, reranker, split)
    run_id = runs.create_run(project.db, "mine", settings)
    stored = False
    try:
        texts, candidates, cache_used = _mine(encoder, pairs, chunk_texts, config, report)
        queries = select.queries_of(pairs, texts)
        chunks = select.chunks_by_text(texts, chunk_ids, chunk_docs, chunk_texts, pairs)
        counts = select.exclude(project, queries, candidates, chunks, miner, config)
        if reranker is not None:
            dropped = select.rescore(project, reranker[0], queries, texts, config, report, is_cancelled)
            counts["skipped_false_negative"] = dropped
        select.sample(queries, config)
        report("store", 0, 1)
        summary = _summary(run_id, pairs, queries, counts, miner, settings, cache_used, config)
        settings_json = json.dumps(settings, sort_keys=True)
        rows = [
            store.NegativeRow(q.id, chunk_id, score, q.positive_score, miner, settings_json)
            for q in queries
            for chunk_id, _, score in q.chosen
        ]
        with write(project.db):
            if is_cancelled():  # the last check, under the lock: past it the negatives are kept and the run finished
                raise InterruptedError("mining cancelled")
            summary["negatives_added"] = store.insert_negatives(project.db, rows)
            summary["seconds"] = round(time.monotonic() - started, 2)
            runs.finish_run(project.db, run_id, summary, _metrics(summary), [])
        stored = True
        if progress:  # not `report`: a cancel arriving now must not mark a stored, finished run cancelled
            progress("store", 1, 1)
        return summary
    except BaseException as e:
        if not stored:
            status = "cancelled" if isinstance(e, InterruptedError) and is_cancelled() else "failed"
            runs.fail_run(project.db, run_id, f"{type(e).__name__}: {e}", status)
        raise


# --- the library call -------------------------------------------------------------------------------------


def _mine(
    encoder: Any, pairs: Sequence[store.MiningPair], chunk_texts: list[str], config: MiningConfig, report: Progress
) -> tuple[select.Texts, dict[int, select.Candidates], bool]:
    """Run mine_hard_negatives over the whole rank window on embtune's cached vectors; parse its output.

    The library is handed opaque keys ('t12' for corpus text 12, 'q3' for query 3) and the vectors of those
    keys as its cache files, so its output holds keys, not copies of every passage (a window of 40 over 100k
    pairs would otherwise materialise millions of passage strings). Should it not read the cache files (their
    naming changed), it has embedded the keys themselves: that result is discarded and it is called again
    with the real texts, which it then encodes itself."""
    texts = select.Texts.of(pairs, chunk_texts)
    corpus_vectors = encoder.encode(texts.corpus, "document", lambda d, t: report("encode corpus", d, t))
    query_vectors = encoder.encode(texts.queries, "query", lambda d, t: report("encode queries", d, t))
    model = encoder.model
    model.max_seq_length = encoder.max_seq_length  # used only if the library has to encode after all
    corpus_index = {t: i for i, t in enumerate(texts.corpus)}
    query_index = {q: i for i, q in enumerate(texts.queries)}
    report("mine", 0, 1)
    with tempfile.TemporaryDirectory(prefix="embtune-mine-") as folder:
        corpus_keys = [f"t{i}" for i in range(len(texts.corpus))]
        query_keys = [f"q{i}" for i in range(len(texts.queries))]
        ours = _write_library_cache(Path(folder), model, query_keys, query_vectors, corpus_keys, corpus_vectors)
        mined = _call_library(
            model,
            [query_keys[query_index[p.query]] for p in pairs],
            [corpus_keys[corpus_index[p.passage]] for p in pairs],
            [corpus_keys[corpus_index[t]] for t in chunk_texts],
            config,
            folder,
        )
        cache_used = set(os.listdir(folder)) == ours
    query_of: Callable[[str], int] = _key_index
    text_of: Callable[[str], int] = _key_index
    if not cache_used:
        mined = _call_library(model, [p.query for p in pairs], [p.passage for p in pairs], chunk_texts, config, None)
        query_of, text_of = query_index.__getitem__, corpus_index.__getitem__
    report("mine", 1, 1)
    out: dict[int, select.Candidates] = {}
    for anchor, documents, scores in zip(mined["anchor"], mined["positive"], mined["scores"], strict=True):
        found = out.setdefault(query_of(anchor), select.Candidates())
        found.positive_scores[text_of(documents[0])] = float(scores[0])
        if not found.ranked:
            found.ranked = [(text_of(d), float(x)) for d, x in zip(documents[1:], scores[1:], strict=True)]
    return texts, out, cache_used


def _key_index(key: str) -> int:
    return int(key[1:])


def _call_library(
    model: Any,
    anchors: list[str],
    positives: list[str],
    corpus: list[str],
    config: MiningConfig,
    cache_folder: str | None,
) -> Any:
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    return mine_hard_negatives(
        Dataset.from_dict({"anchor": anchors, "positive": positives}),
        model,
        anchor_column_name="anchor",
        positive_column_name="positive",
        corpus=corpus,
        range_min=config.range_min,
        range_max=config.range_max,
        relative_margin=config.relative_margin,
        absolute_margin=config.absolute_margin,
        num_negatives=config.range_max - config.range_min,
        sampling_strategy="top",
        output_format="labeled-list",
        output_scores=True,
        batch_size=config.batch_size,
        use_faiss=False,
        verbose=False,
        cache_folder=cache_folder,
    )


def _write_library_cache(
    folder: Path,
    model: Any,
    queries: list[str],
    query_vectors: np.ndarray,
    corpus: list[str],
    corpus_vectors: np.ndarray,
) -> set[str]:
    """The files mine_hard_negatives(cache_folder=...) loads instead of encoding, named as it names them."""
    name = getattr(getattr(model, "model_card_data", None), "base_model", None) or ""
    files = {}
    for kind, items, vectors in (("query", queries, query_vectors), ("corpus", corpus, corpus_vectors)):
        digest = hashlib.sha256(repr((name, None, None, items)).encode(), usedforsecurity=False).hexdigest()
        files[f"{kind}_embeddings_{digest}.npy"] = vectors
    for file, vectors in files.items():
        np.save(folder / file, np.ascontiguousarray(vectors, dtype=np.float32))
    return set(files)


def _reranker_spec(project: Project) -> tuple[str, str] | None:
    """(model spec, where it came from) of the cross-encoder that checks for false negatives, or None."""
    mode = project.config.mining.rescore
    if mode == "never":
        return None
    if project.config.reranker:
        return project.config.reranker, "project.yaml reranker"
    trained = runs.latest_model_run(project.db, "reranker")
    if trained is not None:
        return trained["model_path"], f"trained in this project (run {trained['id']})"
    if mode == "always":
        raise MiningError(
            "mining.rescore is 'always' but no cross-encoder is available: set 'reranker:' in "
            "project.yaml or train one with `embtune reranker train DIR` (or set rescore: auto)"
        )
    return None


# --- settings and summary ---------------------------------------------------------------------------------


def _settings(
    project: Project, config: MiningConfig, encoder: Any, reranker: tuple[str, str] | None, split: str
) -> dict[str, Any]:
    from importlib.metadata import version

    cross_encoder = None
    if reranker is not None:
        from engine.models.resolve import model_fingerprint, resolve_model

        path = resolve_model(reranker[0], project.root).path
        cross_encoder = {"model": reranker[0], "origin": reranker[1], "fingerprint": model_fingerprint(path)}
    return {
        "split": split,
        "base_model": project.config.base_model,
        "model_fingerprint": encoder.fingerprint,
        "max_seq_length": encoder.max_seq_length,
        "range_min": config.range_min,
        "range_max": config.range_max,
        "relative_margin": config.relative_margin,
        "absolute_margin": config.absolute_margin,
        "num_negatives": config.num_negatives,
        "sampling": config.sampling,
        "seed": project.config.seed,
        "rescore": config.rescore,
        "cross_encoder": cross_encoder,
        "batch_size": config.batch_size,
        "sentence_transformers": version("sentence-transformers"),
    }


def _summary(
    run_id: int,
    pairs: Sequence[store.MiningPair],
    queries: list[select.Query],
    counts: dict[str, int],
    miner: str,
    settings: dict[str, Any],
    cache_used: bool,
    config: MiningConfig,
) -> dict[str, Any]:
    """The `embtune mine --json` contract (negatives_added and seconds are filled in when stored)."""
    return {
        "run_id": run_id,
        "pairs": len(pairs),
        "queries": len(queries),
        "negatives_added": 0,
        "negatives_selected": sum(len(q.chosen) for q in queries),
        "skipped_false_negative": counts["skipped_false_negative"],
        "excluded_relevant_document": counts["excluded_relevant_document"],
        "excluded_reviewed": counts["excluded_reviewed"],
        "short": sum(len(q.chosen) < config.num_negatives for q in queries),
        "miner": miner,
        "settings": settings,
        "embedding_cache": cache_used,
        "seconds": 0.0,
    }


def _metrics(summary: dict[str, Any]) -> list[tuple[str, str, float]]:
    keys = ("negatives_added", "negatives_selected", "skipped_false_negative", "excluded_relevant_document", "short")
    return [(key, summary["settings"]["split"], float(summary[key])) for key in keys]


def render_summary(summary: dict[str, Any]) -> str:
    """The text `embtune mine` prints."""
    s = summary["settings"]
    margins = [
        f"{key.replace('_', ' ')} {s[key]}" for key in ("relative_margin", "absolute_margin") if s[key] is not None
    ]
    already = summary["negatives_selected"] - summary["negatives_added"]
    ce = s["cross_encoder"]
    if ce:
        dropped = summary["skipped_false_negative"]
        rescored = f"{dropped:,} likely false negatives dropped by {ce['model']} ({ce['origin']})"
    elif s["rescore"] == "never":
        rescored = "off (mining.rescore: never)"
    else:
        rescored = "off: no cross-encoder (set reranker: in project.yaml, or run `embtune reranker train DIR`)"
    return "\n".join(
        [
            f"Mined hard negatives for {summary['queries']:,} {s['split']} queries ({summary['pairs']:,} pairs) "
            f"with {s['base_model']} (run {summary['run_id']}, {summary['seconds']} s)",
            f"  added      {summary['negatives_added']:,} new negatives ({already:,} selected were already stored)",
            f"  short      {summary['short']:,} queries got fewer than {s['num_negatives']}",
            f"  excluded   {summary['excluded_relevant_document']:,} candidates from documents judged relevant, "
            f"{summary['excluded_reviewed']:,} rejected in review or stored by another miner",
            f"  rescoring  {rescored}",
            f"  settings   ranks {s['range_min']}-{s['range_max']}, {', '.join(margins) or 'no margin'}, "
            f"{s['sampling']} {s['num_negatives']}",
        ]
    )
