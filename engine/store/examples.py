"""The training set as reviewed: what export and the trainer read.

- pairs review rejected are left out; an edited passage (edited_text_hash) replaces the chunk's text;
- negatives review rejected or marked false_negative are left out (review turns a false negative into a pair
  with source 'review:false_negative', so it comes back here as a positive);
- a negative is also left out when its document is judged relevant to the query or its text is one of the
  query's positives, whatever its label: such a row contradicts the judgments;
- a query's negatives are ordered accepted first, then hardest (highest score) first, then oldest, and one
  chunk or text appears once even when several miners found it.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.store._sqlite_utils import Database
from engine.store.negatives import relevant_documents


@dataclass(frozen=True)
class ReviewedExample:
    pair_id: int
    query_id: str
    query: str
    doc_id: str
    positive: str
    negatives: tuple[str, ...]  # the query's usable negatives, best first (shared by all its pairs)


def reviewed_examples(db: Database, split: str = "train") -> list[ReviewedExample]:
    """One example per unrejected pair of `split`, in pair order, each with its query's usable negatives."""
    pairs = db.execute(
        "SELECT p.id, q.id, q.text, c.doc_id, coalesce(e.text, t.text) FROM pairs p "
        "JOIN queries q ON q.id = p.query_id JOIN chunks c ON c.id = p.chunk_id "
        "JOIN texts t ON t.hash = c.text_hash LEFT JOIN texts e ON e.hash = p.edited_text_hash "
        "WHERE p.split = ? AND p.label != 'rejected' ORDER BY p.id",
        [split],
    ).fetchall()
    query_ids = list(dict.fromkeys(r[1] for r in pairs))
    positives: dict[str, set[str]] = {}
    for _, qid, _, _, passage in pairs:
        positives.setdefault(qid, set()).add(passage)
    negatives = _usable_negatives(db, split, relevant_documents(db, query_ids), positives)
    return [
        ReviewedExample(pid, qid, query, doc, passage, negatives.get(qid, ()))
        for pid, qid, query, doc, passage in pairs
    ]


def _usable_negatives(
    db: Database, split: str, relevant: dict[str, set[str]], positives: dict[str, set[str]]
) -> dict[str, tuple[str, ...]]:
    rows = db.execute(
        "SELECT n.query_id, n.chunk_id, c.doc_id, t.text FROM negatives n JOIN chunks c ON c.id = n.chunk_id "
        "JOIN texts t ON t.hash = c.text_hash WHERE n.label IN ('unlabeled', 'accepted') AND n.query_id IN "
        "(SELECT query_id FROM pairs WHERE split = ? AND label != 'rejected') "
        "ORDER BY n.query_id, n.label = 'accepted' DESC, n.score IS NULL, n.score DESC, n.id",
        [split],
    )
    out: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for qid, chunk_id, doc_id, text in rows:
        if doc_id in relevant.get(qid, ()) or text in positives.get(qid, ()):
            continue
        if (qid, chunk_id) in seen or (qid, text) in seen:
            continue
        seen.update(((qid, chunk_id), (qid, text)))
        out.setdefault(qid, []).append(text)
    return {qid: tuple(texts) for qid, texts in out.items()}


def review_counts(db: Database, split: str = "train") -> dict[str, int]:
    """What review changed in `split`: rejected and edited pairs, rejected and false-negative negatives."""
    rejected, edited = db.execute(
        "SELECT count(*) FILTER (WHERE label = 'rejected'), "
        "count(*) FILTER (WHERE label != 'rejected' AND edited_text_hash IS NOT NULL) FROM pairs WHERE split = ?",
        [split],
    ).fetchone()
    by_label = dict(
        db.execute(
            "SELECT label, count(*) FROM negatives WHERE label IN ('rejected', 'false_negative') AND query_id IN "
            "(SELECT query_id FROM pairs WHERE split = ?) GROUP BY label",
            [split],
        ).fetchall()
    )
    return {
        "rejected_pairs": int(rejected),
        "edited_pairs": int(edited),
        "rejected_negatives": int(by_label.get("rejected", 0)),
        "false_negatives": int(by_label.get("false_negative", 0)),
    }
