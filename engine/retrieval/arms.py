"""Retrieval building blocks for the gate and evaluation: dense search, BM25, fusion, expansion, re-ranking.

Rankings are lists of chunk indices (best first); `to_documents` collapses them to document ids by best rank,
since every metric here counts a document as found when any of its chunks is.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

TOKEN = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = (
    "a an and are as at be by can do does for from how i if in is it me my of on or our should that the this to "
    "was we what when where which who why will with you your"
)
STOPWORDS = frozenset(_STOPWORDS.split())


def dense_search(query_vectors: np.ndarray, doc_vectors: np.ndarray, depth: int, block: int = 256) -> list[list[int]]:
    """Top-`depth` chunk indices per query by cosine (vectors are normalised), in query blocks to bound memory."""
    depth = min(depth, doc_vectors.shape[0])
    out: list[list[int]] = []
    for start in range(0, query_vectors.shape[0], block):
        scores = query_vectors[start : start + block] @ doc_vectors.T
        top = (
            np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
            if depth < scores.shape[1]
            else (np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1)))
        )
        for row, cand in zip(scores, top, strict=True):
            # stable sort on -score, then index: equal scores rank the earlier chunk first, as torch.topk does
            order = np.lexsort((cand, -row[cand]))
            out.append(cand[order].tolist())
    return out


def to_documents(ranking: Sequence[int], chunk_docs: Sequence[str], depth: int | None = None) -> list[str]:
    seen: dict[str, None] = {}
    for index in ranking:
        seen.setdefault(chunk_docs[index], None)
        if depth and len(seen) >= depth:
            break
    return list(seen)


def tokenize(text: str) -> list[str]:
    return [t for t in TOKEN.findall(text.lower()) if t not in STOPWORDS]


class BM25:
    """Okapi BM25 (k1 1.2, b 0.75) over an inverted index; enough for a cheap lexical baseline arm."""

    def __init__(self, texts: Sequence[str], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        docs = [Counter(tokenize(t)) for t in texts]
        self.lengths = np.array([sum(d.values()) for d in docs], dtype=np.float32)
        self.avg = float(self.lengths.mean()) if len(docs) else 0.0
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for i, counts in enumerate(docs):
            for term, tf in counts.items():
                self.postings.setdefault(term, []).append((i, tf))
        self.n = len(docs)

    def search(self, query: str, depth: int) -> list[int]:
        scores = np.zeros(self.n, dtype=np.float32)
        for term in set(tokenize(query)):
            posting = self.postings.get(term)
            if not posting:
                continue
            idf = math.log(1 + (self.n - len(posting) + 0.5) / (len(posting) + 0.5))
            idx = np.fromiter((i for i, _ in posting), dtype=np.int64, count=len(posting))
            tf = np.fromiter((f for _, f in posting), dtype=np.float32, count=len(posting))
            norm = self.k1 * (1 - self.b + self.b * self.lengths[idx] / (self.avg or 1.0))
            scores[idx] += idf * tf * (self.k1 + 1) / (tf + norm)
        hits = np.flatnonzero(scores)
        order = hits[np.lexsort((hits, -scores[hits]))]
        return order[:depth].tolist()


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], depth: int, k: int = 60) -> list[int]:
    """RRF (Cormack et al. 2009): score = sum 1/(k + rank); k=60 is the standard constant."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda i: (-scores[i], i))[:depth]


# --- query expansion ------------------------------------------------------------------------------------


def load_expansions(path: Path) -> dict[str, list[str]]:
    """An acronym/synonym YAML mapping TERM -> [expansion, ...]; wrong shapes name the file and line."""
    from engine.config import ConfigError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"{path}:{mark.line + 1 if mark else 0}: invalid YAML: {getattr(e, 'problem', e)}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of TERM: [expansion, ...]")
    out: dict[str, list[str]] = {}
    for term, values in data.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"{path}: '{term}' must map to a list of strings")
        out[str(term)] = values
    return out


class Expander:
    """Acronym/synonym injection: when a query mentions any form of a term, the other forms are appended."""

    def __init__(self, expansions: dict[str, list[str]]):
        self.groups = [[term, *values] for term, values in expansions.items()]
        self.patterns = [
            [
                re.compile(rf"(?<!\w){re.escape(form)}(?!\w)", 0 if _is_acronym(form) else re.IGNORECASE)
                for form in group
            ]
            for group in self.groups
        ]

    def expand(self, query: str) -> str:
        added: list[str] = []
        for group, patterns in zip(self.groups, self.patterns, strict=True):
            if any(p.search(query) for p in patterns):
                added.extend(f for f, p in zip(group, patterns, strict=True) if not p.search(query) and f not in added)
        return f"{query} ({'; '.join(added)})" if added else query

    def matches(self, query: str) -> bool:
        return any(p.search(query) for patterns in self.patterns for p in patterns)


def _is_acronym(form: str) -> bool:
    # Acronyms match case-sensitively: "ALE" is a term, "ale" is a drink.
    return form.isupper() and len(form) <= 6


# --- re-ranking -----------------------------------------------------------------------------------------


def rerank(
    cross_encoder: Any,
    queries: Sequence[str],
    candidates: Sequence[Sequence[int]],
    chunk_texts: Sequence[str],
    top_n: int,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[int]]:
    """Re-order each query's top `top_n` candidates by cross-encoder score; the tail keeps its dense order."""
    out: list[list[int]] = []
    for i, (query, ranking) in enumerate(zip(queries, candidates, strict=True)):
        head, tail = list(ranking[:top_n]), list(ranking[top_n:])
        scores = cross_encoder.predict(
            [(query, chunk_texts[c]) for c in head], batch_size=batch_size, show_progress_bar=False
        )
        order = sorted(range(len(head)), key=lambda j: (-float(scores[j]), j))
        out.append([head[j] for j in order] + tail)
        if progress:
            progress(i + 1, len(queries))
    return out
