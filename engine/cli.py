"""`embtune` command line. Headless commands print text or, with --json, one JSON object on stdout.

Nothing heavy is imported at module level: `embtune --help` and `embtune status` must stay well under a second.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from engine.config import ConfigError
from engine.project import Project, ProjectError, find_project, init_project, open_project
from engine.readers import InputError

EXIT_BAD_INPUT = 2
USER_ERRORS: tuple[type[Exception], ...] = (InputError, ConfigError, ProjectError)


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(payload, indent=2) if as_json else text)


def handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known user errors into a clear message and exit status 2 (JSON on stdout with --json)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (*USER_ERRORS, *_lazy_user_errors()) as e:
            if kwargs.get("as_json"):
                click.echo(json.dumps({"error": str(e)}))
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


def _lazy_user_errors() -> tuple[type[Exception], ...]:
    """User errors of modules that are imported only by the commands that need them."""
    out: list[type[Exception]] = []
    lazy = (
        ("engine.gate", "GateError"),
        ("engine.models", "ModelNotFoundError"),
        ("engine.reranker", "RerankerError"),
        ("engine.mining", "MiningError"),
        ("engine.evaluation", "EvalError"),
        ("engine.training", "TrainingError"),
        ("engine.jobs", "JobError"),
        ("engine.indexing", "IndexingError"),
        ("engine.model_export", "ExportError"),
        ("engine.model_ref", "ModelRefError"),
    )
    for module, name in lazy:
        if module in sys.modules:
            out.append(getattr(sys.modules[module], name))
    return tuple(out)


class ProgressBars:
    """A click progress bar per stage on stderr, so stdout stays clean for --json."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar: Any = None
        self.done = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return  # no bar in logs and pipes
        if stage != self.stage:
            self.close()
            self.stage, self.done = stage, 0
            self.bar = click.progressbar(length=total, label=f"  {stage:<10}", file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


project_dir = click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="embtune")
@click.pass_context
def main(ctx: click.Context) -> None:
    """embtune: find out whether fine-tuning your embedding model is worth it, then do it.

    Run with no command inside a project folder to open the TUI.
    """
    if ctx.invoked_subcommand is None:
        root = find_project(Path.cwd())
        if root is None:
            click.echo(ctx.get_help())
            click.secho("\nNo project.yaml here or above; create one with `embtune init DIR`.", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        _run_tui(root)


@main.command()
@project_dir
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder with a project.yaml whose data.sources are imported (e.g. sample_project/).",
)
@click.option("--name", help="Project name (default: the folder's name).")
@json_option
@handles_errors
def init(directory: Path, source: Path | None, name: str | None, as_json: bool) -> None:
    """Create a project folder (project.yaml, project.db, lancedb/)."""
    project = init_project(directory, name=name, template=source)
    imported: list[dict[str, Any]] = []
    if source is not None and project.config.data.sources:
        from engine.importing import import_sources

        bars = ProgressBars()
        try:
            imported = import_sources(project, source.resolve(), project.config.data.sources, bars)
        except USER_ERRORS:
            bars.close()
            raise
        bars.close()
    summary = _summary_line(project)
    _emit(
        as_json,
        {"project": str(project.root), "imports": imported, **_status(project)},
        f"Created {project.root}\n{summary}\nOpen it with: embtune open {directory}",
    )


@main.command("import")
@project_dir
@click.option(
    "--beir", type=click.Path(path_type=Path), help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/*.tsv."
)
@click.option(
    "--pairs",
    type=click.Path(path_type=Path),
    help="Pairs: JSONL {query, positive[, negative][, split]}, FlagEmbedding {query, pos, neg} or CSV.",
)
@click.option("--split", help="Split for every pair in --pairs (default: the file's, else split by document).")
@click.option("--docs", type=click.Path(path_type=Path), help="A folder of .txt/.md documents to chunk.")
@click.option("--chunking", help="Chunking strategy name from project.yaml for --docs.")
@click.option(
    "--queries", type=click.Path(path_type=Path), help="Queries JSONL {_id?, text, relevant?: [doc ids]}; needs --tag."
)
@click.option("--tag", type=click.Choice(["gate", "general", "test", "train", "dev"]), help="Split/tag for --queries.")
@json_option
@handles_errors
def import_(
    directory: Path,
    beir: Path | None,
    pairs: Path | None,
    split: str | None,
    docs: Path | None,
    chunking: str | None,
    queries: Path | None,
    tag: str | None,
    as_json: bool,
) -> None:
    """Import data into a project. Each import is one transaction: all of it or nothing."""
    from engine import importing

    chosen = [
        name
        for name, value in (("--beir", beir), ("--pairs", pairs), ("--docs", docs), ("--queries", queries))
        if value
    ]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --beir, --pairs, --docs, --queries")
    if queries and not tag:
        raise click.UsageError("--queries needs --tag gate|general|test|train|dev")
    project = open_project(directory)
    bars = ProgressBars()
    try:
        if beir:
            result = importing.import_beir(project, beir, bars)
        elif pairs:
            result = importing.import_pairs(project, pairs, split, bars)
        elif docs:
            result = importing.import_docs(project, docs, chunking, bars)
        else:
            assert queries is not None
            assert tag is not None
            result = importing.import_queries(project, queries, tag, bars)
    finally:
        bars.close()
    added = result["added"]
    text = (
        "Imported " + ", ".join(f"{n} {k}" for k, n in added.items() if n)
        if any(added.values())
        else ("Nothing new: everything in this input is already in the project.")
    )
    notes = "".join(f"\nnote: {n}" for n in result["notes"])
    _emit(as_json, result, text + notes + "\n" + _summary_line(project))


@main.command()
@project_dir
@json_option
@handles_errors
def status(directory: Path, as_json: bool) -> None:
    """Counts per table and split."""
    project = open_project(directory)
    counts = _status(project)
    if as_json:
        _emit(True, counts, "")
        return
    click.echo(f"{project.config.name}  ({project.root})")
    click.echo(f"  base model   {project.config.base_model}")
    for key in ("documents", "chunks", "pairs", "negatives", "runs"):
        click.echo(f"  {key:<12} {counts[key]:>8,}")
    click.echo("  queries      " + "  ".join(f"{s} {n:,}" for s, n in counts["queries"].items()))
    click.echo("  pairs        " + "  ".join(f"{s} {n:,}" for s, n in counts["pairs_by_split"].items() if n))


@main.command()
@project_dir
@click.option("--arms", help="Comma-separated subset: base, expansion, chunking[:NAME], hybrid, rerank (default: all).")
@json_option
@handles_errors
def gate(directory: Path, arms: str | None, as_json: bool) -> None:
    """Should this project fine-tune at all? Base vs re-ranking vs expansion vs chunking, with a verdict."""
    from engine.gate import run_gate
    from engine.gate_text import render_report

    project = open_project(directory)
    bars = ProgressBars()
    try:
        report = run_gate(project, bars, set(arms.split(",")) if arms else None)
    finally:
        bars.close()
    _emit(as_json, report.to_json(), render_report(report))


@main.group()
def reranker() -> None:
    """Cross-encoder re-rankers for the gate."""


@reranker.command("train")
@project_dir
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option(
    "--negatives",
    "negatives_per_pair",
    type=int,
    default=1,
    show_default=True,
    help="Negatives per training pair (mined ones when present, else dense negatives).",
)
@json_option
@handles_errors
def reranker_train(
    directory: Path, epochs: int, batch_size: int, max_steps: int | None, negatives_per_pair: int, as_json: bool
) -> None:
    """Train a domain cross-encoder on the project's training pairs (base model's encoder + a new head)."""
    from engine.reranker import RerankerSettings, train_reranker

    project = open_project(directory)
    settings = RerankerSettings(
        epochs=epochs, batch_size=batch_size, max_steps=max_steps, negatives_per_pair=negatives_per_pair
    )
    bars = ProgressBars()
    try:
        result = train_reranker(project, settings, bars)
    finally:
        bars.close()
    _emit(
        as_json,
        result,
        f"Trained re-ranker (run {result['run_id']}): {result['model_path']} — "
        f"{result['examples']:,} examples, negatives: {result['negatives']}, {result['steps']} steps, "
        f"{result['seconds']} s. `embtune gate` uses it unless project.yaml names a reranker.",
    )


@main.command()
@project_dir
@json_option
@handles_errors
def mine(directory: Path, as_json: bool) -> None:
    """Mine hard negatives for the train pairs with the base model (settings: `mining:` in project.yaml)."""
    from engine.mining import mine_negatives, render_summary

    project = open_project(directory)
    bars = ProgressBars()
    try:
        summary = mine_negatives(project, bars)
    finally:
        bars.close()
    _emit(as_json, summary, render_summary(summary))


@main.command("export-pairs")
@project_dir
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["st", "flag", "csv"]),
    required=True,
    help="st: JSONL {anchor, positive[, negative]}; flag: FlagEmbedding {query, pos, neg}; "
    "csv: query,positive[,negative].",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Output file (default: stdout).")
@click.option(
    "--split", default="train", show_default=True, type=click.Choice(["train", "dev", "test", "gate", "general"])
)
@json_option
@handles_errors
def export_pairs(directory: Path, fmt: str, out: Path | None, split: str, as_json: bool) -> None:
    """Export the training set as reviewed: rejected pairs and negatives left out, edited passages in."""
    from engine.export import export_pairs as export

    if as_json and out is None:
        raise click.UsageError("--json prints the summary on stdout, so it needs --out FILE for the data")
    project = open_project(directory)
    if out is None:
        counts = export(project.db, fmt, sys.stdout, split)
        click.echo(_export_line(counts, "stdout"), err=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        counts = export(project.db, fmt, handle, split)
    partial.replace(out)  # a reader never sees half a file
    _emit(as_json, {**counts, "out": str(out)}, _export_line(counts, str(out)))


def _export_line(counts: dict[str, Any], where: str) -> str:
    line = (
        f"Wrote {counts['rows']:,} {counts['format']} rows ({counts['pairs']:,} {counts['split']} pairs, "
        f"{counts['queries']:,} queries, {counts['negatives']:,} negatives) to {where}; review left out "
        f"{counts['rejected_pairs']:,} rejected pairs, {counts['rejected_negatives']:,} rejected and "
        f"{counts['false_negatives']:,} false negatives; {counts['edited_pairs']:,} passages edited"
    )
    if counts["rows_without_negative"]:
        line += (
            f"\nnote: {counts['rows_without_negative']:,} rows have no negative (run `embtune mine`; "
            "sentence-transformers needs the same columns in every row)"
        )
    return line


@main.command()
@project_dir
@click.option("--allow-leakage", is_flag=True, help="Report train/eval leakage as a warning instead of failing.")
@json_option
@handles_errors
def check(directory: Path, allow_leakage: bool, as_json: bool) -> None:
    """Data checks before training: duplicates, train/eval leakage, in-batch repeats, pair counts.

    Exits 1 when a check fails (leakage, unless --allow-leakage), else 0."""
    from engine.checks import render_report, run_checks

    report = run_checks(open_project(directory), allow_leakage=allow_leakage)
    _emit(as_json, report.to_json(), render_report(report))
    sys.exit(report.exit_code)


@main.command("open")
@project_dir
@handles_errors
def open_(directory: Path) -> None:
    """Open the TUI on a project."""
    project = open_project(directory)
    root = project.root
    project.close()
    _run_tui(root)


def _run_tui(root: Path) -> None:
    from tui.app import run_app  # textual only when the TUI is wanted

    run_app(root)


def _status(project: Project) -> dict[str, Any]:
    from engine.store.queries import status_counts

    return status_counts(project.db)


def _summary_line(project: Project) -> str:
    c = _status(project)
    q = c["queries"]
    return (
        f"Project now holds {c['documents']:,} documents, {c['chunks']:,} chunks, {c['pairs']:,} pairs; "
        f"queries: train {q['train']:,}, test {q['test']:,}, gate {q['gate']:,}, general {q['general']:,}"
    )


# Each area registers its commands on `main` when imported.
from engine import (  # noqa: E402
    cli_eval,  # noqa: F401
    cli_index,  # noqa: F401
    cli_train,  # noqa: F401
)
