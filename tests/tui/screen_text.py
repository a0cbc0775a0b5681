"""The text a user sees on the app's current screen (its widgets composited), for layout assertions."""

from __future__ import annotations

from textual.app import App


def screen_lines(app: App[object]) -> list[str]:
    """The current screen's rows as plain text (a modal without the screen under it)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def screen_text(app: App[object]) -> str:
    return "\n".join(screen_lines(app))


def words_shown(text: str, app: App[object]) -> bool:
    """Every word of `text` appears whole on screen, in order, whatever the line breaks (a cut word fails)."""
    shown = " ".join(screen_lines(app))
    at = 0
    for word in text.split():
        at = shown.find(word, at)
        if at < 0:
            return False
        at += len(word)
    return True
