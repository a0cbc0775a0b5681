"""Re-index: embed every chunk with a model into a NEW LanceDB table, then switch the live index to it.

Blue/green: each build writes its own table `chunks_<fingerprint>_<run id>` under project/lancedb; the live index is
a pointer in the store, switched in one transaction once the table is complete, so a killed or failed build never
touches what search reads. Batches are committed to LanceDB as they finish (each `add` is one atomic commit): the
next build of the same model finds the unfinished table and embeds only the chunks it lacks.

Incremental: a chunk whose content hash is unchanged is copied from the newest complete table of the same model
(the same fingerprint and max_seq_length), read as Arrow columns. That is faster than the SQLite embedding cache
(one vectorised take instead of a blob per row) and needs no second copy of every vector; the cache is still
consulted for chunks the previous table lacks (the gate or eval may have encoded them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import EmbtuneError
from engine.index.ann import AnnResult, build_ann, exact
from engine.jobs.launcher import process_alive
from engine.jobs.progress import Progress
from engine.models.refs import resolve_ref
from engine.project import Project
from engine.store import indexes, runs
from engine.store import jobs as job_store
from engine.store.db import write
from engine.store.embeddings import cached_vectors

os.environ.setdefault("LANCEDB_LOG", "error")  # Rust WARN lines go straight to fd 2 and would draw over a TUI
STALE_SECONDS = 300.0  # a building run without a heartbeat for this long is dead even if its pid was reused
RECALL_QUERIES = 200
COPY_BLOCK = 20_000


class IndexingError(EmbtuneError):
    """A build or switch that cannot happen (no corpus, nothing to roll back to, a build already running)."""


@dataclass
class IndexResult:
    table: str
    index_id: int
    run_id: int
    model: str
    rows: int
    embedded: int
    skipped_unchanged: int
    resumed: int
    seconds: float
    live: bool
    max_seq_length: int
    ann: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The `embtune index --json` contract."""
        return {
            "table": self.table,
            "rows": self.rows,
            "embedded": self.embedded,
            "skipped_unchanged": self.skipped_unchanged,
            "seconds": self.seconds,
            "live": self.live,
            "index_id": self.index_id,
            "run_id": self.run_id,
            "model": self.model,
            "resumed": self.resumed,
            "max_seq_length": self.max_seq_length,
            "ann": self.ann,
        }


@dataclass
class _Chunks:
    ids: list[str]
    doc_ids: list[str]
    hashes: list[str]
    texts: list[str]


def connect(project: Project) -> Any:
    import lancedb

    project.lance_dir.mkdir(exist_ok=True)
    return lancedb.connect(str(project.lance_dir))


def _require_writable(project: Project) -> None:
    """A read-only lancedb/ (or project) would fail deep inside LanceDB with a traceback: say so up front."""
    folder = project.lance_dir if project.lance_dir.exists() else project.root
    if project.read_only or not os.access(folder, os.W_OK):
        raise IndexingError(f"project folder is read-only: {folder}")


def table_name(fingerprint: str, run_id: int) -> str:
    return f"chunks_{fingerprint[:12]}_{run_id}"


def build_index(
    project: Project,
    model: str = "base",
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    queued_run: int | None = None,
) -> IndexResult:
    """Embed the corpus with `model` (base | run id | folder) into a new table and make it live.

    `cancelled` (and the run's cancel request in the store, set by `embtune cancel`) is polled between batches;
    when it turns true the build stops with InterruptedError, its run is recorded as cancelled and its table stays
    unfinished, to be resumed by the next build of the same model. `queued_run`: the detached worker's run, which
    the build records itself on instead of creating one."""
    from engine.models.resolve import model_fingerprint, resolve_model

    _require_writable(project)
    started = time.perf_counter()
    requested = cancelled or (lambda: False)
    db = project.db
    ref = resolve_ref(project, model)
    fingerprint = model_fingerprint(resolve_model(ref.spec, project.root).path)
    rows = indexes.index_chunks(db)
    if not rows:
        raise IndexingError("the project has no corpus: import documents first (embtune import DIR --beir/--docs)")
    chunks = _Chunks([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
    strategy = indexes.chunk_strategies(db)
    pending = indexes.unfinished(db, fingerprint, strategy)
    if pending is not None and _alive(pending):
        raise IndexingError(
            f"table {pending['table_name']} is being built by pid {pending['pid']} "
            f"(run {pending['run_id']}); wait for it or stop it first"
        )
    config = {
        "model": ref.name,
        "spec": ref.spec,
        "model_run": ref.run_id,
        "fingerprint": fingerprint,
        "strategy": strategy,
        "batch_size": project.config.index.batch_size,
    }
    parent = pending["run_id"] if pending else None
    if queued_run is None:
        run_id = runs.create_run(db, "index", config, parent_id=parent)
    else:
        run_id = queued_run
        job_store.update_config(db, run_id, config, parent_id=parent)  # the model as resolved, for search and listing

    def is_cancelled() -> bool:
        # the caller's flag (the TUI), or `embtune cancel DIR RUN` from another process (a detached build)
        return requested() or job_store.cancel_requested(db, run_id)

    try:
        result = _build(
            project,
            ref.name,
            ref.spec,
            fingerprint,
            strategy,
            chunks,
            pending,
            run_id,
            progress or (lambda *_: None),
            is_cancelled,
        )
    except BaseException as e:
        status = "cancelled" if isinstance(e, InterruptedError) and is_cancelled() else "failed"
        runs.fail_run(db, run_id, f"{type(e).__name__}: {e}", status)
        raise
    result.seconds = round(time.perf_counter() - started, 2)
    _finish(project, result)
    return result


def build_queued(project: Project, run_id: int) -> dict[str, Any]:
    """The detached worker's entry for a queued 'index' run (`embtune index DIR`): claim it, build its model."""
    run = job_store.job_run(project.db, run_id, "index")
    if run is None:
        raise IndexingError(f"no index run {run_id}")
    if not job_store.mark_running(project.db, run_id, os.getpid()):
        return {"status": run["status"]}  # cancelled before its worker started
    try:
        result = build_index(project, run["config"]["model"], queued_run=run_id)
    except InterruptedError:
        return {"status": "cancelled"}  # `embtune cancel`: recorded on the run, its table resumes next time
    return {"status": "finished", **result.to_json()}


def _build(
    project: Project,
    model_name: str,
    spec: str,
    fingerprint: str,
    strategy: str,
    chunks: _Chunks,
    pending: dict[str, Any] | None,
    run_id: int,
    progress: Progress,
    cancelled: Callable[[], bool],
) -> IndexResult:
    from engine.models.encoder import open_encoder

    db, lance = project.db, connect(project)
    previous = indexes.latest_ready(db, fingerprint, strategy)
    progress("load model", 0, 1)
    encoder = open_encoder(
        spec, base_dir=project.root, fit_texts=chunks.texts, trust_remote_code=project.config.trust_remote_code
    )
    progress("load model", 1, 1)
    if pending is not None:
        if pending["run_status"] == "running":
            runs.fail_run(db, pending["run_id"], f"interrupted: resumed by run {run_id}")
        name = pending["table_name"]
        indexes.set_run(db, pending["id"], run_id)
        index_id = pending["id"]
        table = lance.open_table(name)
        encoder.max_seq_length = int(table.schema.metadata[b"max_seq_length"])
        done = _keep_current(table, chunks)
    else:
        # the previous table's length keeps copied and fresh vectors comparable after a small corpus change
        if previous is not None:
            encoder.max_seq_length = int(previous["result"].get("max_seq_length", encoder.max_seq_length))
        name = table_name(fingerprint, run_id)
        table = lance.create_table(
            name, schema=_schema(encoder.dimension, encoder.max_seq_length, fingerprint), exist_ok=False
        )
        index_id = indexes.create(db, name, model_name, fingerprint, strategy, run_id)
        done = set()
    todo = [i for i, cid in enumerate(chunks.ids) if cid not in done]
    copied = _copy_unchanged(lance, table, previous, chunks, todo, encoder.max_seq_length, progress, cancelled)
    todo = [i for i in todo if i not in copied]
    cached = _copy_cached(db, table, chunks, todo, fingerprint, encoder.max_seq_length)
    todo = [i for i in todo if i not in cached]
    _embed(db, run_id, encoder, table, chunks, todo, project.config.index.batch_size, progress, cancelled)
    rows = table.count_rows()
    if rows != len(chunks.ids):
        raise IndexingError(f"table {name} holds {rows} rows for {len(chunks.ids)} chunks")
    ann = _approximate(project, encoder, table, rows, cancelled)
    return IndexResult(
        name,
        index_id,
        run_id,
        model_name,
        rows,
        len(todo),
        len(copied) + len(cached),
        len(done),
        0.0,
        True,
        encoder.max_seq_length,
        ann.to_json(),
    )


def _schema(dim: int, max_seq_length: int, fingerprint: str) -> Any:
    import pyarrow as pa

    fields = [
        pa.field("chunk_id", pa.string()),
        pa.field("doc_id", pa.string()),
        pa.field("text_hash", pa.string()),
        pa.field("text", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
    ]
    return pa.schema(fields, metadata={"max_seq_length": str(max_seq_length), "fingerprint": fingerprint})


def _rows(table: Any, chunks: _Chunks, picked: list[int], vectors: np.ndarray) -> Any:
    import pyarrow as pa

    schema = table.schema
    dim = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    columns = {
        "chunk_id": [chunks.ids[i] for i in picked],
        "doc_id": [chunks.doc_ids[i] for i in picked],
        "text_hash": [chunks.hashes[i] for i in picked],
        "text": [chunks.texts[i] for i in picked],
        "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
    }
    return pa.table(columns, schema=schema)


def _keep_current(table: Any, chunks: _Chunks) -> set[str]:
    """Chunk ids already in an unfinished table; rows whose chunk was since removed or edited are deleted."""
    existing = table.search().select(["chunk_id", "text_hash"]).limit(None).to_arrow()
    current = dict(zip(chunks.ids, chunks.hashes, strict=True))
    ids, hashes = existing.column("chunk_id").to_pylist(), existing.column("text_hash").to_pylist()
    stale = [cid for cid, h in zip(ids, hashes, strict=True) if current.get(cid) != h]
    for start in range(0, len(stale), 500):
        quoted = ", ".join("'" + cid.replace("'", "''") + "'" for cid in stale[start : start + 500])
        table.delete(f"chunk_id IN ({quoted})")
    return {cid for cid, h in zip(ids, hashes, strict=True) if current.get(cid) == h}


def _copy_unchanged(
    lance: Any,
    table: Any,
    previous: dict[str, Any] | None,
    chunks: _Chunks,
    todo: list[int],
    max_seq_length: int,
    progress: Progress,
    cancelled: Callable[[], bool],
) -> set[int]:
    """Copy the vectors of chunks whose text is unchanged from the previous complete table of this model."""
    if previous is None or not todo:
        return set()
    if previous["table_name"] not in lance.list_tables().tables:
        return set()
    old = lance.open_table(previous["table_name"])
    if int(old.schema.metadata.get(b"max_seq_length", b"0")) != max_seq_length:
        return set()
    data = old.search().select(["text_hash", "vector"]).limit(None).to_arrow()
    where = {h: row for row, h in enumerate(data.column("text_hash").to_pylist())}
    picked = [i for i in todo if chunks.hashes[i] in where]
    if not picked:
        return set()
    vectors = data.column("vector").combine_chunks().flatten().to_numpy().reshape(data.num_rows, -1)
    for start in range(0, len(picked), COPY_BLOCK):
        if cancelled():
            raise InterruptedError("index build cancelled")
        part = picked[start : start + COPY_BLOCK]
        table.add(_rows(table, chunks, part, vectors[[where[chunks.hashes[i]] for i in part]]))
        progress("copy unchanged", start + len(part), len(picked))
    return set(picked)


def _copy_cached(
    db: Any, table: Any, chunks: _Chunks, todo: list[int], fingerprint: str, max_seq_length: int
) -> set[int]:
    """Chunks the SQLite embedding cache already holds (the gate or eval encoded them with this model)."""
    if not todo:
        return set()
    found = cached_vectors(db, fingerprint, max_seq_length, [chunks.hashes[i] for i in todo])
    picked = [i for i in todo if chunks.hashes[i] in found]
    if picked:
        table.add(_rows(table, chunks, picked, np.stack([found[chunks.hashes[i]] for i in picked])))
    return set(picked)


def _embed(
    db: Any,
    run_id: int,
    encoder: Any,
    table: Any,
    chunks: _Chunks,
    todo: list[int],
    batch_size: int,
    progress: Progress,
    cancelled: Callable[[], bool],
) -> None:
    """Encode in batches, longest first (similar lengths pad little), committing each batch as it finishes."""
    order = sorted(todo, key=lambda i: -len(chunks.texts[i]))
    if not order:
        return
    progress("embed", 0, len(order))
    for start in range(0, len(order), batch_size):
        if cancelled():
            raise InterruptedError("index build cancelled")
        part = order[start : start + batch_size]
        vectors = encoder.encode([chunks.texts[i] for i in part], "document")
        table.add(_rows(table, chunks, part, vectors))
        done = start + len(part)
        runs.add_event(db, run_id, "progress", {"stage": "embed", "done": done, "total": len(order)})
        progress("embed", done, len(order))


def _approximate(project: Project, encoder: Any, table: Any, rows: int, cancelled: Callable[[], bool]) -> AnnResult:
    settings = project.config.index
    if rows < settings.ann_min_rows:
        return exact()
    texts = indexes.query_texts(project.db, RECALL_QUERIES)
    if not texts:  # no queries yet: chunks stand in for them (their own vectors would be trivially found)
        texts = [r[3][:200] for r in indexes.index_chunks(project.db)[:: max(1, rows // RECALL_QUERIES)]]
    queries = encoder.encode(texts, "query")
    return build_ann(table, queries, settings.min_recall, cancelled)


def _finish(project: Project, result: IndexResult) -> None:
    """Complete the table, switch live, and close the run: one transaction."""
    metrics = [
        ("rows", "", float(result.rows)),
        ("embedded", "", float(result.embedded)),
        ("seconds", "", result.seconds),
    ]
    if result.ann.get("recall_at_10") is not None:
        metrics.append(("ann_recall@10", "", float(result.ann["recall_at_10"])))
    with write(project.db):
        indexes.mark_ready(project.db, result.index_id, result.rows, live=True)
        runs.finish_run(project.db, result.run_id, result.to_json(), metrics, [])


def _alive(row: dict[str, Any]) -> bool:
    """The build's process still runs (not gone, not a zombie) and beat recently."""
    pid = row.get("pid")
    if row.get("run_status") != "running" or not pid:
        return False
    if pid == os.getpid():
        return True  # another thread of this process (the TUI's worker)
    return process_alive(pid) and (row.get("heartbeat_age") or 0.0) < STALE_SECONDS


# --- the live pointer --------------------------------------------------------------------------------------


def rollback(project: Project) -> dict[str, Any]:
    """Switch the live index back to the table that was live before it (by the switch history, so a table made
    live by `index use` is honoured; projects from before the history fall back to the table built before)."""
    current = indexes.live(project.db)
    if current is None:
        raise IndexingError("no live index to roll back from: build one with `embtune index DIR`")
    target = _previously_live(project, current["id"])
    if target is None:
        raise IndexingError(f"{current['table_name']} was the first live table: nothing to roll back to")
    indexes.make_live(project.db, target["id"], "rollback")
    return {
        "live": target["table_name"],
        "model": target["model"],
        "rows": target["rows"],
        "previous": current["table_name"],
    }


def _previously_live(project: Project, current_id: int) -> dict[str, Any] | None:
    """Replay the switches as a stack: a build or a `use` pushes the table it replaced, a rollback pops one; the
    top (still complete, not the live one) is where the next rollback goes."""
    history = indexes.switches(project.db)
    if not history:
        return indexes.previous_ready(project.db, current_id)
    stack: list[int] = []
    for switch in history:
        if switch["reason"] == "rollback":
            if stack:
                stack.pop()
        elif switch["from_id"] is not None:
            stack.append(switch["from_id"])
    while stack:
        row = indexes.get(project.db, stack.pop())
        if row is not None and row["status"] == "ready" and row["id"] != current_id:
            return row
    return None


def use_index(project: Project, which: str) -> dict[str, Any]:
    """Make any complete table live, named by its id or its table name (`embtune index use DIR TABLE|ID`)."""
    rows = indexes.all_indexes(project.db)
    row = next((r for r in rows if str(r["id"]) == which.strip() or r["table_name"] == which.strip()), None)
    if row is None:
        known = ", ".join(f"{r['id']} ({r['table_name']})" for r in rows[:8]) or "none yet"
        raise IndexingError(f"no index {which!r}; tables: {known}")
    previous = indexes.live(project.db)
    result = make_live(project, row["id"])
    return {**result, "previous": previous["table_name"] if previous else None}


def make_live(project: Project, index_id: int) -> dict[str, Any]:
    row = indexes.get(project.db, index_id)
    if row is None or row["status"] != "ready":
        raise IndexingError(f"index {index_id} is not a complete table")
    indexes.make_live(project.db, index_id, "use")
    return {"live": row["table_name"], "model": row["model"], "rows": row["rows"]}


def index_history(project: Project) -> list[dict[str, Any]]:
    """Every switch of the live index, newest first (what `index list` shows under the tables)."""
    return list(reversed(indexes.switches(project.db)))


def list_indexes(project: Project) -> list[dict[str, Any]]:
    """Every table: model, rows, status, live, created, and the approximate index's recall when one was built."""
    out = []
    for row in indexes.all_indexes(project.db):
        ann = row["result"].get("ann") or {}
        status, progress = row["status"], None
        if status == "building" and not _alive(row):
            status = "incomplete"  # killed, cancelled or failed: the next build of this model resumes it
        elif status == "building" and row["run_id"] is not None:
            progress = runs.latest_event(project.db, row["run_id"], "progress")  # any process's build, e.g. the CLI's
        out.append(
            {
                "id": row["id"],
                "table": row["table_name"],
                "model": row["model"],
                "fingerprint": row["model_fingerprint"],
                "rows": row["rows"],
                "status": status,
                "live": row["live"],
                "created_at": row["created_at"],
                "run_id": row["run_id"],
                "search": ann.get("kind", "exact"),
                "ann_recall": ann.get("recall_at_10"),
                "ann_note": ann.get("note", ""),
                "progress": progress,
            }
        )
    return out


def status_text(row: dict[str, Any]) -> str:
    """A listed table's status; a build in progress as 'building 1,024/5,183' (from whichever process builds)."""
    progress = row.get("progress") or {}
    if row["status"] == "building" and progress.get("stage") == "embed" and progress.get("total"):
        return f"building {progress['done']:,}/{progress['total']:,}"
    return str(row["status"])


def suggested_model(project: Project) -> str:
    """What a new build most likely wants: the newest trained model, else the base."""
    latest = runs.latest_model_run(project.db, "train")
    return f"run-{latest['id']}" if latest else "base"
