"""`embtune mine | export-pairs | check`: the training data — hard negatives, the reviewed set, checks before
training."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

import click

from engine.cli._common import ProgressBar, emit, handles_errors, json_option, project_dir
from engine.errors import EmbtuneError
from engine.project import open_project


@click.command()
@project_dir
@json_option
@handles_errors
def mine(directory: Path, as_json: bool) -> None:
    """Mine hard negatives for the train pairs with the base model (settings: `mining:` in project.yaml)."""
    from engine.data.mining import mine_negatives, render_summary

    project = open_project(directory)
    with ProgressBar() as bars:
        summary = mine_negatives(project, bars)
    emit(as_json, summary, render_summary(summary))


@click.command("export-pairs")
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
    from engine.data.pair_export import export_pairs as export

    if as_json and out is None:
        raise click.UsageError("--json prints the summary on stdout, so it needs --out FILE for the data")
    project = open_project(directory)
    if out is None:
        counts = export(project.db, fmt, sys.stdout, split)
        click.echo(_export_line(counts, "stdout"), err=True)
        return
    handle = _open_partial(out)
    partial = Path(handle.name)
    try:
        with handle:
            counts = export(project.db, fmt, handle, split)
        partial.replace(out)  # a reader never sees half a file
    except BaseException:
        partial.unlink(missing_ok=True)  # ours: created exclusively under a fresh name
        raise
    emit(as_json, {**counts, "out": str(out)}, _export_line(counts, str(out)))


def _open_partial(out: Path) -> TextIO:
    """A new file beside OUT under a fresh name, created exclusively ("x", with the usual permissions), so a
    user's own OUT.partial is never overwritten or moved."""
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return partial.open("x", encoding="utf-8", newline="")
    except OSError as e:
        raise EmbtuneError(f"cannot write {out}: {e.strerror}") from e


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


@click.command()
@project_dir
@click.option("--allow-leakage", is_flag=True, help="Report train/eval leakage as a warning instead of failing.")
@json_option
@handles_errors
def check(directory: Path, allow_leakage: bool, as_json: bool) -> None:
    """Data checks before training: duplicates, train/eval leakage, in-batch repeats, pair counts.

    Exits 1 when a check fails (leakage, unless --allow-leakage), else 0."""
    from engine.data.checks import render_report, run_checks

    report = run_checks(open_project(directory), allow_leakage=allow_leakage)
    emit(as_json, report.to_json(), render_report(report))
    sys.exit(report.exit_code)
