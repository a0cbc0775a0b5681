"""Reads of the corpus and judgments that retrieval, the gate and evaluation work on (and the one edit of a
chunk's text that the benchmarks make)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.store._sqlite_utils import Database
from engine.store.db import write
from engine.store.schema import text_hash


@dataclass(frozen=True)
class JudgedQuery:
    id: str
    text: str
    relevant: frozenset[str]  # document ids


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str


def retrieval_chunks(db: Database) -> tuple[list[str], list[str], list[str]]:
    """(chunk ids, their document ids, texts) of every document's own chunking, in a stable order."""
    rows = db.execute(
        "SELECT c.id, c.doc_id, t.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
        "AND c.strategy = d.chunking JOIN texts t ON t.hash = c.text_hash ORDER BY c.doc_id, c.position"
    ).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def chunk_texts(db: Database) -> dict[str, str]:
    """Every chunk's text by chunk id (all chunkings), in id order."""
    rows = db.execute("SELECT c.id, t.text FROM chunks c JOIN texts t ON t.hash = c.text_hash ORDER BY c.id")
    return dict(rows.fetchall())


def query_texts(db: Database) -> dict[str, str]:
    return dict(db.execute("SELECT id, text FROM queries").fetchall())


def replace_chunk_text(db: Database, chunk_id: str, text: str) -> None:
    """Point a chunk at new text, as an edited re-import would (bench/reindex.py's incremental case)."""
    digest = text_hash(text)
    with write(db):
        db.execute("INSERT OR IGNORE INTO texts (hash, text) VALUES (?, ?)", [digest, text])
        db.execute("UPDATE chunks SET text_hash = ? WHERE id = ?", [digest, chunk_id])


def documents(db: Database) -> list[Document]:
    rows = db.execute(
        "SELECT d.id, d.title, t.text FROM documents d JOIN texts t ON t.hash = d.text_hash ORDER BY d.id"
    )
    return [Document(*r) for r in rows]


def judged_queries(db: Database, split: str) -> list[JudgedQuery]:
    """Queries of a split with the documents judged relevant (queries without judgments are left out)."""
    rows = db.execute(
        "SELECT q.id, q.text, c.doc_id FROM queries q JOIN pairs p ON p.query_id = q.id "
        "JOIN chunks c ON c.id = p.chunk_id WHERE q.split = ? AND p.label != 'rejected' ORDER BY q.id",
        [split],
    )
    grouped: dict[str, tuple[str, set[str]]] = {}
    for qid, text, doc_id in rows:
        grouped.setdefault(qid, (text, set()))[1].add(doc_id)
    return [JudgedQuery(qid, text, frozenset(docs)) for qid, (text, docs) in grouped.items()]


def excluded_queries(db: Database, split: str) -> list[tuple[str, str]]:
    """(id, why) of the split's queries that judged_queries leaves out: every judgment rejected in review, or none
    imported. A gate or evaluation that silently shrank would change its figures unannounced."""
    rows = db.execute(
        "SELECT q.id, count(p.id), sum(p.label = 'rejected') FROM queries q LEFT JOIN pairs p ON p.query_id = q.id "
        "WHERE q.split = ? GROUP BY q.id HAVING count(p.id) = 0 OR count(p.id) = sum(p.label = 'rejected') "
        "ORDER BY q.id",
        [split],
    )
    return [
        (qid, "no judgments imported" if not judged else f"all {judged} judgment(s) rejected in review")
        for qid, judged, _ in rows
    ]


def queries_by_id(db: Database, ids: Sequence[str]) -> dict[str, JudgedQuery]:
    """Queries with their current judgments (an empty set when all were rejected); unknown ids are left out."""
    out: dict[str, tuple[str, set[str]]] = {}
    for batch, marks in _batches(ids):
        rows = db.execute(
            "SELECT q.id, q.text, c.doc_id FROM queries q LEFT JOIN pairs p ON p.query_id = q.id "
            f"AND p.label != 'rejected' LEFT JOIN chunks c ON c.id = p.chunk_id WHERE q.id IN ({marks})",
            batch,
        )
        for qid, text, doc_id in rows:
            docs = out.setdefault(qid, (text, set()))[1]
            if doc_id is not None:
                docs.add(doc_id)
    return {qid: JudgedQuery(qid, text, frozenset(docs)) for qid, (text, docs) in out.items()}


def documents_by_id(db: Database, ids: Sequence[str], *, with_text: bool = True) -> dict[str, Document]:
    """Documents by id (text left empty unless asked for: titles are cheap, bodies may be long)."""
    body = "t.text" if with_text else "''"
    out: dict[str, Document] = {}
    for batch, marks in _batches(ids):
        rows = db.execute(
            f"SELECT d.id, d.title, {body} FROM documents d JOIN texts t ON t.hash = d.text_hash "
            f"WHERE d.id IN ({marks})",
            batch,
        )
        out.update((r[0], Document(*r)) for r in rows)
    return out


def _batches(ids: Sequence[str], size: int = 500) -> Iterator[tuple[list[str], str]]:
    # Bounded IN lists: older SQLite builds allow only 999 parameters per statement.
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        batch = unique[start : start + size]
        yield batch, ", ".join("?" * len(batch))


def query_count(db: Database, split: str) -> int:
    return int(db.execute("SELECT count(*) FROM queries WHERE split = ?", [split]).fetchone()[0])


def training_pair_count(db: Database) -> int:
    sql = "SELECT count(*) FROM pairs WHERE split = 'train' AND label != 'rejected'"
    return int(db.execute(sql).fetchone()[0])


def training_pairs_with_negatives(db: Database) -> int:
    """Train pairs (not rejected) whose query has a usable hard negative: what the guide's 1,000 counts."""
    sql = (
        "SELECT count(*) FROM pairs p WHERE p.split = 'train' AND p.label != 'rejected' AND EXISTS "
        "(SELECT 1 FROM negatives n WHERE n.query_id = p.query_id AND n.label NOT IN ('rejected', 'false_negative'))"
    )
    return int(db.execute(sql).fetchone()[0])


@dataclass(frozen=True)
class TrainingPair:
    query_id: str
    query: str
    doc_id: str
    passage: str


def training_pairs(db: Database, split: str = "train") -> list[TrainingPair]:
    """Pairs that training may use: not rejected in review; an edited passage replaces the original text."""
    rows = db.execute(
        "SELECT q.id, q.text, c.doc_id, coalesce(e.text, t.text) FROM pairs p "
        "JOIN queries q ON q.id = p.query_id JOIN chunks c ON c.id = p.chunk_id "
        "JOIN texts t ON t.hash = c.text_hash LEFT JOIN texts e ON e.hash = p.edited_text_hash "
        "WHERE p.split = ? AND p.label != 'rejected' ORDER BY p.id",
        [split],
    )
    return [TrainingPair(*r) for r in rows]


def usable_negatives(db: Database) -> dict[str, list[str]]:
    """Stored negatives per query id, minus those review marked as false negatives or rejected."""
    rows = db.execute(
        "SELECT n.query_id, t.text FROM negatives n JOIN chunks c ON c.id = n.chunk_id "
        "JOIN texts t ON t.hash = c.text_hash WHERE n.label IN ('unlabeled', 'accepted') ORDER BY n.id"
    )
    out: dict[str, list[str]] = {}
    for query_id, text in rows:
        out.setdefault(query_id, []).append(text)
    return out
