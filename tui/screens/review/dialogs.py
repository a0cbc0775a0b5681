"""Review dialogs: edit a passage (in a text area, or in $EDITOR with the app suspended) and filter the queue."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Select, TextArea

from engine.data.review import QueueFilter
from tui.widgets.footer import KeyFooter

ANY = "any"


class EditScreen(ModalScreen[str | None]):
    """The passage in a text area; ctrl+s keeps the text, escape leaves it as it was."""

    BINDING_GROUP_TITLE = "Edit passage"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", tooltip="Keep this text as the pair's passage", id="edit-save"),
        Binding("escape", "cancel", "Cancel", tooltip="Leave the passage as it was", id="edit-cancel"),
    ]

    def __init__(self, text: str, title: str) -> None:
        super().__init__()
        self.text = text
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-passage") as box:
            box.border_title = self.title_text
            yield TextArea(self.text, id="edit-text", soft_wrap=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_save(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    def action_cancel(self) -> None:
        self.dismiss(None)


def edit_externally(app: App[object], text: str) -> str | None:
    """Open `text` in $VISUAL / $EDITOR (else vi) with the app suspended; the saved text, or None when the
    terminal cannot hand over (a test or web driver) or the editor failed."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.TemporaryDirectory(prefix="embtune-edit-") as folder:
        path = Path(folder) / "passage.txt"
        path.write_text(text, encoding="utf-8")
        try:
            with app.suspend():
                result = subprocess.run([*shlex.split(editor), str(path)], check=False)
        except (SuspendNotSupported, OSError):
            return None
        if result.returncode != 0:
            return None
        return path.read_text(encoding="utf-8").rstrip("\n")


class FilterScreen(ModalScreen[QueueFilter | None]):
    """Label, source and split filters; the text filter (`/`) is kept as it is."""

    BINDING_GROUP_TITLE = "Filter"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "apply", "Apply", tooltip="Show the queue with these filters", id="filter-apply"),
        Binding("escape", "cancel", "Cancel", tooltip="Keep the filters as they were", id="filter-cancel"),
    ]

    def __init__(self, current: QueueFilter, choices: dict[str, list[str]], source_name: str) -> None:
        super().__init__()
        self.current = current
        self.choices = choices
        self.source_name = source_name

    def compose(self) -> ComposeResult:
        with Vertical(id="review-filter") as box:
            box.border_title = "Filter the queue"
            for field, title in (("label", "Label"), ("source", self.source_name), ("split", "Split")):
                yield Label(title)
                options = [(ANY, ANY), *((v, v) for v in self.choices.get(field, []))]
                value = getattr(self.current, field) or ANY
                yield Select(options, value=value, allow_blank=False, id=f"filter-{field}")
            with Horizontal(id="filter-buttons"):
                yield Button("Apply", id="filter-apply-button", variant="primary")
        yield KeyFooter()

    def chosen(self) -> QueueFilter:
        values = {f: self.query_one(f"#filter-{f}", Select).value for f in ("label", "source", "split")}
        picked = {f: (None if v == ANY else str(v)) for f, v in values.items()}
        return QueueFilter(text=self.current.text, **picked)

    def action_apply(self) -> None:
        self.dismiss(self.chosen())

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#filter-apply-button")
    def _apply_pressed(self) -> None:
        self.action_apply()
