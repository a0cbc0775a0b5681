"""The embtune TUI: one App over an open project; screens render engine results, never run SQL or models."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Input, TextArea

from engine.config import ConfigError
from engine.project import ProjectError
from tui.commands import BindingCommands
from tui.jobs import Job
from tui.keys import group_title, key_groups
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.home import HomeScreen
from tui.session import Session

TEXT_FIELDS = (Input, TextArea)
QUIT_TOOLTIP = "Leave embtune (ctrl+q while typing in a field); detached runs keep going"


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
        # `q` on every screen, dialogs included (priority), except where a text field has focus and takes the
        # letter (check_action); ctrl+q always
        Binding("q", "quit('q')", "Quit", tooltip=QUIT_TOOLTIP, priority=True, id="quit"),
        Binding("ctrl+q", "quit", "Quit", tooltip=QUIT_TOOLTIP, show=False, priority=True, id="quit-anywhere"),
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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # `q` (the quit action with a parameter) is off while a text field has focus: the letter goes to the field
        return not (action == "quit" and parameters and isinstance(self.focused, TEXT_FIELDS))

    async def action_quit(self, key: str = "") -> None:
        """Quit at once, unless a job runs in this window (a gate, mining, evaluation, index build in a thread):
        then ask first, since quitting stops it. Detached training and builds run on after the app is gone."""
        jobs = [screen.job.text.name for screen in self.screen_stack if _running_job(screen)]
        if not jobs or isinstance(self.screen, QuitScreen):  # q on the question confirms it
            self.exit()
            return
        self.push_screen(QuitScreen(jobs), callback=lambda yes: self.exit() if yes else None)

    def on_unmount(self) -> None:
        self.session.close()


def _running_job(screen: Screen[object]) -> bool:
    job = getattr(screen, "job", None)
    return isinstance(job, Job) and job.running


class QuitScreen(ConfirmScreen):
    """The quit confirmation while a job runs in this window; `q` again confirms it."""

    BINDING_GROUP_TITLE = "Quit"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "yes", "Quit", tooltip="Quit and stop the job (q also)", id="quit-yes"),
        Binding("n,escape", "no", "Stay", tooltip="Keep the job running", id="quit-no"),
    ]

    def __init__(self, jobs: list[str]) -> None:
        names = " and ".join(dict.fromkeys(jobs))
        super().__init__(
            f"Quit embtune and stop the running {names}?",
            "It runs inside this window, so quitting stops it and keeps nothing it did. Detached training runs "
            "and builds started with the CLI keep going.",
        )


def run_app(root: Path) -> None:
    try:
        app = EmbtuneApp(root)
    except (ProjectError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    app.run()
