"""Re-index on a Ray cluster: `embtune index DIR --engine ray [--address ray://head:10001]` (extra `embtune[ray]`).

The same build as engine.index.build, with the encoding spread over Ray Data actors:
  driver (this process): resolves the model and records the run, reads the corpus from SQLite a page at a time,
    copies unchanged and cached vectors as a local build does, puts the chunks left to encode into Ray's object
    store a window at a time, and writes every encoded batch it gets back to the table (one LanceDB commit per
    batch, so a killed build resumes per batch); then the ANN index, the live switch and the run's end, with
    the local build's own functions;
  actors: `map_batches` with a callable class; each gets the loaded model once through the object store (workers
    need neither the project folder nor the model folder), one GPU each when the cluster has GPUs, else CPUs.

The driver, not the workers, writes the Lance fragments: only the driver needs to reach the project's LanceDB
folder, a local path. Workers writing fragments (`Dataset.write_lance`) would need that folder on storage every
node reaches, and Ray 2.60's Lance sink fails against current pylance (`storage_options_provider`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from engine.errors import EmbtuneError
from engine.index.build import (
    FIT_SAMPLE,
    PAGE_BATCHES,
    BuildCounts,
    BuildPlan,
    IndexResult,
    build_queued,
    committed,
    complete_table,
    connect,
    copy_cached,
    finish_build,
    open_build_table,
    prepare_build,
    previous_vectors,
)
from engine.index.devices import Targets
from engine.index.stream import Committer, Page, PreviousVectors, arrow_rows, pages, row_key
from engine.jobs.progress import Progress
from engine.project import Project
from engine.store import indexes, runs
from engine.store import jobs as job_store

WINDOW_ROWS = 262_144  # chunks in the object store at once: bounds its memory; each window restarts the actors
CPUS_PER_ACTOR = 2  # a CPU actor's torch threads


class RayEngineError(EmbtuneError):
    """Ray missing, or a cluster that cannot be reached or used."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: a local Ray on this machine
    actors: int | None = None  # None: one per GPU in the cluster, else one per CPUS_PER_ACTOR CPUs

    def to_json(self) -> dict[str, Any]:
        return {"engine": "ray", "address": self.address, "actors": self.actors}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RayOptions:
        return cls(data.get("address"), data.get("actors"))


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise RayEngineError(f"--engine ray needs Ray Data: pip install 'embtune[ray]' ({e})") from e
    return ray


def build_index_ray(
    project: Project,
    model: str = "base",
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    queued_run: int | None = None,
    options: RayOptions | None = None,
) -> IndexResult:
    """engine.index.build.build_index on Ray: the same run, table, rows and live switch; see the module doc."""
    ray, options = import_ray(), options or RayOptions()
    started = time.perf_counter()
    requested = cancelled or (lambda: False)
    with ray_session(ray, options.address):
        plan = prepare_build(project, model, queued_run, Targets())
        db, run_id = project.db, plan.run_id

        def is_cancelled() -> bool:
            return requested() or job_store.cancel_requested(db, run_id)

        try:
            result = _build(ray, project, plan, options, progress or (lambda *_: None), is_cancelled)
        except BaseException as e:
            status = "cancelled" if isinstance(e, InterruptedError) and is_cancelled() else "failed"
            runs.fail_run(db, run_id, f"{type(e).__name__}: {e}", status)
            raise
    result.seconds = round(time.perf_counter() - started, 2)
    finish_build(project, result)
    return result


@contextmanager
def ray_session(ray: Any, address: str | None) -> Iterator[None]:
    """Connect to `address` (or start a local Ray); a session already open (a test's, a notebook's) is used as is
    and left open."""
    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = address or "a local Ray"
        raise RayEngineError(f"--engine ray: cannot start or reach {where}: {e}") from e
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI's and the TUI's own progress stays the only one
        context.print_on_execution_start = False
        yield
    finally:
        ray.shutdown()


def _build(
    ray: Any, project: Project, plan: BuildPlan, options: RayOptions, progress: Progress, cancelled: Callable[[], bool]
) -> IndexResult:
    from engine.models.encoder import open_encoder

    db, lance, settings = project.db, connect(project), project.config.index
    progress("load model", 0, 1)
    encoder = open_encoder(
        plan.spec,
        base_dir=project.root,
        fit_texts=indexes.sample_chunk_texts(db, FIT_SAMPLE),
        trust_remote_code=project.config.trust_remote_code,
        prompts=project.config.prompts,
        device="cpu",  # the driver encodes only the recall queries; the actors move their copy to a GPU
    )
    progress("load model", 1, 1)
    table, name, index_id, done = open_build_table(project, plan, encoder, lance)
    previous = previous_vectors(project, lance, plan, encoder.max_seq_length)
    counts = BuildCounts(resumed=len(done))
    pool = _ActorPool(ray, options, ray.put(replace(encoder, db=None)))
    out = Committer(table, settings.commit_seconds)
    writer = _Writer(db, plan, out, counts, progress, cancelled, len(done))
    window: list[Any] = []
    held = 0
    with committed(out):
        for page in pages(db, settings.batch_size * PAGE_BATCHES):
            kept = done.contains([row_key(c, h) for c, h in zip(page.ids, page.hashes, strict=True)])
            rest = writer.copy_known(page.pick(np.flatnonzero(~kept)), previous)
            if len(rest):
                window.append(ray.put(_chunk_table(rest)))
                held += len(rest)
            if held >= WINDOW_ROWS:
                writer.encode(pool, window)
                window, held = [], 0
        writer.encode(pool, window)
    targets = {**plan.targets.to_json(), **options.to_json(), **pool.to_json()}
    return complete_table(project, plan, encoder, (table, name, index_id), counts, cancelled, targets)


def _chunk_table(page: Page) -> Any:
    import pyarrow as pa

    return pa.table({"chunk_id": page.ids, "doc_id": page.doc_ids, "text_hash": page.hashes, "text": page.texts})


class _ActorPool:
    """Where the actors run: one GPU each when the cluster has GPUs, else CPUS_PER_ACTOR CPUs each."""

    def __init__(self, ray: Any, options: RayOptions, encoder_ref: Any) -> None:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        if options.actors is not None and options.actors < 1:
            raise RayEngineError(f"--actors must be at least 1, got {options.actors}")
        self.gpus_per_actor = 1 if gpus else 0
        self.cpus_per_actor = 1 if gpus else max(1, min(CPUS_PER_ACTOR, cpus))
        self.size = options.actors or (gpus or max(1, cpus // self.cpus_per_actor))
        self.ray, self.encoder_ref = ray, encoder_ref

    def to_json(self) -> dict[str, Any]:
        return {"actors": self.size, "gpus_per_actor": self.gpus_per_actor, "cpus_per_actor": self.cpus_per_actor}

    def encoded(self, window: list[Any], batch_size: int) -> Iterator[Any]:
        """Arrow batches of the window's chunks with their vectors, as the actors finish them (any order)."""
        data = self.ray.data.from_arrow_refs(window).map_batches(
            EncodeBatch,
            fn_constructor_args=(self.encoder_ref,),
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=self.ray.data.ActorPoolStrategy(size=self.size),
            num_gpus=self.gpus_per_actor,
            num_cpus=self.cpus_per_actor,
        )
        return data.iter_batches(batch_size=batch_size, batch_format="pyarrow")


class EncodeBatch:
    """A Ray Data actor: the driver's encoder (model, fitted max_seq_length, prompts) once, then each batch's
    document vectors, exactly as engine.models.encoder.Encoder.encode makes them."""

    def __init__(self, encoder_ref: Any) -> None:
        import ray
        import torch

        self.encoder = encoder = ray.get(encoder_ref)  # Ray Data passes constructor arguments unresolved
        if torch.cuda.is_available():  # Ray gives a GPU actor one device, visible as cuda:0
            encoder.model.to("cuda")

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        vectors = self.encoder.encode(batch.column("text").to_pylist(), "document")
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        return batch.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]))


class _Writer:
    """The driver's side of the table: what needs no model is copied in place; encoded batches are committed as
    they come back (by the same Committer as a local build), with the same progress events."""

    def __init__(
        self,
        db: Any,
        plan: BuildPlan,
        out: Committer,
        counts: BuildCounts,
        progress: Progress,
        cancelled: Callable[[], bool],
        written: int,
    ) -> None:
        self.db, self.plan, self.out, self.counts = db, plan, out, counts
        self.progress, self.cancelled, self.written = progress, cancelled, written

    def copy_known(self, page: Page, previous: PreviousVectors | None) -> Page:
        """Copy the page's unchanged (previous table) and cached vectors; return the rest, longest first."""
        if not len(page):
            return page
        if self.cancelled():
            raise InterruptedError("index build cancelled")
        rest = np.ones(len(page), dtype=bool)
        if previous is not None:
            found, vectors = previous.lookup(page.hashes)
            if found:
                self.out.add(arrow_rows(self.out.table.schema, page.pick(found), vectors))
                rest[found] = False
                self.counts.copied += len(found)
                self.written += len(found)
                self.progress("embed", self.written, self.plan.total)
        self.written = copy_cached(self.db, self.plan, self.out, page, rest, self.counts, self.written, self.progress)
        return page.pick(sorted(np.flatnonzero(rest).tolist(), key=lambda i: -len(page.texts[i])))

    def encode(self, pool: _ActorPool, window: list[Any]) -> None:
        if not window:
            return
        schema = self.out.table.schema
        for batch in pool.encoded(window, self.plan.batch_size):
            if self.cancelled():
                raise InterruptedError("index build cancelled")
            self.out.add(batch.select(schema.names).cast(schema))
            self.counts.embedded += batch.num_rows
            self.written += batch.num_rows
            event = {"stage": "embed", "done": self.written, "total": self.plan.total}
            runs.add_event(self.db, self.plan.run_id, "progress", event)
            self.progress("embed", self.written, self.plan.total)


def build_queued_ray(project: Project, run_id: int) -> dict[str, Any]:
    """The detached worker's entry for an index run queued with engine: ray (`--engine ray` without --wait)."""

    def build(project: Project, run_id: int, config: dict[str, Any]) -> IndexResult:
        return build_index_ray(project, config["model"], queued_run=run_id, options=RayOptions.from_json(config))

    return build_queued(project, run_id, build)
