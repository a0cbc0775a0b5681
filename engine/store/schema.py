"""The values the schema allows and how its rows are keyed, in one place any engine package may import.

The shipped migrations spell their CHECK lists as literal SQL (a migration never changes once shipped), so
changing a tuple here needs a new migration too; tests/engine/store/test_store.py checks they agree.
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "dev", "test", "gate", "general")  # queries.split, pairs.split
PAIR_LABELS = ("unlabeled", "accepted", "rejected")  # pairs.label
NEGATIVE_LABELS = (*PAIR_LABELS, "false_negative")  # negatives.label
REVIEW_TARGETS = ("pair", "negative")  # review_events.target
RUN_STATUSES = ("queued", "running", "finished", "failed", "cancelled")  # runs.status
INDEX_STATUSES = ("building", "ready", "failed")  # indexes.status

# The chunking of text as its source gave it (a BEIR passage is one chunk): documents.chunking's default.
SOURCE_STRATEGY = "source"

# The triage queue's sort key: how close a mined negative scored to its positive (unscored last). Queries must
# spell it exactly like this for SQLite to use the negatives_*margin indexes of m004_review.
NEGATIVE_MARGIN = "coalesce(positive_score - score, 9e999)"


def text_hash(text: str) -> str:
    """The key of a text in `texts` (and of its vectors in `embedding_cache`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id(doc_id: str, strategy: str, position: int) -> str:
    """A source chunk keeps its document's id, so BEIR qrels point at chunks directly."""
    return doc_id if strategy == SOURCE_STRATEGY else f"{doc_id}#{strategy}-{position}"
