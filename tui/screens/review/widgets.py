"""The review screen's queue (a Line API list over a window of rows) and its item detail."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.containers import VerticalScroll
from textual.content import Content, Span
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from engine.data.review import Item, QueueRow
from engine.data.review_terms import Mark, passage_marks, query_marks

GLYPH = {"unlabeled": "·", "accepted": "✓", "rejected": "✗", "false_negative": "+"}
WORD = {"unlabeled": "unlabeled", "accepted": "accepted", "rejected": "rejected",
        "false_negative": "relevant (false negative)"}  # fmt: skip
MARK_STYLE = {"match": "bold $text-success", "missing": "italic $text-error", "differs": "underline $text-warning"}
LEGEND = {
    "pair": "bold: query terms found · italic: query terms it lacks",
    "negative": "bold: query terms · italic: lacking · underline: not in positive",
}


class QueueList(ScrollView):
    """Renders only the visible lines of the rows it holds (a window of the queue the screen pages in), so a
    move costs two line repaints whatever the window's size. It takes no focus: the screen's keys drive it."""

    can_focus = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "queue--cursor", "queue--unlabeled", "queue--accepted", "queue--rejected", "queue--false_negative",
        "queue--mark", "queue--key",
    }  # fmt: skip
    DEFAULT_CSS = """
    QueueList { overflow-x: hidden; scrollbar-size-vertical: 0; }
    QueueList > .queue--cursor { background: $block-cursor-background; color: $block-cursor-foreground;
                                 text-style: bold; }
    QueueList > .queue--unlabeled { color: $text-muted; }
    QueueList > .queue--accepted { color: $text-success; }
    QueueList > .queue--rejected { color: $text-error; }
    QueueList > .queue--false_negative { color: $text-warning; }
    QueueList > .queue--mark { color: $text-accent; text-style: bold; }
    QueueList > .queue--key { color: $text-muted; }
    """

    class Clicked(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[QueueRow] = []
        self.cursor = 0
        self.marked: dict[int, QueueRow] = {}
        self._index: dict[int, int] = {}
        self._lines: LRUCache[tuple[str, int, str, bool, bool, int], Strip] = LRUCache(1024)
        self._styles: dict[tuple[str, bool], Style] = {}

    @property
    def current(self) -> QueueRow | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def index_of(self, row_id: int) -> int | None:
        return self._index.get(row_id)

    def set_rows(self, rows: list[QueueRow], cursor: int = 0) -> None:
        self.rows = list(rows)
        self._reindex()
        self.cursor = min(cursor, max(len(self.rows) - 1, 0))
        self.scroll_to(y=0, animate=False, immediate=True)
        self._resized()
        self._follow_cursor()

    def extend(self, rows: Iterable[QueueRow]) -> None:
        start = len(self.rows)
        self.rows.extend(rows)
        self._index.update((row.id, i) for i, row in enumerate(self.rows[start:], start))
        self._resized()

    def prepend(self, rows: list[QueueRow]) -> None:
        """Add rows above, keeping the cursor on its row and that row where it was on screen."""
        self.rows[:0] = rows
        self._reindex()
        self.cursor += len(rows)
        self._resized()
        self.scroll_to(y=self.scroll_offset.y + len(rows), animate=False, immediate=True)

    def update_row(self, row_id: int, state: dict[str, object]) -> None:
        index = self._index.get(row_id)
        if index is not None:
            row = self.rows[index]
            self.rows[index] = QueueRow(row.target, row.id, row.snippet, row.key, dict(state))
            if row_id in self.marked:
                self.marked[row_id] = self.rows[index]
            self.refresh_line(index)

    def move_to(self, index: int) -> bool:
        """Put the cursor on `index` (clamped); whether it moved."""
        index = max(0, min(index, len(self.rows) - 1))
        if index == self.cursor or not self.rows:
            return False
        old, self.cursor = self.cursor, index
        self.refresh_line(old)
        self.refresh_line(index)
        self._follow_cursor()
        return True

    def toggle_mark(self) -> None:
        row = self.current
        if row is not None:
            if self.marked.pop(row.id, None) is None:
                self.marked[row.id] = row
            self.refresh_line(self.cursor)

    def clear_marks(self) -> None:
        self.marked.clear()
        self.refresh()

    def _reindex(self) -> None:
        self._index = {row.id: i for i, row in enumerate(self.rows)}

    def _resized(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows))
        self.refresh()

    def _follow_cursor(self) -> None:
        """Scroll only when the cursor leaves the view, and then by a jump (as mutt's index does): the cursor lands
        a third of the way in, showing the items ahead. Scrolling repaints every line, so a jump every ~25 moves
        keeps keypresses cheap where a one-line scroll on every move would not."""
        height = self.scrollable_content_region.height or 1
        top = round(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=max(self.cursor - height * 2 // 3, 0), animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height // 3, animate=False, immediate=True)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows))
        self._follow_cursor()

    def on_click(self, event: Click) -> None:
        index = round(self.scroll_offset.y) + event.y
        if 0 <= index < len(self.rows):
            self.post_message(self.Clicked(index))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()
        self._styles.clear()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = round(self.scroll_offset.y) + y
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        row = self.rows[index]
        # A scroll by one line repaints every visible line: all but one come from this cache.
        key = (row.target, row.id, row.label, row.id in self.marked, index == self.cursor, width)
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = self._line(row, key[3], key[4], width)
        return line

    def _line(self, row: QueueRow, marked: bool, cursor: bool, width: int) -> Strip:
        line_style = self._style("", full=True)
        if cursor:
            line_style = line_style + self._style("queue--cursor", full=True)
        label = row.label if row.label in GLYPH else "unlabeled"
        key = f" {row.id:>6}" if row.target == "pair" else f" {row.id:>6} Δ{_margin(row.key)}"
        segments = [
            Segment("●" if marked else " ", self._style("queue--mark")),
            Segment(GLYPH[label], self._style(f"queue--{label}")),
            Segment(key, self._style("queue--key")),
            Segment(" " + " ".join(row.snippet.split())),  # one line, whatever whitespace the query holds
        ]
        return Strip(segments).apply_style(line_style).adjust_cell_length(width, line_style)

    def _style(self, component: str, *, full: bool = False) -> Style:
        """A component's style, once per theme; all but the line's own keep only colour and weight, so the line's
        background (cursor or not) shows through."""
        style = self._styles.get((component, full))
        if style is None:
            rich = self.rich_style if not component else self.get_component_rich_style(component)
            style = self._styles[(component, full)] = rich if full else Style(color=rich.color, bold=rich.bold)
        return style


def _margin(key: float) -> str:
    return "  —   " if key == float("inf") else f"{key:+.3f}"[:6]  # six cells either way: the column lines up


def _marked(text: str, marks: list[Mark]) -> Content:
    return Content(text).add_spans([Span(m.start, m.end, MARK_STYLE[m.kind]) for m in marks])


class ItemDetail(VerticalScroll):
    """The item in full: query, positive, and in triage the negative, with the telling terms highlighted."""

    can_focus = False

    def compose(self) -> Iterable[Static]:
        yield Static("", id="item-meta", markup=False)
        yield Static("", id="item-query", classes="text")
        yield Static("", id="item-passage", classes="text")
        yield Static("", id="item-negative", classes="text")

    def on_mount(self) -> None:
        self.query_one("#item-query").border_title = "Query"

    def show(self, item: Item | None, *, empty: str = "Nothing to review here.") -> None:
        meta, query, passage, negative = (self.query_one(f"#item-{n}", Static)
                                          for n in ("meta", "query", "passage", "negative"))  # fmt: skip
        negative.display = item is not None and item.target == "negative"
        query.display = passage.display = item is not None
        if item is None:
            meta.update(empty)
            return
        meta.update(_meta(item))
        if item.target == "pair":
            query.update(_marked(item.query, query_marks(item.query, item.passage)))
            passage.update(_marked(item.passage, passage_marks(item.passage, item.query)))
            passage.border_title = "Positive (edited)" if item.original is not None else "Positive"
            return
        positive = item.positive or ""
        query.update(_marked(item.query, query_marks(item.query, positive)))
        passage.update(_marked(positive, passage_marks(positive, item.query)) if positive else "(no positive)")
        passage.border_title = f"Positive · score {_score(item.positive_score)}"
        negative.update(_marked(item.passage, passage_marks(item.passage, item.query, positive)))
        negative.border_title = f"Negative · score {_score(item.score)}"


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _meta(item: Item) -> str:
    where = [item.split, item.source, f"doc {item.doc_id}"]
    if item.target == "negative" and item.score is not None and item.positive_score is not None:
        where.append(f"Δ{item.positive_score - item.score:+.3f}")
    label = f"{GLYPH.get(item.label, '?')} {WORD.get(item.label, item.label)}"
    return f"{item.target} {item.id} │ {label} │ {' · '.join(where)}\n{LEGEND[item.target]}"
