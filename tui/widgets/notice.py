"""A screen's one-line notice: an error or a note under the title, hidden while empty."""

from __future__ import annotations

from textual.widgets import Static

KINDS = ("-error", "-note")  # CSS classes: app.tcss and the screens style them


class Notice(Static):
    def __init__(self, *, id: str) -> None:
        super().__init__("", id=id, markup=False)
        self.text = ""

    def say(self, text: str, kind: str = "") -> None:
        """Show `text` styled as `kind` ("-error", "-note" or plain); an empty text hides the notice."""
        self.text = text
        self.update(text)
        self.display = bool(text)
        for name in KINDS:
            self.set_class(kind == name, name)
