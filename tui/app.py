"""The embtune TUI: one App over an open project; screens render engine results, never run SQL or models."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from engine.config import ConfigError
from engine.project import ProjectError
from tui.commands import BindingCommands
from tui.keys import group_title, key_groups
from tui.screens.help import HelpScreen
from tui.screens.home import HomeScreen
from tui.session import Session


class EmbtuneApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "embtune"
    BINDING_GROUP_TITLE = "Global"
    COMMANDS = App.COMMANDS | {BindingCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help", tooltip="Every key of this screen", id="help"),
        Binding(
            "ctrl+p",
            "command_palette",
            "Commands",
            tooltip="Search the commands of this screen",
            show=False,
            priority=True,
            id="palette",
        ),
        Binding("ctrl+q", "quit", "Quit", tooltip="Leave embtune", show=False, priority=True, id="quit"),
        Binding("ctrl+c", "help_quit", show=False, system=True),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        # Opening is cheap (config + migrations) and fails here, before the terminal is taken over.
        self.session = Session.open(root)

    def get_default_screen(self) -> Screen[None]:
        return HomeScreen(self.session)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own commands (theme, keys panel, screenshot) minus those the bindings already offer."""
        offered = {command.description for group in key_groups(screen) for command in group.commands}
        return (command for command in super().get_system_commands(screen) if command.title not in offered)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(key_groups(self.screen), group_title(self.screen)))

    def on_unmount(self) -> None:
        self.session.close()


def run_app(root: Path) -> None:
    try:
        app = EmbtuneApp(root)
    except (ProjectError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    app.run()
