"""`embtune eval`: base vs tuned models on held-out queries, headless (registered on engine.cli.main.main)."""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli._common import ProgressBar, emit, handles_errors, json_option, project_dir
from engine.project import open_project


@click.command("eval")
@project_dir
@click.option(
    "--models",
    help="Comma-separated: base, a training run id (7 or run-7) or a model folder "
    "(default: base and the newest trained model).",
)
@click.option(
    "--split",
    type=click.Choice(["test", "dev", "gate", "general"]),
    help="Queries to measure on (default: evaluation.split in project.yaml, 'test').",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report: FILE.md (Markdown) or FILE.json.",
)
@click.option(
    "--allow-leakage", is_flag=True, help="Evaluate even when evaluation queries or pairs repeat training ones."
)
@json_option
@handles_errors
def eval_(
    directory: Path, models: str | None, split: str | None, report_path: Path | None, allow_leakage: bool, as_json: bool
) -> None:
    """Base vs tuned models: metrics with intervals, verdicts, per-query changes, general-query regression.

    Fails (exit 2) when evaluation queries or pairs were seen in training, unless --allow-leakage."""
    from engine.evaluate.report import render_text, write_report
    from engine.evaluate.results import load_eval_result
    from engine.evaluate.run import run_eval

    project = open_project(directory)
    with ProgressBar() as bars:
        report = run_eval(project, models.split(",") if models else None, split, allow_leakage, bars)
    result = report.to_json()
    if report_path is not None:
        stored = load_eval_result(project, report.run_id)
        write_report(report_path, result, stored.changed() if stored else None)
        click.echo(f"report written to {report_path}", err=True)
    emit(as_json, result, render_text(result))
