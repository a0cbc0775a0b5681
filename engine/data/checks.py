"""`embtune check`: data checks before training, each a finding with severity ok, warn or error.

- duplicate_queries: one normalised text under several query ids (warn);
- leakage: a train query that is, after normalisation, the same text or the same set of words as a dev, test,
  gate or general query (error: the evaluation would measure memorisation; `--allow-leakage` turns it into a
  warning). Exact keys in dicts, so it scales linearly: 100k queries take well under a second;
- near_duplicates: an evaluation query that is a paraphrase-level copy of a train query (character 3-5-gram
  Jaccard >= leakage.near_duplicate_threshold, not a template with another slot; engine.retrieval.near_duplicates),
  each with its most similar train query. An error like leakage when leakage.near_duplicates is "error" (the
  default), a warning when it is "warn" or --allow-leakage is passed. Queries already caught as exact leaks are
  not repeated here;
- in_batch_duplicates: passages that are the positive of several train queries, and queries with several
  positives. MultipleNegativesRankingLoss uses every other row of a batch as a negative, so a repeated text in a
  batch is a false negative. Reported with the share of batches of training.batch_size that would hold one
  under plain shuffling (warn at 5%+; sentence-transformers' BatchSamplers.NO_DUPLICATES avoids them);
- document_overlap: evaluation queries whose relevant document is also a train positive (ok: normal in BEIR-style
  data, the queries differ; reported so eval numbers can be read with it in mind);
- pair_count: train pairs against gate.min_pairs (1,000) and gate.reliable_pairs (5,000) from the guide (warn
  below the minimum);
- negatives: train queries with a usable hard negative (warn when none has one).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.project import Project
from engine.retrieval.near_duplicates import find_near_duplicates, normalise
from engine.store import checks as store
from engine.store.schema import SPLITS
from engine.train.settings import auto_batch_size

SEVERITIES = ("ok", "warn", "error")
EVAL_SPLITS = tuple(s for s in SPLITS if s != "train")
EXAMPLES = 10
BATCH_WARN_SHARE = 0.05
SHUFFLES = 3


@dataclass
class Finding:
    code: str
    severity: str
    title: str
    message: str
    count: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "count": self.count,
            "details": self.details,
        }


@dataclass
class CheckReport:
    findings: list[Finding]

    @property
    def severity(self) -> str:
        return max((f.severity for f in self.findings), key=SEVERITIES.index, default="ok")

    @property
    def exit_code(self) -> int:
        """1 when any finding is an error (leakage unless allowed), else 0."""
        return 1 if self.severity == "error" else 0

    def to_json(self) -> dict[str, Any]:
        """The `embtune check --json` contract."""
        return {
            "severity": self.severity,
            "ok": self.severity != "error",
            "findings": [f.to_json() for f in self.findings],
        }


__all__ = ["normalise"]  # defined with the near-duplicate measure, so both read texts the same way


def token_set(text: str) -> str:
    """The sorted set of a normalised text's words: the same words in another order or repeated match."""
    return " ".join(sorted(set(text.split())))


def run_checks(project: Project, allow_leakage: bool = False) -> CheckReport:
    db, config = project.db, project.config
    queries = store.queries(db)
    train = store.positives(db, "train")
    exact = _exact_leaks(queries)
    near_blocks = config.leakage.near_duplicates == "error" and not allow_leakage
    findings = [
        _duplicates(queries),
        _leakage(queries, allow_leakage, exact),
        _near_duplicates(queries, config.leakage.near_duplicate_threshold, near_blocks, {e["eval"] for e in exact}),
        _in_batch(train, config.training.batch_size or auto_batch_size(len(train)), config.seed),
        _document_overlap(store.judged_documents(db)),
        _pair_count(len(train), config.gate.min_pairs, config.gate.reliable_pairs),
        _negatives(len({q for q, _, _, _ in train}), store.queries_with_negatives(db, "train")),
    ]
    return CheckReport(findings)


def _duplicates(queries: list[tuple[str, str, str]]) -> Finding:
    groups: dict[str, list[tuple[str, str]]] = {}
    for qid, text, split in queries:
        groups.setdefault(normalise(text), []).append((qid, split))
    dups = sorted((g for g in groups.items() if len(g[1]) > 1), key=lambda g: (-len(g[1]), g[0]))
    extra = sum(len(ids) - 1 for _, ids in dups)
    examples = [
        {"text": text, "ids": [q for q, _ in ids], "splits": sorted({s for _, s in ids})}
        for text, ids in dups[:EXAMPLES]
    ]
    message = (
        f"{len(dups):,} texts are used by more than one query id ({extra:,} extra ids): they count twice in "
        "metrics and, in train, form duplicate anchors"
        if dups
        else "no two query ids share a text"
    )
    return Finding(
        "duplicate_queries",
        "warn" if dups else "ok",
        "Duplicate queries",
        message,
        len(dups),
        {"extra_ids": extra, "examples": examples},
    )


def _exact_leaks(queries: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """{train, eval, split, match} for every train query with the same text or words as an evaluation query."""
    exact: dict[str, list[tuple[str, str]]] = {}
    words: dict[str, list[tuple[str, str]]] = {}
    for qid, text, split in queries:
        if split in EVAL_SPLITS:
            norm = normalise(text)
            exact.setdefault(norm, []).append((qid, split))
            words.setdefault(token_set(norm), []).append((qid, split))
    leaks: list[dict[str, str]] = []
    for qid, text, split in queries:
        if split != "train":
            continue
        norm = normalise(text)
        how, hits = ("same text", exact.get(norm)) if norm in exact else ("same words", words.get(token_set(norm)))
        leaks.extend({"train": qid, "eval": eid, "split": esplit, "match": how} for eid, esplit in hits or [])
    return leaks


def _leakage(queries: list[tuple[str, str, str]], allow: bool, leaks: list[dict[str, str]] | None = None) -> Finding:
    leaks = _exact_leaks(queries) if leaks is None else leaks
    train_ids = {leak["train"] for leak in leaks}
    by_split = dict(Counter(split for _, split in {(leak["eval"], leak["split"]) for leak in leaks}))
    if not leaks:
        return Finding(
            "leakage",
            "ok",
            "Train/eval leakage",
            "no train query repeats a dev, test, gate or general query (same normalised text or same set of words)",
            0,
            {"by_split": {}, "examples": []},
        )
    severity, tail = (
        ("warn", " (allowed by --allow-leakage)")
        if allow
        else ("error", ": remove them from train, or pass --allow-leakage to accept")
    )
    counts = ", ".join(f"{s} {n:,}" for s, n in sorted(by_split.items()))
    message = (
        f"{len(train_ids):,} train queries repeat evaluation queries ({counts}); metrics on those would "
        f"measure memorisation{tail}"
    )
    return Finding(
        "leakage",
        severity,
        "Train/eval leakage",
        message,
        len(train_ids),
        {"by_split": by_split, "examples": leaks[:EXAMPLES]},
    )


def _near_duplicates(queries: list[tuple[str, str, str]], threshold: float, blocks: bool, exact: set[str]) -> Finding:
    train = [(qid, text) for qid, text, split in queries if split == "train"]
    split_of = {qid: split for qid, _, split in queries}
    evaluated = [(qid, text) for qid, text, split in queries if split in EVAL_SPLITS and qid not in exact]
    found = find_near_duplicates(evaluated, train, threshold) if train and evaluated else []
    examples = [
        {
            "eval_id": d.query_id,
            "split": split_of[d.query_id],
            "train_id": d.reference_id,
            "eval_text": d.query_text,
            "train_text": d.reference_text,
            "similarity": d.similarity,
        }
        for d in found
    ]
    by_split = dict(Counter(e["split"] for e in examples))
    details = {"threshold": threshold, "by_split": by_split, "examples": examples[:EXAMPLES]}
    if not found:
        message = f"no evaluation query is a near-duplicate of a train query (similarity >= {threshold})"
        return Finding("near_duplicates", "ok", "Near-duplicate leakage", message, 0, details)
    counts = ", ".join(f"{s} {n:,}" for s, n in sorted(by_split.items()))
    first = examples[0]
    tail = (
        ": remove them from one side, or pass --allow-leakage (or set leakage.near_duplicates: warn) to accept"
        if blocks
        else " (reported only)"
    )
    message = (
        f"{len(found):,} evaluation queries ({counts}) are near-duplicates of train queries (character n-gram "
        f"similarity >= leakage.near_duplicate_threshold {threshold}), e.g. {first['eval_id']} "
        f"{first['eval_text']!r} ~ train {first['train_id']} {first['train_text']!r} ({first['similarity']:.2f})"
        f"{tail}"
    )
    severity = "error" if blocks else "warn"
    return Finding("near_duplicates", severity, "Near-duplicate leakage", message, len(found), details)


def _in_batch(train: list[tuple[str, str, str, str]], batch_size: int, seed: int) -> Finding:
    per_passage: dict[str, set[str]] = {}
    chunk_of: dict[str, str] = {}
    per_query: dict[str, int] = {}
    for qid, _, key, chunk_id in train:
        per_passage.setdefault(key, set()).add(qid)
        chunk_of.setdefault(key, chunk_id)
        per_query[qid] = per_query.get(qid, 0) + 1
    shared = sorted(((len(q), k) for k, q in per_passage.items() if len(q) > 1), reverse=True)
    multi = sum(n > 1 for n in per_query.values())
    share = _batch_share([(normalise(text), key) for _, text, key, _ in train], batch_size, seed)
    offenders = [{"chunk_id": chunk_of[k], "queries": n} for n, k in shared[:EXAMPLES]]
    severity = "warn" if share >= BATCH_WARN_SHARE else "ok"
    message = (
        f"{len(shared):,} passages are the positive of several train queries (top: "
        f"{offenders[0]['queries'] if offenders else 0}), {multi:,} queries have several positives; "
        f"{share:.0%} of shuffled batches of {batch_size} would repeat a text, which in-batch negatives "
        "turn into false negatives" + (": train with BatchSamplers.NO_DUPLICATES" if severity == "warn" else "")
    )
    return Finding(
        "in_batch_duplicates",
        severity,
        "Repeated texts in batches",
        message,
        len(shared),
        {
            "passages_shared": len(shared),
            "queries_with_several_positives": multi,
            "batch_size": batch_size,
            "batches_with_repeat": round(share, 4),
            "top_passages": offenders,
        },
    )


def _batch_share(rows: list[tuple[str, str]], batch_size: int, seed: int) -> float:
    """Share of batches, over a few seeded shuffles, in which an anchor or a positive text repeats."""
    if len(rows) < 2:
        return 0.0
    rng = random.Random(seed)
    hit = total = 0
    order = list(range(len(rows)))
    for _ in range(SHUFFLES):
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[start : start + batch_size]]
            total += 1
            hit += _repeats(a for a, _ in batch) or _repeats(p for _, p in batch)
    return hit / total


def _repeats(items: Iterable[str]) -> bool:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return True
        seen.add(item)
    return False


def _document_overlap(judged: list[tuple[str, str, str]]) -> Finding:
    train_docs = {doc for split, _, doc in judged if split == "train"}
    by_split: dict[str, set[str]] = {}
    for split, qid, doc in judged:
        if split in EVAL_SPLITS and doc in train_docs:
            by_split.setdefault(split, set()).add(qid)
    total = sum(len(q) for q in by_split.values())
    counts = {s: len(q) for s, q in sorted(by_split.items())}
    text = ", ".join(f"{s} {n:,}" for s, n in counts.items())
    message = (
        f"{total:,} evaluation queries ({text}) have a relevant document that is also a train positive; "
        "normal in BEIR-style data (the queries differ), but a fine-tuned model has seen those documents"
        if total
        else "no evaluation query's relevant document is a train positive"
    )
    return Finding("document_overlap", "ok", "Train/eval document overlap", message, total, {"by_split": counts})


def _pair_count(pairs: int, minimum: int, reliable: int) -> Finding:
    if pairs < minimum:
        severity, note = "warn", f"below the guide's minimum of {minimum:,}: fine-tuning is not advised yet"
    elif pairs < reliable:
        severity, note = "ok", f"above the minimum of {minimum:,}; {reliable:,}+ gives reliable results"
    else:
        severity, note = "ok", f"at least the {reliable:,} the guide calls reliable"
    return Finding(
        "pair_count",
        severity,
        "Training pairs",
        f"{pairs:,} train pairs: {note}",
        pairs,
        {"min_pairs": minimum, "reliable_pairs": reliable},
    )


def _negatives(queries: int, with_negative: int) -> Finding:
    if queries and not with_negative:
        return Finding(
            "negatives",
            "warn",
            "Hard negatives",
            f"none of the {queries:,} train queries has a hard "
            "negative: run `embtune mine DIR` (the guide asks for pairs with hard negatives)",
            0,
            {"queries": queries},
        )
    share = with_negative / queries if queries else 0.0
    return Finding(
        "negatives",
        "ok",
        "Hard negatives",
        f"{with_negative:,} of {queries:,} train queries ({share:.0%}) have a usable hard negative",
        with_negative,
        {"queries": queries},
    )


def render_report(report: CheckReport) -> str:
    marks = {"ok": "ok   ", "warn": "warn ", "error": "ERROR"}
    lines = [f"{marks[f.severity]} {f.title}: {f.message}" for f in report.findings]
    return "\n".join(lines)
