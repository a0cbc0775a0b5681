"""ImportBatch: the rows one import writes, keyed as the store keys them.

The readers in engine.ingest fill it (never touching the database); engine.store.imports writes it in one
transaction. It lives here so the store depends on nothing above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.store.schema import SOURCE_STRATEGY, chunk_id, text_hash


@dataclass
class ImportBatch:
    kind: str
    path: Path
    texts: dict[str, str] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunks: dict[str, dict[str, Any]] = field(default_factory=dict)
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    negatives: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Where each id came from, so conflicts with the store can name file and line.
    origin: dict[tuple[str, str], tuple[Path, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Input left out on purpose and named to the user ({path, line?, reason}); --strict makes any an error.
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def add_text(self, text: str) -> str:
        digest = text_hash(text)
        self.texts[digest] = text
        return digest

    def add_document(self, doc_id: str, title: str, body: str, source: str, where: tuple[Path, int]) -> None:
        self.documents[doc_id] = {
            "id": doc_id,
            "title": title,
            "text_hash": self.add_text(body),
            "source": source,
            "chunking": SOURCE_STRATEGY,
        }
        self.origin[("document", doc_id)] = where

    def add_chunk(
        self, doc_id: str, strategy: str, position: int, text: str, span: tuple[int | None, int | None] = (None, None)
    ) -> str:
        cid = chunk_id(doc_id, strategy, position)
        self.chunks[cid] = {
            "id": cid,
            "doc_id": doc_id,
            "strategy": strategy,
            "position": position,
            "text_hash": self.add_text(text),
            "start_char": span[0],
            "end_char": span[1],
        }
        return cid

    def add_query(self, query_id: str, text: str, split: str, source: str, where: tuple[Path, int]) -> None:
        self.queries[query_id] = {"id": query_id, "text": text, "split": split, "source": source}
        self.origin[("query", query_id)] = where

    def add_pair(self, query_id: str, cid: str, split: str, source: str, score: float = 1.0) -> None:
        self.pairs[(query_id, cid)] = {
            "query_id": query_id,
            "chunk_id": cid,
            "split": split,
            "source": source,
            "score": score,
        }

    def counts(self) -> dict[str, int]:
        return {
            "documents": len(self.documents),
            "chunks": len(self.chunks),
            "queries": len(self.queries),
            "pairs": len(self.pairs),
            "negatives": len(self.negatives),
        }
