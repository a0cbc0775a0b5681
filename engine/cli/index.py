"""`embtune index|search|export`: re-index into LanceDB, switch or roll back the live index, search it, ship a model.

`embtune index DIR` builds (the default subcommand, so the short form works); `index rollback DIR` and
`index list DIR` act on the live pointer and the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from engine.cli._common import ProgressBar, emit, handles_errors, json_option, project_dir
from engine.project import Project, open_project


class _DefaultBuild(click.Group):
    """A group whose first argument, when it is not a subcommand, goes to `build` (`embtune index DIR`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultBuild)
def index() -> None:
    """Re-embed the corpus into a new LanceDB table and make it live (`embtune index DIR [--model RUN]`);
    `index rollback DIR` switches back; `index list DIR` shows the tables."""


@index.command("build")
@project_dir
@click.option("--model", default="base", show_default=True, help="base, a run id (7 or run-7) or a model folder.")
@click.option("--wait", is_flag=True, help="Build in this process and print the result (else: a detached job).")
@click.option("--processes", type=int, help="Encode in N CPU processes (sentence-transformers' multi-process pool).")
@click.option("--devices", metavar="LIST", help="Encode on these devices, e.g. cuda:0,cuda:1 (one process each).")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: encode on Ray Data actors (pip install 'embtune[ray]'); this process still writes the table.",
)
@click.option("--address", metavar="URI", help="With --engine ray: the cluster, e.g. ray://head:10001 (else local).")
@click.option("--actors", type=int, help="With --engine ray: encoding actors (default: one per GPU, else per 2 CPUs).")
@json_option
@handles_errors
def index_build(
    directory: Path,
    model: str,
    wait: bool,
    processes: int | None,
    devices: str | None,
    engine: str,
    address: str | None,
    actors: int | None,
    as_json: bool,
) -> None:
    """Embed every chunk with MODEL into a new table, then switch the live index to it."""
    from engine.index.devices import DevicesError, Targets

    project = open_project(directory)
    targets = Targets.parse(processes, devices)
    if engine == "ray" and (processes is not None or devices):
        raise DevicesError("--engine ray places encoding on the cluster's actors: drop --processes/--devices")
    if engine == "local" and (address or actors is not None):
        raise DevicesError("--address and --actors go with --engine ray")
    if not wait:
        extra = {"engine": "ray", "address": address, "actors": actors} if engine == "ray" else {}
        emit(as_json, *_launch_build(project, model, targets, extra))
        return
    with ProgressBar() as bar:
        if engine == "ray":
            from engine.index.ray_build import RayOptions, build_index_ray

            result = build_index_ray(project, model, bar, options=RayOptions(address, actors))
        else:
            from engine.index.build import build_index

            result = build_index(project, model, bar, targets=targets)
    ann = result.ann
    search = (
        f"approximate ({ann['note']}; recall@10 {ann['recall_at_10']:.3f} vs exact on {ann['queries']} queries)"
        if ann.get("kind") not in (None, "exact")
        else f"exact ({ann.get('note', '')})"
    )
    emit(
        as_json,
        result.to_json(),
        f"Live index: {result.table} ({result.model}), {result.rows:,} rows: {result.embedded:,} embedded, "
        f"{result.skipped_unchanged:,} unchanged copied, {result.resumed:,} resumed; {result.seconds} s.\n"
        f"Search: {search}. `embtune index rollback {directory}` switches back.",
    )


def _launch_build(
    project: Project, model: str, targets: Any, extra: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """Queue an index run and start its detached worker (engine.jobs): closing the terminal does not stop it.
    `extra`: the Ray engine's options, read back by the worker (engine.index.build.build_queued)."""
    from engine.jobs.launcher import launch, log_path, queue

    run_id = queue(project, "index", {"model": model, **targets.to_json(), **(extra or {})})
    pid = launch(project, run_id)
    root, log = project.root, log_path(project, run_id)
    payload = {"started": True, "pid": pid, "log": str(log), "model": model, "run_id": run_id}
    return payload, (
        f"Re-indexing with {model} in the background (pid {pid}); log: {log}\n"
        f"`embtune index list {root}` shows its table; the live index switches when it completes. "
        f"To stop it: `embtune runs {root} --all` names its run, `embtune cancel {root} RUN` stops it."
    )


@index.command("plan")
@project_dir
@json_option
@handles_errors
def index_plan(directory: Path, as_json: bool) -> None:
    """Measure index types and compressions on the live table: recall@10 vs exact, bytes/vector, latency."""
    from engine.index.plan import plan_index

    with ProgressBar() as bar:
        plan = plan_index(open_project(directory), bar)
    lines = [
        f"{plan.table}: {plan.rows:,} rows × {plan.dim} dims, {plan.queries} queries; min recall@10 {plan.min_recall}",
        f"  {'option':<16} {'recall@10':>9} {'bytes/vec':>10} {'p50 ms':>8} {'p95 ms':>8} {'build s':>8}",
    ]
    for o in plan.options:
        mark = "*" if o.name == plan.pick else " "
        build = "" if o.build_seconds is None else f"{o.build_seconds:.1f}"
        lines.append(
            f"{mark} {o.name:<16} {o.recall_at_10:>9.3f} {o.bytes_per_vector:>10.1f} {o.p50_ms:>8.2f} "
            f"{o.p95_ms:>8.2f} {build:>8}"
        )
    lines.append(
        f"Pick: {plan.pick or 'none meets min_recall'}; index type for builds (index.type: auto): "
        f"{plan.index_pick or 'ivf_flat (no index type met min_recall)'}."
    )
    emit(as_json, plan.to_json(), "\n".join(lines))


@index.command("rollback")
@project_dir
@json_option
@handles_errors
def index_rollback(directory: Path, as_json: bool) -> None:
    """Switch the live index back to the table that was live before it."""
    from engine.index.build import rollback

    result = rollback(open_project(directory))
    emit(
        as_json,
        result,
        f"Live index: {result['live']} ({result['model']}, {result['rows']:,} rows); was {result['previous']}.",
    )


@index.command("use")
@project_dir
@click.argument("which", metavar="TABLE|ID")
@json_option
@handles_errors
def index_use(directory: Path, which: str, as_json: bool) -> None:
    """Make any complete table live (by id or table name); `index rollback` returns to the one live before."""
    from engine.index.build import use_index

    result = use_index(open_project(directory), which)
    emit(
        as_json,
        result,
        f"Live index: {result['live']} ({result['model']}, {result['rows']:,} rows); was {result['previous']}.",
    )


@index.command("list")
@project_dir
@json_option
@handles_errors
def index_list(directory: Path, as_json: bool) -> None:
    """The tables: model, rows, status, live, created, ANN recall; then the live index's history."""
    from engine.index.build import index_history, list_indexes, status_text

    project = open_project(directory)
    rows = list_indexes(project)
    history = index_history(project)
    lines = [f"{'':1} {'id':>3} {'table':<32} {'model':<12} {'rows':>9} {'status':<18} {'search':<9} created"]
    for r in rows:
        recall = f" r@10 {r['ann_recall']:.3f}" if r["ann_recall"] is not None else ""
        lines.append(
            f"{'*' if r['live'] else ' '} {r['id']:>3} {r['table']:<32} {r['model']:<12} {r['rows']:>9,} "
            f"{status_text(r):<18} {r['search']:<9} {r['created_at'][:16].replace('T', ' ')}{recall}"
        )
    if history:
        lines += ["", "Live index history (newest first):"]
        lines += [
            f"  {h['at'][:19].replace('T', ' ')}  {h['reason']:<8} {h['from_table'] or '(none)'} → {h['to_table']}"
            for h in history
        ]
    text = "\n".join(lines) if rows else "No index yet: `embtune index DIR`."
    emit(as_json, {"indexes": rows, "history": history}, text)


@click.command()
@project_dir
@click.argument("query")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--compare", metavar="MODEL", help="Also search MODEL's table (e.g. base) and show ranks that moved.")
@json_option
@handles_errors
def search(directory: Path, query: str, k: int, compare: str | None, as_json: bool) -> None:
    """Search the live index."""
    from engine.index.search import search as run_search

    results = run_search(open_project(directory), query, k, compare)
    emit(as_json, results.to_json(), _search_text(results))


def _search_text(results: Any) -> str:
    from engine.index.search import moved

    head = f"{results.table} ({results.model}) · {results.seconds * 1000:.0f} ms"
    lines = [head]
    for hit in results.hits:
        shift = ""
        if results.compare is not None:
            m = moved(hit)
            shift = " new" if m is None else f" {m:+d}" if m else "  ="
        lines.append(f"{hit.rank:>3}{shift:>5} {hit.score:.3f} {hit.doc_id:<14} {_one_line(hit.text)}")
    if results.compare is not None:
        lines.append(f"\n{results.compare.table} ({results.compare.model}):")
        lines += [f"{h.rank:>3} {h.score:.3f} {h.doc_id:<14} {_one_line(h.text)}" for h in results.compare.hits]
    return "\n".join(lines)


def _one_line(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@click.command("export")
@project_dir
@click.argument("run")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--adapter",
    type=click.Choice(["merge", "keep"]),
    default="merge",
    show_default=True,
    help="A LoRA run: merge into full weights, or keep the adapter alone (needs its base model to load).",
)
@json_option
@handles_errors
def export_model_cmd(directory: Path, run: str, dest: Path, adapter: str, as_json: bool) -> None:
    """Write RUN's model to DEST (safetensors + a model card with lineage and evaluation); DEST must be new."""
    from engine.models.export import export_model

    result = export_model(open_project(directory), run, dest, adapter)
    emit(
        as_json,
        result,
        f"Exported {result['model']} to {result['dest']} ({len(result['files'])} files); "
        f"load it with SentenceTransformer({result['dest']!r}).",
    )
