"""Search the live index (or any complete table), and set it side by side with another model's table.

A table is searched with the model that built it, and only if that model's folder still has the same fingerprint:
a re-saved or retrained model in the same folder would give query vectors that do not match the stored ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.index.ann import apply_knobs
from engine.index.build import IndexingError, connect
from engine.models.refs import resolve_ref
from engine.project import Project
from engine.store import indexes

COMPARE_DEPTH = 100  # how deep the other table is searched to tell where a hit ranked there


@dataclass
class Hit:
    rank: int
    chunk_id: str
    doc_id: str
    score: float
    text: str
    other_rank: int | None = None  # rank in the compared table (None: not in its top COMPARE_DEPTH)

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "score": self.score,
            "text": self.text,
        }


@dataclass
class Results:
    query: str
    table: str
    model: str
    hits: list[Hit]
    seconds: float
    compare: Results | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The `embtune search --json` contract; with --compare, each hit also has its rank in the other table."""
        out: dict[str, Any] = {
            "query": self.query,
            "table": self.table,
            "model": self.model,
            "hits": [h.to_json() for h in self.hits],
            "seconds": self.seconds,
        }
        if self.compare is not None:
            for hit, row in zip(self.hits, out["hits"], strict=True):
                row["other_rank"], row["moved"] = hit.other_rank, moved(hit)
            out["compare"] = {
                "table": self.compare.table,
                "model": self.compare.model,
                "hits": [{**h.to_json(), "other_rank": h.other_rank, "moved": moved(h)} for h in self.compare.hits],
            }
        return out


def moved(hit: Hit) -> int | None:
    """Places gained against the other table (positive: ranked higher here); None when absent there."""
    return None if hit.other_rank is None else hit.other_rank - hit.rank


class Searcher:
    """Loads each table's model once (the TUI keeps one Searcher per screen)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._models: dict[str, Any] = {}
        self._lance: Any = None

    def search(self, query: str, k: int = 10, index_id: int | None = None) -> Results:
        row = self._table_row(index_id)
        hits, seconds = self._search(row, query, k)
        return Results(query, row["table_name"], row["model"], hits, seconds)

    def compare(self, query: str, k: int = 10, other: str = "base") -> Results:
        """The live table's hits beside `other`'s (a model ref with a complete table), ranks cross-referenced."""
        results = self.search(query, k)
        row = self._other_row(other)
        theirs, seconds = self._search(row, query, max(k, COMPARE_DEPTH))
        ours_deep, _ = self._search(self._table_row(None), query, max(k, COMPARE_DEPTH))
        ours_rank = {h.chunk_id: h.rank for h in ours_deep}
        their_rank = {h.chunk_id: h.rank for h in theirs}
        for hit in results.hits:
            hit.other_rank = their_rank.get(hit.chunk_id)
        top = theirs[:k]
        for hit in top:
            hit.other_rank = ours_rank.get(hit.chunk_id)
        results.compare = Results(query, row["table_name"], row["model"], top, seconds)
        return results

    def encode_queries(self, row: dict[str, Any], texts: list[str]) -> Any:
        """Query vectors for `texts` as `row`'s table expects them (its model and query prompt)."""
        model, prompt = self._model(row)
        return model.encode_query(
            texts, prompt=prompt, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    def _table_row(self, index_id: int | None) -> dict[str, Any]:
        row = indexes.live(self.project.db) if index_id is None else indexes.get(self.project.db, index_id)
        if row is None:
            what = "no live index" if index_id is None else f"no index {index_id}"
            raise IndexingError(f"{what}: build one with `embtune index {self.project.root}`")
        if row["status"] != "ready":
            raise IndexingError(f"{row['table_name']} is not complete")
        return row

    def _other_row(self, ref: str) -> dict[str, Any]:
        from engine.models.encoder import encode_backend, encoding_key

        model = resolve_ref(self.project, ref)
        backend = encode_backend(self.project.config.models.encode_backend)
        fingerprint, _ = encoding_key(model.spec, self.project.root, self.project.config.prompts, backend)
        row = indexes.latest_ready(self.project.db, fingerprint)
        if row is None:
            raise IndexingError(
                f"no complete table for {model.name}: build one with "
                f"`embtune index {self.project.root} --model {ref}` (it does not become live "
                "until you keep it: `embtune index rollback` switches back)"
            )
        return row

    def _search(self, row: dict[str, Any], query: str, k: int) -> tuple[list[Hit], float]:
        model, prompt = self._model(row)
        start = time.perf_counter()
        vector = model.encode_query(
            [query], prompt=prompt, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )[0]
        if self._lance is None:
            self._lance = connect(self.project)
        table = self._lance.open_table(row["table_name"])
        search = table.search(vector).distance_type("cosine").limit(k)
        search = search.select(["chunk_id", "doc_id", "text", "_distance"])
        ann = row["result"].get("ann") or {}
        search = apply_knobs(search, ann.get("nprobes"), ann.get("refine_factor"))
        found = search.to_list()
        hits = [
            Hit(rank, r["chunk_id"], r["doc_id"], round(1.0 - float(r["_distance"]), 6), r["text"])
            for rank, r in enumerate(found, start=1)
        ]
        return hits, round(time.perf_counter() - start, 4)

    def _model(self, row: dict[str, Any]) -> tuple[Any, str | None]:
        """The model that built the table and the query prompt it was built for (None: a table built before
        prompts were recorded, encoded with the model's own defaults). Queries are encoded by the backend that
        encoded the table (torch for a table that records none)."""
        from engine.models.backends import apply_backend, backend_fingerprint, cache_root
        from engine.models.prompts import Prompts
        from engine.models.resolve import load_embedder, model_fingerprint, resolve_model

        spec = row["config"].get("spec")
        recorded = row["config"].get("prompts")
        prompts = Prompts(recorded.get("query", ""), recorded.get("document", "")) if recorded else None
        key = row["model_fingerprint"]
        backend = row["config"].get("backend") or "torch"
        if key not in self._models:
            if not spec:
                raise IndexingError(f"{row['table_name']}: its build run records no model")
            path = resolve_model(spec, self.project.root).path
            current = model_fingerprint(path)
            if backend_fingerprint(prompts.fingerprint(current) if prompts else current, backend) != key:
                raise IndexingError(
                    f"{row['table_name']} was built by a model that has since changed in {path}: "
                    "re-index before searching it"
                )
            device = "auto" if backend == "torch" else "cpu"
            model = load_embedder(str(path), device=device, trust_remote_code=self.project.config.trust_remote_code)
            self._models[key] = apply_backend(model, backend, cache_root(self.project.root) / current)
        return self._models[key], prompts.query if prompts else None


def search(project: Project, query: str, k: int = 10, compare: str | None = None) -> Results:
    searcher = Searcher(project)
    return searcher.compare(query, k, compare) if compare else searcher.search(query, k)
