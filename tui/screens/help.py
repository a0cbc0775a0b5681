"""`?`: every key active on the screen that opened help, generated from its bindings (never hand-written)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label

from tui.keys import KeyCommand, KeyGroup
from tui.widgets.footer import KeyFooter

KEY_WIDTH = 14


def help_line(command: KeyCommand) -> str:
    tooltip = f" — {command.tooltip}" if command.tooltip else ""
    return f"{', '.join(command.keys):<{KEY_WIDTH}} {command.description}{tooltip}"


class HelpScreen(ModalScreen[None]):
    BINDING_GROUP_TITLE = "Help"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark", "dismiss", "Close", tooltip="Close the help", id="close-help"),
    ]

    def __init__(self, groups: list[KeyGroup], opener: str) -> None:
        super().__init__()
        self.groups = groups
        self.opener = opener

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = f"Keys · {self.opener}"
            for group in self.groups:
                yield Label(group.title, classes="group")
                for command in group.commands:
                    dim = "" if command.enabled else " -disabled"
                    yield Label(help_line(command), classes=f"key{dim}", markup=False)
        yield KeyFooter()
