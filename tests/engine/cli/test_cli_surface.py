"""The command line a user scripts against stays put: every command, its options (names, types, defaults, flags)
and its --help text equal the 0.1.0 release's, dumped in cli_surface_0.1.0.json. A deliberate change re-dumps it
(`python -c "from tests.engine.cli.test_cli_surface import dump; dump()"`) and says so in the changelog."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import click
import pytest

from engine.cli.main import main

RELEASED = Path(__file__).with_name("cli_surface_0.1.0.json")
# Deliberate additions since the release (command path → option names), left out when comparing with it; the
# next release's dump includes them and empties this.
ADDED_SINCE_RELEASE: dict[str, set[str]] = {
    # allow_parallel: one active training run per project unless asked (#14); the recipe's switches, the watch
    # budget and the pre-flight without a run (#16)
    "embtune train": {
        "allow_parallel",
        "negatives",
        "watch",
        "dry_run",
        "adapter",
        "gradient_checkpointing",
        "auto_batch",
    },
    "embtune export": {"adapter"},  # a LoRA run merged into full weights or shipped as the adapter (#17)
    "embtune import": {"strict"},  # any skipped file or row is an error (#14)
    "embtune": {"merge"},  # a subcommand: LM-Cocktail merge of base and tuned weights (#16)
    "embtune index": {"use", "plan"},  # use: any table live (#18); plan: index types and compressions measured (#19)
    # encoding in N processes or on several devices; on a Ray cluster's actors (#19)
    "embtune index build": {"processes", "devices", "engine", "address", "actors"},
}
# Help texts corrected on purpose since the release (their options are still compared).
HELP_CHANGED_SINCE_RELEASE = {
    "embtune index": "rollback's one-line summary: back to the table live before, not the one built before (#18)",
    "embtune index rollback": "the same correction (#18)",
    "embtune index list": "it shows the live index's history too (#18)",
}


def surface(
    command: click.Command, name: str, parent: click.Context | None = None, leave_out: dict[str, set[str]] | None = None
) -> dict[str, Any]:
    """{'embtune index build': {'help': …, 'params': […]}, …} for a command and every subcommand under it, without
    the options named in `leave_out` (in its params and its help)."""
    # As click builds it for `--help` (the group's context settings, inherited by subcommands), at a fixed width:
    # click wraps help to the terminal's, which differs between a terminal, CI and xdist workers.
    settings = {**command.context_settings, "terminal_width": 80, "max_content_width": 80}
    ctx = click.Context(command, parent=parent, info_name=name, **settings)
    left_out = (leave_out or {}).get(ctx.command_path, set())
    if left_out:
        command = copy.copy(command)  # the released command: the same, without the added options and commands
        command.params = [p for p in command.params if p.name not in left_out]
        if isinstance(command, click.Group):
            command.commands = {k: v for k, v in command.commands.items() if k not in left_out}
        ctx = click.Context(command, parent=parent, info_name=name, **settings)
    out = {
        ctx.command_path: {
            "help": command.get_help(ctx),
            "params": [
                {
                    "name": p.name,
                    "opts": sorted(p.opts + p.secondary_opts),
                    "kind": type(p).__name__,
                    "type": p.type.name,
                    "required": p.required,
                    "multiple": p.multiple,
                    "is_flag": getattr(p, "is_flag", False),
                    "default": "callable" if callable(p.default) else repr(p.default),
                }
                for p in command.params
            ],
        }
    }
    if isinstance(command, click.Group):
        for sub_name, sub in sorted(command.commands.items()):
            out.update(surface(sub, sub_name, ctx, leave_out))
    return out


def dump() -> None:
    RELEASED.write_text(json.dumps(surface(main, "embtune"), indent=1, sort_keys=True))


def test_every_released_command_is_still_there_with_the_same_options_and_help() -> None:
    released = json.loads(RELEASED.read_text())
    now = surface(main, "embtune", leave_out=ADDED_SINCE_RELEASE)
    assert sorted(now) == sorted(released)
    for name, before in released.items():
        assert now[name]["params"] == before["params"], name
        if name not in HELP_CHANGED_SINCE_RELEASE:
            assert now[name]["help"] == before["help"], name


def test_every_addition_since_the_release_is_there_and_new() -> None:
    released = json.loads(RELEASED.read_text())
    now = surface(main, "embtune")
    for name, added in ADDED_SINCE_RELEASE.items():
        new = {p["name"] for p in now[name]["params"]} | {n.removeprefix(f"{name} ") for n in now}
        old = {p["name"] for p in released[name]["params"]} | {n.removeprefix(f"{name} ") for n in released}
        assert added <= new, name
        assert not added & old, f"{name}: released already"


@pytest.mark.parametrize("name", sorted(json.loads(RELEASED.read_text())))
def test_every_command_is_documented_in_the_readme(name: str) -> None:
    """sqlite-utils' test_docs idea: a command the README does not name is a command nobody finds."""
    readme = Path(__file__).resolve().parents[3].joinpath("README.md").read_text()
    words = name.split()[1:]
    if not words:
        return
    assert f"embtune {' '.join(words)}" in readme or (words[0] == "index" and "embtune index" in readme), name
