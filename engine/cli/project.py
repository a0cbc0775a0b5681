"""`embtune init | import | status | open`: create a project, import data into it, count it, open the TUI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from engine.cli._common import (
    ProgressBar,
    emit,
    handles_errors,
    json_option,
    project_dir,
    run_tui,
    status_counts,
    summary_line,
)
from engine.project import Project, init_project, open_project


@click.command()
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
    imported: list[dict[str, Any]] = []

    def import_template_sources(project: Project) -> None:
        # Runs inside init's temporary folder: a failed import leaves no project behind.
        if source is not None and project.config.data.sources:
            from engine.ingest.importing import import_sources

            with ProgressBar() as bar:
                imported.extend(import_sources(project, source.resolve(), project.config.data.sources, bar))

    project = init_project(directory, name=name, template=source, populate=import_template_sources)
    summary = summary_line(project)
    emit(
        as_json,
        {"project": str(project.root), "imports": imported, **status_counts(project)},
        f"Created {project.root}\n{summary}\nOpen it with: embtune open {directory}",
    )


@click.command("import")
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
@click.option("--strict", is_flag=True, help="Fail, importing nothing, if any file or row would be skipped.")
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
    strict: bool,
    as_json: bool,
) -> None:
    """Import data into a project. Each import is one transaction: all of it or nothing."""
    from engine.ingest import importing

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
    with ProgressBar() as bars:
        if beir:
            result = importing.import_beir(project, beir, bars, strict=strict)
        elif pairs:
            result = importing.import_pairs(project, pairs, split, bars, strict=strict)
        elif docs:
            result = importing.import_docs(project, docs, chunking, bars, strict=strict)
        else:
            assert queries is not None
            assert tag is not None
            result = importing.import_queries(project, queries, tag, bars, strict=strict)
    added = result["added"]
    text = (
        "Imported " + ", ".join(f"{n} {k}" for k, n in added.items() if n)
        if any(added.values())
        else ("Nothing new: everything in this input is already in the project.")
    )
    notes = "".join(f"\nnote: {n}" for n in result["notes"])
    skipped = "".join(f"\n{line}" for line in importing.skipped_lines(result["skipped"]))
    emit(as_json, result, text + notes + skipped + "\n" + summary_line(project))


@click.command()
@project_dir
@json_option
@handles_errors
def status(directory: Path, as_json: bool) -> None:
    """Counts per table and split."""
    from engine.jobs.launcher import reap_stale

    project = open_project(directory)
    reap_stale(project)  # runs whose process is gone are counted as interrupted, not running
    counts = status_counts(project)
    if as_json:
        emit(True, counts, "")
        return
    click.echo(f"{project.config.name}  ({project.root})")
    click.echo(f"  base model   {project.config.base_model}")
    for key in ("documents", "chunks", "pairs", "negatives", "runs"):
        click.echo(f"  {key:<12} {counts[key]:>8,}")
    click.echo("  queries      " + "  ".join(f"{s} {n:,}" for s, n in counts["queries"].items()))
    click.echo("  pairs        " + "  ".join(f"{s} {n:,}" for s, n in counts["pairs_by_split"].items() if n))


@click.command("open")
@project_dir
@handles_errors
def open_(directory: Path) -> None:
    """Open the TUI on a project."""
    project = open_project(directory)
    root = project.root
    project.close()
    run_tui(root)
