"""The evaluation's leakage guard: evaluation queries and pairs that training has already seen.

Built on the data checks' normalisation (engine.data.checks.normalise / token_set) and their reads
(engine.store.checks), so `embtune check` and `embtune eval` call the same texts the same:
- query leak: an evaluated query whose normalised text, or set of words, equals a train query's (error);
- near-duplicate: an evaluated query that is a paraphrase-level copy of a train query: character 3-5-gram Jaccard
  at or above leakage.near_duplicate_threshold (0.7) and not the same template with another slot
  (engine.retrieval.near_duplicates). An error like a query leak when leakage.near_duplicates is "error" (the
  default: the metric on such a query measures memorisation as much as on an exact copy), reported only when
  "warn". near_duplicates(project, split) is the same search for any split, for the gate's queries too;
- pair leak: an evaluated (query, passage) pair that a train pair repeats: the same query id, or the same or
  near-identical query text, with the same passage (error);
- document overlap: evaluated documents that are also train positives. Normal when splits share a corpus, as in
  BEIR, so only counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.data.checks import normalise, token_set
from engine.project import Project
from engine.retrieval.near_duplicates import NearDuplicate, find_near_duplicates
from engine.store import checks as store

EXAMPLES = 10
NEAR_DUPLICATES_LISTED = 1000  # in the JSON; the count is always whole


@dataclass
class Leakage:
    split: str
    queries: list[dict[str, str]] = field(default_factory=list)  # {query, text, train, train_text, match}
    pairs: list[dict[str, str]] = field(default_factory=list)  # {query, chunk, train}
    overlap_documents: int = 0
    overlap_queries: int = 0
    near_duplicates: list[NearDuplicate] = field(default_factory=list)
    threshold: float = 0.7
    near_blocks: bool = True  # project.yaml leakage.near_duplicates == "error"

    @property
    def leaks(self) -> bool:
        return bool(self.queries or self.pairs or (self.near_duplicates and self.near_blocks))

    def message(self) -> str:
        """Names the offending queries and pairs (the first EXAMPLES of each) and says how to proceed."""
        lines = []
        if self.queries:
            ids = {leak["query"] for leak in self.queries}
            lines.append(f"{len(ids):,} {self.split} queries repeat train queries:")
            lines += [
                f"  {leak['query']} {leak['text']!r} ~ train {leak['train']} {leak['train_text']!r} ({leak['match']})"
                for leak in self.queries[:EXAMPLES]
            ]
        if self.pairs:
            lines.append(f"{len(self.pairs):,} {self.split} (query, passage) pairs are training pairs:")
            lines += [
                f"  {leak['query']} + {leak['chunk']} (train query {leak['train']})" for leak in self.pairs[:EXAMPLES]
            ]
        lines += near_duplicate_lines(self.near_duplicates, self.split, self.threshold)
        lines.append(
            "the metrics would measure memorisation: remove them from one side, or pass --allow-leakage "
            "to evaluate anyway" + ("" if self.queries or self.pairs else " (or set leakage.near_duplicates: warn)")
        )
        return "\n".join(lines)

    def to_json(self, allowed: bool) -> dict[str, Any]:
        return {
            "queries": len({leak["query"] for leak in self.queries}),
            "pairs": len(self.pairs),
            "allowed": allowed,
            "query_examples": self.queries[:EXAMPLES],
            "pair_examples": self.pairs[:EXAMPLES],
            "document_overlap": {"documents": self.overlap_documents, "queries": self.overlap_queries},
            "near_duplicate_queries": len(self.near_duplicates),
            "near_duplicate_threshold": self.threshold,
            "near_duplicates_block": self.near_blocks,
            "near_duplicates": [
                {
                    "test_id": d.query_id,
                    "train_id": d.reference_id,
                    "test_text": d.query_text,
                    "train_text": d.reference_text,
                    "similarity": d.similarity,
                }
                for d in self.near_duplicates[:NEAR_DUPLICATES_LISTED]
            ],
        }


def near_duplicates(project: Project, split: str, skip: set[str] | frozenset[str] = frozenset()) -> list[NearDuplicate]:
    """The split's queries (less `skip`) that are near-duplicates of train queries, each with its closest one, at
    project.yaml's leakage.near_duplicate_threshold. For eval, and for the gate on its own queries."""
    queries = store.queries(project.db)
    train = [(qid, text) for qid, text, s in queries if s == "train"]
    evaluated = [(qid, text) for qid, text, s in queries if s == split and qid not in skip]
    if not train or not evaluated:
        return []
    return find_near_duplicates(evaluated, train, project.config.leakage.near_duplicate_threshold)


def near_duplicate_lines(found: list[NearDuplicate], split: str, threshold: float) -> list[str]:
    """The message lines naming each pair (the first EXAMPLES), both ids and texts, and the threshold."""
    if not found:
        return []
    lines = [
        f"{len(found):,} {split} queries are near-duplicates of train queries (character n-gram similarity >= "
        f"leakage.near_duplicate_threshold {threshold}):"
    ]
    lines += [
        f"  {d.query_id} {d.query_text!r} ~ train {d.reference_id} {d.reference_text!r} ({d.similarity:.2f})"
        for d in found[:EXAMPLES]
    ]
    return lines


def find_leakage(project: Project, split: str) -> Leakage:
    db = project.db
    found = Leakage(split)
    queries = store.queries(db)
    texts = {qid: text for qid, text, _ in queries}
    evaluated = {qid: text for qid, text, s in queries if s == split}
    train_queries = [(qid, text) for qid, text, s in queries if s == "train"]
    exact: dict[str, tuple[str, str]] = {}
    words: dict[str, tuple[str, str]] = {}
    for qid, text in train_queries:
        norm = normalise(text)
        exact.setdefault(norm, (qid, text))
        words.setdefault(token_set(norm), (qid, text))
    for qid, text in evaluated.items():
        norm = normalise(text)
        match, hit = ("same text", exact.get(norm)) if norm in exact else ("same words", words.get(token_set(norm)))
        if hit is not None:
            found.queries.append({"query": qid, "text": text, "train": hit[0], "train_text": hit[1], "match": match})
    found.pairs = _pair_leaks(db, split, texts)
    found.threshold = project.config.leakage.near_duplicate_threshold
    found.near_blocks = project.config.leakage.near_duplicates == "error"
    found.near_duplicates = near_duplicates(project, split, skip={leak["query"] for leak in found.queries})
    found.overlap_documents, found.overlap_queries = _document_overlap(db, split)
    return found


def _pair_leaks(db: Any, split: str, texts: dict[str, str]) -> list[dict[str, str]]:
    # A train pair is keyed by its query (id, normalised text and word set) and its passage (chunk and text).
    seen: dict[tuple[str, str], str] = {}
    for qid, text, passage, chunk in store.positives(db, "train"):
        norm = normalise(text)
        for query_key in (f"id:{qid}", f"text:{norm}", f"words:{token_set(norm)}"):
            for passage_key in (f"chunk:{chunk}", f"text:{passage}"):
                seen.setdefault((query_key, passage_key), qid)
    leaks = []
    for qid, _, passage, chunk in store.positives(db, split):
        norm = normalise(texts.get(qid, ""))
        hit = next(
            (
                seen[(q, p)]
                for q in (f"id:{qid}", f"text:{norm}", f"words:{token_set(norm)}")
                for p in (f"chunk:{chunk}", f"text:{passage}")
                if (q, p) in seen
            ),
            None,
        )
        if hit is not None:
            leaks.append({"query": qid, "chunk": chunk, "train": hit})
    return leaks


def _document_overlap(db: Any, split: str) -> tuple[int, int]:
    judged = store.judged_documents(db)
    train_docs = {doc for s, _, doc in judged if s == "train"}
    docs = {doc for s, _, doc in judged if s == split and doc in train_docs}
    queries = {qid for s, qid, doc in judged if s == split and doc in train_docs}
    return len(docs), len(queries)
