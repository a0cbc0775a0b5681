"""Turn input files into an ImportBatch: documents, chunks, queries, pairs and negatives, fully validated.

Parsing never writes project.db, so a bad file is reported before anything is written; the store then writes
the whole import in one transaction (engine.store.imports). A BEIR corpus, which may hold millions of passages,
streams into the import's staging tables (engine.store.staging) instead of an ImportBatch.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.ingest.chunking import chunk_text, spec_from_dict
from engine.ingest.readers import (
    MAX_PROBLEMS,
    Problems,
    read_csv,
    read_jsonl,
    read_tsv,
    string_field,
    string_list,
    text_lines,
    within_limit,
)
from engine.store.import_batch import ImportBatch
from engine.store.schema import SOURCE_STRATEGY, SPLITS, text_hash
from engine.store.staging import Staging

DOC_SUFFIXES = (".txt", ".md", ".markdown")
# Past this many "unknown document/query" lines in one qrels file the rest say nothing new: count them instead.
MAX_UNKNOWN_REFS = 5


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_chunk_text(title: str, body: str) -> str:
    # The title carries context (BEIR evaluates title + text); it is embedded with the passage.
    return f"{title}\n{body}" if title else body


# --- BEIR -------------------------------------------------------------------------------------------------


def parse_beir(folder: Path, staging: Staging, problems: Problems, *, max_chars: int) -> list[str]:
    """corpus.jsonl + queries.jsonl + qrels/<split>.tsv (the qrels file name is the split), staged as they stream:
    memory stays bounded by a batch and the queries file, whatever the corpus's size. Returns the notes."""
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / name).is_file():
            problems.add(folder / name, 0, None, "missing (a BEIR folder holds corpus.jsonl, queries.jsonl, qrels/)")
    qrel_files = sorted((folder / "qrels").glob("*.tsv"))
    if not qrel_files:
        problems.add(folder / "qrels", 0, None, "no qrels/*.tsv files (train.tsv, test.tsv, ...)")
    problems.raise_if_any()
    source = folder.name
    before = len(problems.items)
    _beir_corpus(folder / "corpus.jsonl", staging, problems, source, max_chars)
    query_texts = _beir_queries(folder / "queries.jsonl", problems, max_chars)
    # With a broken corpus or queries file every qrels line would name an "unknown" id: report the cause only.
    check_refs = len(problems.items) == before
    judged: dict[str, str] = {}  # query id -> split, of the queries staged
    for qrels in qrel_files:
        _beir_qrels(qrels, staging, query_texts, judged, problems, source, check_refs=check_refs)
    problems.raise_if_any()
    unjudged = len(query_texts.keys() - judged.keys())
    return [f"{unjudged} queries in queries.jsonl have no judgments in qrels/ and were skipped"] if unjudged else []


def _beir_corpus(path: Path, staging: Staging, problems: Problems, source: str, max_chars: int) -> None:
    for line, obj in read_jsonl(path, problems):
        doc_id = string_field(obj, "_id", path, line, problems, number_ok=True)
        body = string_field(obj, "text", path, line, problems)
        title = string_field(obj, "title", path, line, problems, required=False) or ""
        if doc_id is None or body is None:
            continue
        passage = source_chunk_text(title, body)
        if not within_limit(passage, max_chars, path, line, "text", problems):
            continue
        staging.add_document(doc_id, title, body, source, (path, line))
        staging.add_chunk(doc_id, SOURCE_STRATEGY, 0, passage, line)
    # Repeated ids are found in the staged rows (indexed), not in a Python set of every id in the file.
    staging.index_ids("documents")
    for doc_id, line, first in staging.duplicates("documents", MAX_PROBLEMS):
        problems.add(path, line, "_id", f"duplicate id '{doc_id}' (first on line {first})")


def _beir_queries(path: Path, problems: Problems, max_chars: int) -> dict[str, tuple[str, int]]:
    texts: dict[str, tuple[str, int]] = {}
    for line, obj in read_jsonl(path, problems):
        query_id = string_field(obj, "_id", path, line, problems, number_ok=True)
        text = string_field(obj, "text", path, line, problems)
        if query_id is None or text is None or not within_limit(text, max_chars, path, line, "text", problems):
            continue
        if query_id in texts:
            problems.add(path, line, "_id", f"duplicate id '{query_id}' (first on line {texts[query_id][1]})")
            continue
        texts[query_id] = (text, line)
    return texts


def _beir_qrels(
    path: Path,
    staging: Staging,
    query_texts: dict[str, tuple[str, int]],
    judged: dict[str, str],
    problems: Problems,
    source: str,
    *,
    check_refs: bool,
) -> None:
    split = path.stem
    if split not in SPLITS:
        problems.add(path, 0, None, f"unknown split '{split}' (qrels files are named {', '.join(SPLITS)})")
        return
    unknown = 0
    for line, (query_id, doc_id, score_text) in read_tsv(path, problems, 3):
        if line == 1 and query_id == "query-id":
            continue  # the BEIR header
        score = _score(score_text, path, line, problems)
        if score is None or score <= 0 or not check_refs:
            continue  # 0 (or below): BEIR's mark for a judged-irrelevant document
        problem = _qrels_ref_problem(query_id, doc_id, split, staging, query_texts, judged)
        if problem:
            unknown += 1
            if unknown <= MAX_UNKNOWN_REFS:
                problems.add(path, line, *problem)
            continue
        if query_id not in judged:
            text, query_line = query_texts[query_id]
            staging.add_query(query_id, text, split, source, (path.parent.parent / "queries.jsonl", query_line))
            judged[query_id] = split
        staging.add_pair(query_id, doc_id, split, f"{source}/qrels", score, line)
    if unknown > MAX_UNKNOWN_REFS:
        more = unknown - MAX_UNKNOWN_REFS
        problems.add(path, 0, None, f"... and {more:,} more lines naming unknown queries or documents")


def _score(text: str, path: Path, line: int, problems: Problems) -> float | None:
    """A finite relevance score. NaN would be stored as NULL and the pair silently lost; inf is no grade."""
    try:
        score = float(text)
    except ValueError:
        problems.add(path, line, "score", f"expected a number, got '{text}'")
        return None
    if not math.isfinite(score):
        problems.add(path, line, "score", f"expected a finite number, got '{text}'")
        return None
    return score


def _qrels_ref_problem(
    query_id: str,
    doc_id: str,
    split: str,
    staging: Staging,
    query_texts: dict[str, tuple[str, int]],
    judged: dict[str, str],
) -> tuple[str, str] | None:
    """(field, message) when a judgment names an unknown query or document or moves a query between splits."""
    if query_id not in query_texts:
        return "query-id", f"unknown query '{query_id}' (not in queries.jsonl)"
    if not staging.has("documents", doc_id):
        return "corpus-id", f"unknown document '{doc_id}' (not in corpus.jsonl)"
    known = judged.get(query_id)
    if known and known != split:
        return "query-id", f"query '{query_id}' is already in split '{known}'"
    return None


# --- pairs files ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairRow:
    line: int
    query: str
    positives: list[str]
    negatives: list[str]
    split: str | None


def parse_pairs(path: Path, *, split: str | None, test_fraction: float, seed: int, max_chars: int) -> ImportBatch:
    """Pairs as JSONL ({query, positive[, negative][, split]} or FlagEmbedding {query, pos[], neg[]}) or CSV."""
    problems = Problems()
    if split is not None and split not in SPLITS:
        problems.add(path, 0, None, f"unknown split '{split}' (one of {', '.join(SPLITS)})")
        problems.raise_if_any()
    rows = list(_csv_pairs(path, problems) if path.suffix.lower() == ".csv" else _jsonl_pairs(path, problems))
    rows = [row for row in rows if _row_within_limit(row, path, max_chars, problems)]
    if not rows and not problems.items:
        problems.add(path, 0, None, "no pairs in the file")
    problems.raise_if_any()
    batch = ImportBatch("pairs", path)
    source = path.name
    for row in rows:
        positive_chunks = [_passage(batch, text, source, (path, row.line)) for text in row.positives]
        query_id = "q-" + text_hash(row.query)[:16]
        row_split = split or row.split or _document_split(positive_chunks[0], test_fraction, seed)
        known = batch.queries.get(query_id)
        if known and known["split"] != row_split:
            problems.add(path, row.line, "query", f"this query is already in split '{known['split']}'")
            continue
        batch.add_query(query_id, row.query, row_split, source, (path, row.line))
        for cid in positive_chunks:
            batch.add_pair(query_id, cid, row_split, source)
        for text in row.negatives:
            cid = _passage(batch, text, source, (path, row.line))
            batch.negatives[(query_id, cid)] = {"query_id": query_id, "chunk_id": cid, "miner": "import"}
    problems.raise_if_any()
    return batch


def _row_within_limit(row: PairRow, path: Path, max_chars: int, problems: Problems) -> bool:
    texts = [("query", row.query)] + [("positive", t) for t in row.positives] + [("negative", t) for t in row.negatives]
    return all([within_limit(text, max_chars, path, row.line, field, problems) for field, text in texts])


def _passage(batch: ImportBatch, text: str, source: str, where: tuple[Path, int]) -> str:
    """A pair's passage becomes a document of its own, id'd by content, so the same text is stored once."""
    doc_id = "p-" + text_hash(text)[:16]
    if doc_id not in batch.documents:
        batch.add_document(doc_id, "", text, source, where)
        batch.add_chunk(doc_id, SOURCE_STRATEGY, 0, text)
    return doc_id


def _document_split(doc_id: str, test_fraction: float, seed: int) -> str:
    """Split by document, seeded and order-independent: a document's pairs always land on the same side."""
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def _jsonl_pairs(path: Path, problems: Problems) -> list[PairRow]:
    rows = []
    for line, obj in read_jsonl(path, problems):
        query = string_field(obj, "query", path, line, problems)
        if "pos" in obj:  # FlagEmbedding's {query, pos: [...], neg: [...]}
            positives = string_list(obj, "pos", path, line, problems, required=True)
            negatives = string_list(obj, "neg", path, line, problems, required=False)
        else:
            positive = string_field(obj, "positive", path, line, problems)
            negative = string_field(obj, "negative", path, line, problems, required=False)
            positives = [positive] if positive else []
            negatives = [negative] if negative else []
        row_split = _row_split(obj.get("split"), path, line, problems)
        if query and positives:
            rows.append(PairRow(line, query, positives, negatives, row_split))
    return rows


def _csv_pairs(path: Path, problems: Problems) -> list[PairRow]:
    rows = []
    for line, cells in read_csv(path, problems, ("query", "positive"), ("negative", "split")):
        query = string_field(cells, "query", path, line, problems)
        positive = string_field(cells, "positive", path, line, problems)
        negative = string_field(cells, "negative", path, line, problems, required=False)
        row_split = _row_split(cells.get("split") or None, path, line, problems)
        if query and positive:
            rows.append(PairRow(line, query, [positive], [negative] if negative else [], row_split))
    return rows


def _row_split(value: Any, path: Path, line: int, problems: Problems) -> str | None:
    if value is None:
        return None
    if value not in SPLITS:
        problems.add(path, line, "split", f"unknown split '{value}' (one of {', '.join(SPLITS)})")
        return None
    return value


# --- queries files ----------------------------------------------------------------------------------------


def parse_queries(path: Path, tag: str, *, max_chars: int) -> ImportBatch:
    """Queries ({_id, text[, relevant: [doc ids]]}) with a tag; judgments are checked against the store later."""
    problems = Problems()
    if tag not in SPLITS:
        problems.add(path, 0, None, f"unknown tag '{tag}' (one of {', '.join(SPLITS)})")
        problems.raise_if_any()
    batch = ImportBatch("queries", path)
    first_line: dict[str, int] = {}
    for line, obj in read_jsonl(path, problems):
        text = string_field(obj, "text", path, line, problems)
        query_id = string_field(obj, "_id", path, line, problems, required=False, number_ok=True)
        relevant = string_list(obj, "relevant", path, line, problems, required=False)
        if text is None or not within_limit(text, max_chars, path, line, "text", problems):
            continue
        query_id = query_id or "q-" + text_hash(text)[:16]
        if query_id in first_line:
            problems.add(path, line, "_id", f"duplicate id '{query_id}' (first on line {first_line[query_id]})")
            continue
        first_line[query_id] = line
        batch.add_query(query_id, text, tag, path.name, (path, line))
        for doc_id in relevant:
            # Documents are resolved against the store at write time; unknown ids are reported there.
            batch.pairs[(query_id, doc_id)] = {
                "query_id": query_id,
                "chunk_id": doc_id,
                "split": tag,
                "source": path.name,
                "score": 1.0,
                "line": line,
            }
    problems.raise_if_any()
    return batch


# --- folders of documents ---------------------------------------------------------------------------------


def parse_docs(folder: Path, strategy_name: str, strategy: dict[str, Any], *, max_chars: int) -> ImportBatch:
    """Every .txt/.md file under `folder` becomes a document (id = its relative path), chunked by a strategy.

    A document longer than `max_chars` is still imported, as chunks, and a note says so; a single chunk that
    long (the `whole` strategy, or text without spaces) is refused, since each chunk is embedded in one piece."""
    problems = Problems()
    try:
        spec = spec_from_dict(strategy_name, strategy)
    except ValueError as e:
        problems.add(folder, 0, None, str(e))
        problems.raise_if_any()
    batch = ImportBatch("docs", folder)
    files = doc_files(folder, batch.skipped)
    if not files:
        problems.add(folder, 0, None, f"no {', '.join(DOC_SUFFIXES)} files found")
    for path in files:
        body = "\n".join(line for _, line in _all_lines(path, problems)).strip()
        if not body:
            problems.add(path, 0, None, "empty document")
            continue
        doc_id = path.relative_to(folder).as_posix()
        batch.add_document(doc_id, _title(body, path), body, folder.name, (path, 1))
        batch.documents[doc_id]["chunking"] = strategy_name
        chunks = chunk_text(body, spec)
        for chunk in chunks:
            if within_limit(chunk.text, max_chars, path, 0, f"chunk {chunk.position + 1} ({strategy_name})", problems):
                batch.add_chunk(doc_id, strategy_name, chunk.position, chunk.text, (chunk.start, chunk.end))
        if len(body) > max_chars:
            batch.notes.append(
                f"{doc_id}: {len(body):,} characters, over ingest.max_document_chars ({max_chars:,}); "
                f"imported as {len(chunks):,} chunks with '{strategy_name}'"
            )
    problems.raise_if_any()
    return batch


def doc_files(folder: Path, skipped: list[dict[str, Any]]) -> list[Path]:
    """The document files under `folder`, sorted; whatever else is there and not hidden is named in `skipped`
    (an unreadable folder, a broken link, a .pdf), so nothing the user put there vanishes without a word."""
    files: list[Path] = []

    def unreadable(error: OSError) -> None:
        skipped.append(_skip(Path(error.filename or folder), f"cannot read folder: {error.strerror}"))

    for root, dirs, names in os.walk(folder, onerror=unreadable):
        base = Path(root)
        for name in [d for d in dirs if (base / d).is_symlink() and not d.startswith(".")]:
            skipped.append(_skip(base / name, "link to a folder; links to folders are not followed"))
        # Hidden folders (.git, .obsidian) hold tool files, not documents.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            reason = _not_a_document(base / name)
            if reason is None:
                files.append(base / name)
            elif not name.startswith("."):
                skipped.append(_skip(base / name, reason))
    return sorted(files)


def _not_a_document(path: Path) -> str | None:
    if path.suffix.lower() not in DOC_SUFFIXES:
        return f"not a {', '.join(DOC_SUFFIXES)} file"
    if not path.is_file():
        return "not a regular file (a broken link, a pipe or a device)"
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        # The id is the relative path; one that is not UTF-8 cannot be stored or shown.
        return "file or folder name is not valid UTF-8; rename it"
    if not os.access(path, os.R_OK):
        return "cannot read file: permission denied"
    return None


def _skip(path: Path, reason: str) -> dict[str, Any]:
    # A path with undecodable bytes would crash printing and JSON later: show those bytes escaped.
    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
    return {"path": shown, "reason": reason}


def _all_lines(path: Path, problems: Problems) -> list[tuple[int, str]]:
    # text_lines drops blank lines; paragraphs need them, so re-insert one per gap.
    out: list[tuple[int, str]] = []
    last = 0
    for number, line in text_lines(path, problems):
        if out and number > last + 1:
            out.append((last + 1, ""))
        out.append((number, line))
        last = number
    return out


def _title(body: str, path: Path) -> str:
    first = body.splitlines()[0].strip()
    return first.lstrip("#").strip() if first.startswith("#") else path.stem.replace("_", " ").replace("-", " ")
