"""Near-duplicate queries: two texts that ask the same thing with small edits. Pure: no store, no model.

The measure is the Jaccard similarity of the texts' character 3- to 5-grams, after normalise() and padded with a
space so word starts and ends count. Character n-grams see through what word sets miss: punctuation, an added or
dropped filler word, reordering, inflection and typos. 'forgot to put the storm event code on a claim, does it
matter?' and 'forgot to put the storm code on a claim does it matter' score 0.84; on the sample project no other
test or gate query reaches 0.45 against a train query.

Character overlap alone cannot tell a copy from a template filled in differently: 'what is the deductible for a
windstorm claim on a rental property' and '... a hailstorm claim ...' score 0.80, yet are two questions. So a pair
whose texts *each* hold a content word the other lacks (not a spelling variant of one of its words) is a template
variant and not reported: a copy adds, drops or reorders words; a different question swaps a slot. Numbers are
always slots ('over 50k' / 'over 10k').

The search is an exact set-similarity join with prefix filtering (Chaudhuri, Ganti & Kaushik, "A primitive
operator for similarity joins in data cleaning", ICDE 2006; Bayardo, Ma & Srikant, "Scaling up all pairs
similarity search", WWW 2007): with n-grams in one global order, rarest first, two sets with Jaccard >= t share
one of their first |x| - ceil(t·|x|) + 1 n-grams, so only a reference sharing a rare n-gram with a query is
compared. Unlike MinHash with LSH banding it misses no pair above the threshold, and it is as fast at this size:
100,000 queries take seconds.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

NGRAM_SIZES = range(3, 6)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# Words that do not make two questions different when swapped ('on a claim' / 'on my claim'). Question words,
# modals and negations are not here: 'when' / 'how', 'can' / 'must', 'not' change the question.
_FUNCTION_WORD_LIST = (
    "a an the this that these those my our your their his her its i we you he she they it me us them is are was "
    "were be been being am do does did to of in on at for by with from into about and or but if so as s"
)
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_LIST.split())


@dataclass(frozen=True)
class NearDuplicate:
    query_id: str
    query_text: str
    reference_id: str
    reference_text: str
    similarity: float


def normalise(text: str) -> str:
    """Case-, accent-width- and punctuation-insensitive form: 'What's the  DEDUCTIBLE?' -> 'what s the deductible'."""
    return " ".join(_NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


def shingles(text: str) -> frozenset[str]:
    """The character 3- to 5-grams of the normalised text, word boundaries included."""
    padded = f" {normalise(text)} "
    grams: list[str] = []
    for n in NGRAM_SIZES:  # one list comprehension per size: about 3x faster than one nested generator
        grams += [padded[i : i + n] for i in range(len(padded) - n + 1)]
    return frozenset(grams)


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' character n-grams (1.0: the same normalised text)."""
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y) if x or y else 1.0


def is_template_variant(a: str, b: str) -> bool:
    """Each text holds a content word the other lacks and that is no spelling variant of the other's: one
    template with another slot filled in ('deductible for flood claims' / 'for hail claims'), two questions."""
    words_a, words_b = set(normalise(a).split()), set(normalise(b).split())
    only_a = [w for w in words_a - words_b if w not in _FUNCTION_WORDS]
    only_b = [w for w in words_b - words_a if w not in _FUNCTION_WORDS]
    return any(not any(_spelling_variant(w, v) for v in only_b) for w in only_a) and any(
        not any(_spelling_variant(w, v) for v in only_a) for w in only_b
    )


def _spelling_variant(a: str, b: str) -> bool:
    """An inflection ('claim' / 'claims', 'total' / 'totaled') or two swapped letters ('storm' / 'strom')."""
    if any(c.isdigit() for c in a + b):
        return False  # a number is a slot: '12 weeks' and '26 weeks' are two questions
    short, long = sorted((a, b), key=len)
    if len(short) >= 4 and long.startswith(short):
        return True
    diff = [i for i in range(len(a)) if len(a) == len(b) and a[i] != b[i]]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def find_near_duplicates(
    queries: Sequence[tuple[str, str]], references: Sequence[tuple[str, str]], threshold: float
) -> list[NearDuplicate]:
    """For each (id, text) in `queries`, its most similar reference at `threshold` or above that is not a
    template variant of it (ties: the first reference). Queries in input order; those with no match left out."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    query_texts = _unique(queries)
    ref_texts = _unique(references)
    q_sets = [shingles(t) for t in query_texts]
    r_sets = [shingles(t) for t in ref_texts]
    best: dict[str, tuple[float, int]] = {}
    for qi, ri, score in _join(q_sets, r_sets, threshold):
        q_text, r_text = query_texts[qi], ref_texts[ri]
        if score > best.get(q_text, (-1.0, 0))[0] and not is_template_variant(q_text, r_text):
            best[q_text] = (score, ri)
    first_ref = {normalise(text): (rid, text) for rid, text in reversed(references)}
    found = []
    for qid, text in queries:
        key = normalise(text)
        if key in best:
            score, ri = best[key]
            rid, r_text = first_ref[ref_texts[ri]]
            found.append(NearDuplicate(qid, text, rid, r_text, round(score, 4)))
    return found


def _unique(rows: Sequence[tuple[str, str]]) -> list[str]:
    """The distinct normalised texts, in first-seen order: a text asked under several ids is compared once."""
    return list(dict.fromkeys(normalise(text) for _, text in rows))


def _join(
    queries: list[frozenset[str]], references: list[frozenset[str]], threshold: float
) -> list[tuple[int, int, float]]:
    """(query index, reference index, Jaccard) of every pair at or above `threshold`, by prefix filtering."""
    counts: Counter[str] = Counter()
    for s in (*queries, *references):
        counts.update(s)
    # rarest first: a prefix of rare n-grams keeps each probe's candidate list short
    rank = {gram: i for i, (gram, _) in enumerate(sorted(counts.items(), key=lambda item: (item[1], item[0])))}
    index: dict[int, list[tuple[int, int]]] = {}
    for ri, s in enumerate(references):
        for j, gram in enumerate(_prefix(s, rank, threshold)):
            index.setdefault(gram, []).append((ri, j))
    pairs = []
    for qi, s in enumerate(queries):
        for ri in _candidates(_prefix(s, rank, threshold), len(s), index, references, threshold):
            other = references[ri]
            score = len(s & other) / len(s | other)
            if score >= threshold:
                pairs.append((qi, ri, score))
    return pairs


def _candidates(
    prefix: list[int], size: int, index: dict[int, list[tuple[int, int]]], refs: list[frozenset[str]], t: float
) -> list[int]:
    """References that may reach `t` with a query, by the size and positional filters of PPJoin (Xiao et al.,
    "Efficient similarity joins for near duplicate detection", WWW 2008): meeting at query position i and
    reference position j with `seen` shared n-grams before, the overlap is at most seen + 1 + the shorter rest,
    and Jaccard >= t needs an overlap of t / (1 + t) * (|x| + |y|)."""
    seen: dict[int, int] = {}  # reference -> shared prefix n-grams so far; -1: ruled out
    for i, gram in enumerate(prefix):
        for ri, j in index.get(gram, ()):
            shared = seen.get(ri, 0)
            if shared < 0:
                continue
            other = len(refs[ri])
            needed = t / (1 + t) * (size + other) - 1e-9
            fits = t * size - 1e-9 <= other <= size / t + 1e-9
            seen[ri] = shared + 1 if fits and shared + 1 + min(size - i - 1, other - j - 1) >= needed else -1
    return [ri for ri, shared in seen.items() if shared > 0]


def _prefix(s: frozenset[str], rank: dict[str, int], threshold: float) -> list[int]:
    size = len(s) - math.ceil(threshold * len(s) - 1e-9) + 1
    return sorted(map(rank.__getitem__, s))[:size]
