"""The keys active on a screen, read from its BINDINGS: the one source for footer, help and palette."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field

from textual.dom import DOMNode
from textual.screen import Screen


@dataclass
class KeyCommand:
    action: str
    description: str
    tooltip: str
    node: DOMNode
    enabled: bool
    id: str | None  # embtune's own bindings have one (Posting's convention); Textual's inherited ones do not
    keys: list[str] = field(default_factory=list)  # as displayed: "?", "f1", "^p"

    def run(self) -> Awaitable[bool]:
        return self.node.app.run_action(self.action, self.node)


@dataclass
class KeyGroup:
    title: str
    commands: list[KeyCommand]


def group_title(node: DOMNode) -> str:
    return getattr(node, "BINDING_GROUP_TITLE", None) or type(node).__name__


def key_groups(screen: Screen) -> list[KeyGroup]:
    """Bindings active on `screen` (focused widget, screen, app) with a description, one entry per action with
    all its keys, grouped by the node that defines them: the most specific group first, the app's last."""
    commands: dict[tuple[int, str, str], KeyCommand] = {}
    for active in screen.active_bindings.values():
        binding = active.binding
        if binding.system or not binding.description:
            continue
        # one entry per action and description: quit('q') and quit are one "Quit", move(1) and move(-1) are two
        slot = (id(active.node), binding.action.partition("(")[0], binding.description)
        if slot not in commands:
            tooltip, node = active.tooltip or "", active.node
            commands[slot] = KeyCommand(binding.action, binding.description, tooltip, node, active.enabled, binding.id)
        commands[slot].keys.append(screen.app.get_key_display(binding))
    groups: dict[int, KeyGroup] = {}
    for command in commands.values():
        node = command.node
        groups.setdefault(id(node), KeyGroup(group_title(node), [])).commands.append(command)
    for group in groups.values():
        group.commands.sort(key=lambda c: c.id is None)  # our own keys first, Textual's generic ones after
    return list(groups.values())


def target(command: KeyCommand) -> tuple[DOMNode, str]:
    """Where an action runs and its bare name: `app.quit` bound on a screen is the app's `quit`."""
    namespace, _, name = command.action.partition("(")[0].rpartition(".")
    if namespace == "app":
        return command.node.app, name
    if namespace == "screen":
        return command.node.screen, name
    return command.node, name
