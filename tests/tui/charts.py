"""Reading the text charts (tui.widgets.gate_chart, tui.widgets.train_chart) in tests."""

from __future__ import annotations


def plain(line: list[tuple[str, str]]) -> str:
    """A chart line's text without its kinds (the styles)."""
    return "".join(text for text, _ in line)
