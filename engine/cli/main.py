"""`embtune`: the command group. Each stage's commands live in a module of this package and are added here.

Nothing heavy is imported at module level: `embtune --help` and `embtune status` must stay well under a second.
"""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli import data, evaluate, gate, index, project, train
from engine.cli._common import EXIT_BAD_INPUT, JsonErrorsGroup, run_tui
from engine.project import find_project


@click.group(cls=JsonErrorsGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
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
        run_tui(root)


for command in (
    project.init,
    project.import_,
    project.status,
    project.open_,
    gate.gate,
    gate.reranker,
    data.mine,
    data.export_pairs,
    data.check,
    train.train,
    train.runs,
    train.cancel,
    train.resume,
    train.logs,
    train.merge,
    evaluate.eval_,
    index.index,
    index.search,
    index.export_model_cmd,
):
    main.add_command(command)
