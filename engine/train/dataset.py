"""What a training run trains and selects checkpoints on, built from the reviewed training set. No torch here.

- Rows are (anchor, positive[, negative]) from engine.store.examples.reviewed_examples: review's rejections and
  edits are in. When mined hard negatives exist, each row carries one (a query's pairs take its negatives in turn,
  accepted and hardest first); a row whose query has none gets another document's positive, so every row has the
  same columns (sentence-transformers needs that) and the filler is no harder than an in-batch negative.
- A dev slice is carved from the TRAIN split, by document and seeded: a dev query's documents never appear as a
  training positive, so checkpoint selection (dev nDCG@10) measures generalisation. Only when no dev slice can be
  carved are held-out test (else gate) queries evaluated, to watch training: never to select, since selecting
  checkpoints on them would leak them into the model.
- The dev corpus is the dev positives plus seeded distractors from the project's corpus (the dev queries' mined
  negatives first), capped so an evaluation costs seconds, not minutes, on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EmbtuneError
from engine.store import corpus
from engine.store._sqlite_utils import Database
from engine.store.examples import ReviewedExample, reviewed_examples

# Below this many dev queries a dev nDCG@10 is too noisy to pick checkpoints with: on SciFact (80 dev queries)
# the dev curve fell below the base at every evaluation, picked step 7 of 26, and that model scored 0.016
# nDCG@10 lower on the test split than the last step of a run on all the rows. So small projects train on every
# row and keep the last step.
MIN_DEV_QUERIES = 200


class TrainingDataError(EmbtuneError):
    """Nothing to train on (no reviewed train pairs)."""


@dataclass
class TrainData:
    anchors: list[str]
    positives: list[str]
    negatives: list[str] | None  # None: pairs only (no mined negatives, or negatives turned off)
    dev_queries: dict[str, str] = field(default_factory=dict)
    dev_corpus: dict[str, str] = field(default_factory=dict)
    dev_relevant: dict[str, set[str]] = field(default_factory=dict)
    # "train": a slice carved from the train split, used to keep the best checkpoint; "test" (else "gate"): no
    # slice could be carved, so held-out queries are evaluated to watch training, never to choose (the last step
    # is kept, so nothing about them reaches the model)
    dev_source: str = ""
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def selects_checkpoint(self) -> bool:
        return self.dev_source == "train" and bool(self.dev_queries)

    @property
    def rows(self) -> int:
        return len(self.anchors)

    def columns(self) -> dict[str, list[str]]:
        cols = {"anchor": self.anchors, "positive": self.positives}
        if self.negatives is not None:
            cols["negative"] = self.negatives
        return cols

    def snapshot_hash(self) -> str:
        """Which rows and dev queries went in, in order: equal hashes mean the same training data."""
        digest = hashlib.sha256()
        for row in zip(*self.columns().values(), strict=True):
            digest.update(json.dumps(row).encode())
        digest.update(json.dumps(sorted(self.dev_queries)).encode())
        return digest.hexdigest()[:16]


WATCHED_SPLITS = ("test", "gate")


def build_data(
    db: Database,
    *,
    seed: int,
    dev_fraction: float,
    dev_max_queries: int,
    dev_corpus_max: int,
    hard_negatives: bool,
    dev_min_queries: int = MIN_DEV_QUERIES,
) -> TrainData:
    examples = reviewed_examples(db, "train")
    if not examples:
        raise TrainingDataError(
            "no training pairs: import pairs (embtune import DIR --pairs FILE or --beir DIR) "
            "or un-reject some in review"
        )
    rng = random.Random(seed)
    dev_ids, dev_docs = _dev_queries(examples, rng, dev_fraction, dev_max_queries, dev_min_queries)
    train = [e for e in examples if e.query_id not in dev_ids and e.doc_id not in dev_docs]
    crossing = len(examples) - len(train) - sum(e.query_id in dev_ids for e in examples)
    dev = [e for e in examples if e.query_id in dev_ids]
    use_negatives = hard_negatives and any(e.negatives for e in train)
    negatives, mined = _negatives(train, rng) if use_negatives else (None, 0)
    data = TrainData([e.query for e in train], [e.positive for e in train], negatives)
    source, watch = ("train", dev) if dev else _watched(db, rng, dev_max_queries if dev_fraction > 0 else 0)
    if watch:
        data.dev_queries, data.dev_corpus, data.dev_relevant = _dev_set(db, watch, rng, dev_corpus_max)
        data.dev_source = source
    data.counts = {
        "pairs": len(examples),
        "train_rows": len(train),
        "dev_queries": len(data.dev_queries),
        "dev_source": data.dev_source,
        "dev_corpus": len(data.dev_corpus),
        "dropped_crossing_dev": crossing,
        "mined_negatives": mined,
        "filler_negatives": (len(train) - mined) if use_negatives else 0,
    }
    return data


def _dev_queries(
    examples: list[ReviewedExample], rng: random.Random, fraction: float, cap: int, minimum: int
) -> tuple[set[str], set[str]]:
    """Whole documents (with every query judged on them) go to dev until `fraction` of the queries is there.

    Holding a document out holds out every row that touches it, so where documents are shared by many queries
    the held-out rows grow faster than the dev queries; a document that would take the held-out rows past
    `fraction` of all rows is skipped. Fewer than `minimum` dev queries that way: no dev slice at all (every row
    trains; choosing checkpoints on a small dev slice costs more than it gains)."""
    by_doc: dict[str, set[str]] = {}
    docs_of: dict[str, set[str]] = {}
    rows_of_doc: dict[str, set[int]] = {}
    rows_of_query: dict[str, set[int]] = {}
    for i, e in enumerate(examples):
        by_doc.setdefault(e.doc_id, set()).add(e.query_id)
        docs_of.setdefault(e.query_id, set()).add(e.doc_id)
        rows_of_doc.setdefault(e.doc_id, set()).add(i)
        rows_of_query.setdefault(e.query_id, set()).add(i)
    want = min(cap, math.floor(len(docs_of) * fraction))
    if want < minimum or len(docs_of) - want < minimum:
        return set(), set()
    budget = math.floor(len(examples) * fraction)
    docs = sorted(by_doc)
    rng.shuffle(docs)
    dev: set[str] = set()
    dev_docs: set[str] = set()
    held: set[int] = set()
    for doc in docs:
        if len(dev) >= want:
            break
        queries = by_doc[doc] - dev
        new_docs = {d for q in queries for d in docs_of[q]} - dev_docs
        rows = set().union(*(rows_of_query[q] for q in queries), *(rows_of_doc[d] for d in new_docs)) - held
        if len(held) + len(rows) > budget:
            continue
        dev |= queries
        dev_docs |= new_docs
        held |= rows
    if len(dev) < minimum:
        return set(), set()
    return dev, dev_docs


def _watched(db: Database, rng: random.Random, cap: int) -> tuple[str, list[ReviewedExample]]:
    """Without a dev slice: up to `cap` judged test queries (seeded), else gate queries, to watch training by."""
    for split in WATCHED_SPLITS:
        examples = reviewed_examples(db, split) if cap else []
        queries = sorted({e.query_id for e in examples})
        if queries:
            picked = set(rng.sample(queries, min(cap, len(queries))))
            return split, [e for e in examples if e.query_id in picked]
    return "", []


def _negatives(train: list[ReviewedExample], rng: random.Random) -> tuple[list[str], int]:
    turn: Counter[str] = Counter()
    relevant: dict[str, set[str]] = {}
    for e in train:
        relevant.setdefault(e.query_id, set()).add(e.doc_id)
    out, mined = [], 0
    for e in train:
        if e.negatives:
            out.append(e.negatives[turn[e.query_id] % len(e.negatives)])
            turn[e.query_id] += 1
            mined += 1
        else:
            # the positive of a document this query is not judged relevant to (a query's other positive would
            # be a false negative); a handful of tries is plenty
            other = rng.choice(train)
            for _ in range(8):
                if other.doc_id not in relevant[e.query_id]:
                    break
                other = rng.choice(train)
            out.append(other.positive)
    return out, mined


def _dev_set(
    db: Database, dev: list[ReviewedExample], rng: random.Random, cap: int
) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    queries = {e.query_id: e.query for e in dev}
    dev_docs = {e.doc_id for e in dev}
    texts: dict[str, str] = {}  # text -> corpus id, so a passage appears once
    relevant: dict[str, set[str]] = {}
    for e in dev:
        cid = texts.setdefault(e.positive, f"p{len(texts)}")
        relevant.setdefault(e.query_id, set()).add(cid)
    for e in dev:
        for text in e.negatives:
            if len(texts) < cap:
                texts.setdefault(text, f"n{len(texts)}")
    _, chunk_docs, chunk_texts = corpus.retrieval_chunks(db)
    others = [t for d, t in zip(chunk_docs, chunk_texts, strict=True) if d not in dev_docs and t not in texts]
    for text in rng.sample(others, min(len(others), max(0, cap - len(texts)))):
        texts.setdefault(text, f"c{len(texts)}")
    return queries, {cid: text for text, cid in texts.items()}, relevant


def duplicates_per_batch(data: TrainData, batch_size: int, seed: int, shuffles: int = 3) -> float:
    """Mean repeated texts per batch of shuffled rows, as a plain sampler would draw them. MNRL treats every
    other row's passage as a negative, so a repeat is a false negative; the no-duplicates sampler avoids them."""
    columns = list(data.columns().values())
    rows = list(zip(*columns, strict=True))
    if not rows:
        return 0.0
    rng = random.Random(seed)
    repeats, batches = 0, 0
    for _ in range(shuffles):
        rng.shuffle(rows)
        for start in range(0, len(rows), batch_size):
            seen = Counter(text for row in rows[start : start + batch_size] for text in row)
            repeats += sum(n - 1 for n in seen.values() if n > 1)
            batches += 1
    return repeats / batches
