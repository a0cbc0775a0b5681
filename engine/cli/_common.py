"""What every `embtune` command shares: the project argument, --json, exit status 2 for user errors, one
progress bar, and the project summary lines.

Nothing heavy is imported here: `embtune --help` and `embtune status` must stay well under a second.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from engine.errors import EmbtuneError
from engine.project import Project

EXIT_BAD_INPUT = 2

project_dir = click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


def emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    """One JSON object on stdout with --json, else the text."""
    click.echo(json.dumps(payload, indent=2) if as_json else text)


def handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a user error (any EmbtuneError) into its message and exit status 2 (JSON on stdout with --json)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EmbtuneError as e:
            if kwargs.get("as_json"):
                click.echo(json.dumps({"error": str(e)}))
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


class JsonErrorsGroup(click.Group):
    """The root group: click's own usage errors (a missing argument, a file where a folder belongs) also print
    `{"error": …}` on stdout when the command line asks for --json, so a script always gets JSON back."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        extra.pop("standalone_mode", None)
        try:
            result = super().main(argv, prog_name, standalone_mode=False, **extra)
        except click.ClickException as e:
            if "--json" in argv:
                click.echo(json.dumps({"error": e.format_message()}))
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


class ProgressBar:
    """A progress bar per stage on stderr (done/total, rate, ETA), so stdout stays clean for --json; silent when
    stderr is no terminal (logs, pipes). Use it as the engine's progress callback, and as a context manager so the
    bar is closed on errors too."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar: Any = None
        self.done = 0
        self.started = 0.0

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        if stage != self.stage:
            self.close()
            self.stage, self.done, self.started = stage, 0, time.monotonic()
            self.bar = click.progressbar(
                length=max(total, 1),
                label=f"  {stage:<14}",
                file=sys.stderr,
                show_pos=True,
                show_eta=True,
                item_show_func=self._rate,
            )
            self.bar.__enter__()
        self.bar.update(done - self.done, current_item=done)
        self.done = done

    def _rate(self, done: int | None) -> str:
        elapsed = time.monotonic() - self.started
        return f"{(done or 0) / elapsed:,.1f}/s" if done and elapsed > 0 else ""

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def status_counts(project: Project) -> dict[str, Any]:
    from engine.store.queries import status_counts as counts

    return counts(project.db)


def summary_line(project: Project) -> str:
    c = status_counts(project)
    q = c["queries"]
    return (
        f"Project now holds {c['documents']:,} documents, {c['chunks']:,} chunks, {c['pairs']:,} pairs; "
        f"queries: train {q['train']:,}, test {q['test']:,}, gate {q['gate']:,}, general {q['general']:,}"
    )


def run_tui(root: Path) -> None:
    """The CLI's one way into the TUI (declared in pyproject's import contracts): textual only when wanted."""
    from tui.app import run_app

    run_app(root)
