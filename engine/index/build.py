"""Re-index: embed every chunk with a model into a NEW LanceDB table, then switch the live index to it.

Blue/green: each build writes its own table `chunks_<fingerprint>_<run id>` under project/lancedb; the live index is
a pointer in the store, switched in one transaction once the table is complete, so a killed or failed build never
touches what search reads. Encoded rows are committed to LanceDB every index.commit_seconds (each commit atomic;
engine.index.stream.Committer): the next build of the same model finds the unfinished table and embeds only the
chunks it lacks.

Streaming: chunks are read from SQLite a page at a time (engine.index.stream), each page's vectors come from the
previous table, the embedding cache or the model, and are written before the next page is read, so peak memory
depends on the page and batch sizes, not on the corpus.

Incremental: a chunk whose content hash is unchanged is copied from the newest complete table of the same model
(the same fingerprint and max_seq_length), taken by row id. That is faster than the SQLite embedding cache (one
vectorised take instead of a blob per row) and needs no second copy of every vector; the cache is still consulted
for chunks the previous table lacks (the gate or eval may have encoded them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import EmbtuneError
from engine.index.ann import AnnResult, auto_kind, build_ann, exact
from engine.index.devices import PooledEncoder, Targets
from engine.index.stream import (
    Committer,
    KeySet,
    Page,
    PreviousVectors,
    arrow_rows,
    keep_current,
    pages,
    row_key,
    table_schema,
)
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
PAGE_BATCHES = 16  # a page holds this many encode batches: sorted by length inside it, batches pad little
FIT_SAMPLE = 2000  # chunk texts the max_seq_length is fitted on


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
    targets: dict[str, Any] = field(default_factory=dict)

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
            "targets": self.targets,
        }


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
    targets: Targets | None = None,
) -> IndexResult:
    """Embed the corpus with `model` (base | run id | folder) into a new table and make it live.

    `cancelled` (and the run's cancel request in the store, set by `embtune cancel`) is polled between batches;
    when it turns true the build stops with InterruptedError, its run is recorded as cancelled and its table stays
    unfinished, to be resumed by the next build of the same model. `queued_run`: the detached worker's run, which
    the build records itself on instead of creating one. `targets`: encode in N processes or on several devices."""
    started = time.perf_counter()
    requested = cancelled or (lambda: False)
    targets = targets or Targets()
    plan = prepare_build(project, model, queued_run, targets, _encode_backend(project, targets))
    db, run_id = project.db, plan.run_id

    def is_cancelled() -> bool:
        # the caller's flag (the TUI), or `embtune cancel DIR RUN` from another process (a detached build)
        return requested() or job_store.cancel_requested(db, run_id)

    try:
        result = _build(project, plan, progress or (lambda *_: None), is_cancelled)
    except BaseException as e:
        status = "cancelled" if isinstance(e, InterruptedError) and is_cancelled() else "failed"
        runs.fail_run(db, run_id, f"{type(e).__name__}: {e}", status)
        raise
    result.seconds = round(time.perf_counter() - started, 2)
    finish_build(project, result)
    return result


@dataclass
class BuildPlan:
    """What a build resolved before encoding anything: the model, its run, and the table it resumes if any."""

    model_name: str
    spec: str
    fingerprint: str
    strategy: str
    total: int
    pending: dict[str, Any] | None
    run_id: int
    targets: Targets
    batch_size: int
    backend: str = "torch"  # models.encode_backend as resolved for this build (engine.models.backends)


def _encode_backend(project: Project, targets: Targets) -> str:
    """models.encode_backend for a local build. A multi-process pool loads the torch model in each process, so it
    encodes with torch (auto) or refuses a named ONNX/OpenVINO backend rather than mixing runtimes."""
    from engine.models.encoder import encode_backend

    setting = project.config.models.encode_backend
    if not targets.pool_devices():
        return encode_backend(setting, targets.single_device())
    if setting not in ("torch", "auto"):
        raise IndexingError(
            f"models.encode_backend {setting!r} encodes in one process (its runtime already uses every core): "
            "drop --processes/--devices, or set models.encode_backend: torch in project.yaml"
        )
    return "torch"


def prepare_build(
    project: Project, model: str, queued_run: int | None, targets: Targets, backend: str = "torch"
) -> BuildPlan:
    """Resolve the model, refuse a second live build of it, and record the run (shared by every engine).
    `backend`: the resolved encode backend the build encodes with (torch unless the caller resolved another)."""
    from engine.models.encoder import encoding_key

    _require_writable(project)
    db = project.db
    ref = resolve_ref(project, model)
    # the model's fingerprint with its prompts mixed in: a prompt change builds a new table, never reuses vectors
    fingerprint, prompts = encoding_key(ref.spec, project.root, project.config.prompts, backend)
    total = indexes.count_index_chunks(db)
    if not total:
        raise IndexingError("the project has no corpus: import documents first (embtune import DIR --beir/--docs)")
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
        "prompts": prompts.as_dict(),  # what search encodes its queries with
        "strategy": strategy,
        "batch_size": project.config.index.batch_size,
        "targets": targets.to_json(),
        "backend": backend,  # what search encodes its queries with
    }
    parent = pending["run_id"] if pending else None
    if queued_run is None:
        run_id = runs.create_run(db, "index", config, parent_id=parent)
    else:
        run_id = queued_run
        job_store.update_config(db, run_id, config, parent_id=parent)  # the model as resolved, for search and listing
    return BuildPlan(
        ref.name,
        ref.spec,
        fingerprint,
        strategy,
        total,
        pending,
        run_id,
        targets,
        project.config.index.batch_size,
        backend,
    )


def build_queued(
    project: Project, run_id: int, build: Callable[[Project, int, dict[str, Any]], IndexResult] | None = None
) -> dict[str, Any]:
    """The detached worker's entry for a queued 'index' run (`embtune index DIR`): claim it, build its model
    (with `build`, given the project, the run and its config, when another engine builds it)."""
    run = job_store.job_run(project.db, run_id, "index")
    if run is None:
        raise IndexingError(f"no index run {run_id}")
    if not job_store.mark_running(project.db, run_id, os.getpid()):
        return {"status": run["status"]}  # cancelled before its worker started
    config = run["config"]
    try:
        if build is not None:  # another engine's build of the run (engine.index.ray_build)
            result = build(project, run_id, config)
        else:
            result = build_index(project, config["model"], queued_run=run_id, targets=Targets.from_json(config))
    except InterruptedError:
        return {"status": "cancelled"}  # `embtune cancel`: recorded on the run, its table resumes next time
    return {"status": "finished", **result.to_json()}


@dataclass
class BuildCounts:
    embedded: int = 0
    copied: int = 0
    resumed: int = 0


def open_build_table(project: Project, plan: BuildPlan, encoder: Any, lance: Any) -> tuple[Any, str, int, KeySet]:
    """The pending table to resume (its stale rows deleted), or a new empty one; and the rows it already holds."""
    db = project.db
    if plan.pending is not None:
        pending = plan.pending
        if pending["run_status"] == "running":
            runs.fail_run(db, pending["run_id"], f"interrupted: resumed by run {plan.run_id}")
        indexes.set_run(db, pending["id"], plan.run_id)
        table = lance.open_table(pending["table_name"])
        encoder.max_seq_length = int(table.schema.metadata[b"max_seq_length"])
        return table, pending["table_name"], pending["id"], keep_current(table, db)
    previous = indexes.latest_ready(db, plan.fingerprint, plan.strategy)
    # the previous table's length keeps copied and fresh vectors comparable after a small corpus change
    if previous is not None:
        encoder.max_seq_length = int(previous["result"].get("max_seq_length", encoder.max_seq_length))
    name = table_name(plan.fingerprint, plan.run_id)
    schema = table_schema(encoder.dimension, encoder.max_seq_length, plan.fingerprint)
    table = lance.create_table(name, schema=schema, exist_ok=False)
    index_id = indexes.create(db, name, plan.model_name, plan.fingerprint, plan.strategy, plan.run_id)
    return table, name, index_id, KeySet(np.zeros(0, np.uint64))


def _build(project: Project, plan: BuildPlan, progress: Progress, cancelled: Callable[[], bool]) -> IndexResult:
    from engine.models.encoder import open_encoder

    db, lance, settings = project.db, connect(project), project.config.index
    progress("load model", 0, 1)
    encoder = open_encoder(
        plan.spec,
        base_dir=project.root,
        fit_texts=indexes.sample_chunk_texts(db, FIT_SAMPLE),
        trust_remote_code=project.config.trust_remote_code,
        prompts=project.config.prompts,
        device=plan.targets.single_device(),
        backend=plan.backend,
    )
    progress("load model", 1, 1)
    table, name, index_id, done = open_build_table(project, plan, encoder, lance)
    previous = previous_vectors(project, lance, plan, encoder.max_seq_length)
    counts = BuildCounts(resumed=len(done))
    written = len(done)
    out = Committer(table, settings.commit_seconds)
    with PooledEncoder(encoder, plan.targets) as pooled, committed(out):
        for page in pages(db, settings.batch_size * PAGE_BATCHES):
            held = done.contains([row_key(c, h) for c, h in zip(page.ids, page.hashes, strict=True)])
            todo = page.pick(np.flatnonzero(~held))
            written = _write_page(db, plan, out, todo, previous, pooled, counts, written, progress, cancelled)
    return complete_table(project, plan, encoder, (table, name, index_id), counts, cancelled, plan.targets.to_json())


@contextmanager
def committed(out: Committer) -> Iterator[Committer]:
    """Commit what waits when the writing ends, normally or by a cancel (done work is kept for the resume), and
    compact the finished table; an error leaves what waits uncommitted (it may be what failed)."""
    try:
        yield out
    except InterruptedError:
        out.flush()
        raise
    out.flush()
    out.compact()


def complete_table(
    project: Project,
    plan: BuildPlan,
    encoder: Any,
    opened: tuple[Any, str, int],
    counts: BuildCounts,
    cancelled: Callable[[], bool],
    targets: dict[str, Any],
) -> IndexResult:
    """A written table checked whole (one row per chunk) and given its ANN index: the build's result, before the
    live switch. Shared by the local and the Ray build."""
    table, name, index_id = opened
    rows = table.count_rows()
    if rows != plan.total:
        raise IndexingError(f"table {name} holds {rows} rows for {plan.total} chunks")
    ann = build_approximate(project, encoder, table, rows, cancelled)
    return IndexResult(
        name,
        index_id,
        plan.run_id,
        plan.model_name,
        rows,
        counts.embedded,
        counts.copied,
        counts.resumed,
        0.0,
        True,
        encoder.max_seq_length,
        ann.to_json(),
        targets,
    )


def previous_vectors(project: Project, lance: Any, plan: BuildPlan, max_seq_length: int) -> PreviousVectors | None:
    """The newest complete table of this model, when its vectors are comparable (same max_seq_length)."""
    previous = indexes.latest_ready(project.db, plan.fingerprint, plan.strategy)
    if previous is None or previous["table_name"] not in lance.list_tables().tables:
        return None
    old = lance.open_table(previous["table_name"])
    if int(old.schema.metadata.get(b"max_seq_length", b"0")) != max_seq_length:
        return None
    return PreviousVectors(old)


def _write_page(
    db: Any,
    plan: BuildPlan,
    out: Committer,
    page: Page,
    previous: PreviousVectors | None,
    encoder: PooledEncoder,
    counts: BuildCounts,
    written: int,
    progress: Progress,
    cancelled: Callable[[], bool],
) -> int:
    """One page: copy unchanged vectors, then cached ones, then encode the rest by batch, longest first.
    Returns the rows the table holds now."""
    if not len(page):
        return written
    if cancelled():
        raise InterruptedError("index build cancelled")
    rest = np.ones(len(page), dtype=bool)
    if previous is not None:
        found, vectors = previous.lookup(page.hashes)
        if found:
            out.add(arrow_rows(out.table.schema, page.pick(found), vectors))
            rest[found] = False
            counts.copied += len(found)
            written += len(found)
            progress("embed", written, plan.total)
    written = copy_cached(db, plan, out, page, rest, counts, written, progress)
    order = sorted(np.flatnonzero(rest).tolist(), key=lambda i: -len(page.texts[i]))
    batch_size = plan.batch_size
    for start in range(0, len(order), batch_size):
        if cancelled():
            raise InterruptedError("index build cancelled")
        part = page.pick(order[start : start + batch_size])
        out.add(arrow_rows(out.table.schema, part, encoder.encode(part.texts)))
        counts.embedded += len(part)
        written += len(part)
        runs.add_event(db, plan.run_id, "progress", {"stage": "embed", "done": written, "total": plan.total})
        progress("embed", written, plan.total)
    return written


def copy_cached(
    db: Any,
    plan: BuildPlan,
    out: Committer,
    page: Page,
    rest: np.ndarray,
    counts: BuildCounts,
    written: int,
    progress: Progress,
) -> int:
    """Chunks the SQLite embedding cache already holds (the gate or eval encoded them with this model)."""
    left = np.flatnonzero(rest).tolist()
    if not left:
        return written
    max_seq_length = int(out.table.schema.metadata[b"max_seq_length"])
    found = cached_vectors(db, plan.fingerprint, max_seq_length, [page.hashes[i] for i in left])
    picked = [i for i in left if page.hashes[i] in found]
    if not picked:
        return written
    out.add(arrow_rows(out.table.schema, page.pick(picked), np.stack([found[page.hashes[i]] for i in picked])))
    rest[picked] = False
    counts.copied += len(picked)
    progress("embed", written + len(picked), plan.total)
    return written + len(picked)


def build_approximate(
    project: Project, encoder: Any, table: Any, rows: int, cancelled: Callable[[], bool]
) -> AnnResult:
    settings = project.config.index
    if rows < settings.ann_min_rows and settings.type == "auto":
        return exact()
    if settings.type == "flat":
        return exact("exact search: index.type is flat")
    queries = encoder.encode(recall_query_texts(project, rows), "query")
    kind = auto_kind(project.db) if settings.type == "auto" else settings.type
    return build_ann(table, queries, settings.min_recall, cancelled, kind=kind)


def recall_query_texts(project: Project, rows: int) -> list[str]:
    """The project's queries for measuring recall; without any, chunk beginnings stand in for them."""
    texts = indexes.query_texts(project.db, RECALL_QUERIES)
    if not texts:  # a chunk's own vector would be trivially found: its first 200 characters are a fairer probe
        texts = [t[:200] for t in indexes.sample_chunk_texts(project.db, min(RECALL_QUERIES, rows))]
    return texts


def finish_build(project: Project, result: IndexResult) -> None:
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
    """What a new build most likely wants: the merge mix last chosen (Evaluate screen) unless a training run
    finished after that merge, else the newest trained model, else the base."""
    from engine.train.merge import chosen_model

    latest = runs.latest_model_run(project.db, "train")
    chosen = chosen_model(project, newer_than=latest["id"] if latest else None)
    if chosen is not None:
        return chosen if chosen == "base" else f"run-{chosen}"
    return f"run-{latest['id']}" if latest else "base"
