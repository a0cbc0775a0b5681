"""Command palette entries built from the calling screen's bindings: the palette and the keys never drift."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from tui.keys import KeyCommand, key_groups, target

NOT_IN_PALETTE = frozenset({"command_palette"})


@dataclass
class PaletteCommand:
    title: str
    help: str
    run: Callable[[], Awaitable[bool]]


def palette_commands(screen: Screen) -> list[PaletteCommand]:
    """embtune's own enabled bindings on `screen` (those with an id), one entry per action whatever key or
    node binds it: `q` on a screen and `ctrl+q` on the app are one "Quit"."""
    merged: dict[tuple[int, str], tuple[KeyCommand, list[str]]] = {}
    for group in key_groups(screen):
        for command in group.commands:
            node, name = target(command)
            if command.id is None or not command.enabled or name in NOT_IN_PALETTE:
                continue
            merged.setdefault((id(node), name), (command, []))[1].extend(command.keys)
    return [_entry(command, keys) for command, keys in merged.values()]


def _entry(command: KeyCommand, keys: list[str]) -> PaletteCommand:
    shortcut = ", ".join(keys)
    help_text = f"{command.tooltip} ({shortcut})" if command.tooltip else shortcut
    return PaletteCommand(command.description, help_text, command.run)


class BindingCommands(Provider):
    async def discover(self) -> Hits:
        for command in palette_commands(self.screen):
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in palette_commands(self.screen):
            if (score := matcher.match(command.title)) > 0:
                yield Hit(score, matcher.highlight(command.title), command.run, help=command.help)
