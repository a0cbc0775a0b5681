"""The footer every embtune screen uses: the screen's keys that act in the current state (a disabled one is left
to `?` help, which dims it), compact and with short names, and `?` help and `q` quit pinned to the right edge, so
a narrow terminal (80 columns) cuts the least useful keys, never those two."""

from __future__ import annotations

from dataclasses import replace

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import HorizontalGroup
from textual.widgets import Footer, Input, TextArea
from textual.widgets._footer import FooterKey

PINNED = (("question_mark", "f1"), ("q", "ctrl+q"))  # help and quit, kept in view at any width: (key, typing)
PINNED_IDS = frozenset({"help", "quit", "quit-anywhere"})
SHORT = {  # footer names where the binding's description (help, palette) is too long for 80 columns
    "import": "Import",
    "review": "Review",
    "data": "Mine",
    "evaluate": "Eval",
}


class KeyFooter(Footer):
    DEFAULT_CSS = """
    KeyFooter > #pinned { dock: right; width: auto; height: 1; background: $footer-background; padding-left: 1; }
    """

    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        active = self.screen.active_bindings
        shown: dict[str, tuple[Binding, bool, str]] = {}
        for _, binding, enabled, tooltip in active.values():
            if binding.show and enabled and binding.id not in PINNED_IDS:  # a key that does nothing now: only in help
                shown.setdefault(binding.action, (binding, enabled, tooltip))  # one key per action
        typing = isinstance(self.app.focused, (Input, TextArea))  # then ? and q are letters: f1 and ctrl+q
        with HorizontalGroup(id="pinned"):
            for keys in PINNED:
                key = keys[1] if typing or keys[0] not in active else keys[0]
                if key in active:
                    _, binding, enabled, tooltip = active[key]
                    yield self._key(replace(binding, key=key), enabled, tooltip)
        for entry in shown.values():
            yield self._key(*entry)

    def _key(self, binding: Binding, enabled: bool, tooltip: str) -> FooterKey:
        description = SHORT.get(binding.id or "", binding.description)
        key = FooterKey(
            binding.key,
            self.app.get_key_display(binding),
            description,
            binding.action,
            disabled=not enabled,
            tooltip=tooltip or binding.description,
        )
        return key.data_bind(compact=Footer.compact)
