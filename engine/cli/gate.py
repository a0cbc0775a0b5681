"""`embtune gate` and `embtune reranker train`: should this project fine-tune at all, and the re-ranker it weighs."""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli._common import ProgressBar, emit, handles_errors, json_option, project_dir
from engine.project import open_project


@click.command()
@project_dir
@click.option("--arms", help="Comma-separated subset: base, expansion, chunking[:NAME], hybrid, rerank (default: all).")
@json_option
@handles_errors
def gate(directory: Path, arms: str | None, as_json: bool) -> None:
    """Should this project fine-tune at all? Base vs re-ranking vs expansion vs chunking, with a verdict."""
    from engine.gate.run import run_gate
    from engine.gate.text import render_report

    project = open_project(directory)
    with ProgressBar() as bars:
        report = run_gate(project, bars, set(arms.split(",")) if arms else None)
    emit(as_json, report.to_json(), render_report(report))


@click.group()
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
    from engine.train.reranker import RerankerSettings, train_reranker

    project = open_project(directory)
    settings = RerankerSettings(
        epochs=epochs, batch_size=batch_size, max_steps=max_steps, negatives_per_pair=negatives_per_pair
    )
    with ProgressBar() as bars:
        result = train_reranker(project, settings, bars)
    emit(
        as_json,
        result,
        f"Trained re-ranker (run {result['run_id']}): {result['model_path']} — "
        f"{result['examples']:,} examples, negatives: {result['negatives']}, {result['steps']} steps, "
        f"{result['seconds']} s. `embtune gate` uses it unless project.yaml names a reranker.",
    )
