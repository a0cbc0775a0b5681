"""`/`: type a query, see the live index's top results; ctrl+t sets the base model's table beside it, with the
ranks that moved."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Input, Label, Static
from textual.worker import Worker, WorkerState

from engine.index.search import Results, Searcher, moved
from tui.errors import job_error_text
from tui.session import Session
from tui.widgets.footer import KeyFooter
from tui.widgets.notice import Notice

K = 10
TEXT_WIDTH = 70


def moved_text(places: int | None, compared: bool) -> str:
    """▲3 (ranked 3 places higher here than in the other table), ▼2, = (same rank), new (absent there)."""
    if not compared:
        return ""
    if places is None:
        return "new"
    return "=" if places == 0 else f"▲{places}" if places > 0 else f"▼{-places}"


def one_line(text: str, width: int = TEXT_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def search_with(project: Any, searcher: Searcher, query: str, compare: bool) -> Results:
    return searcher.compare(query, K, "base") if compare else searcher.search(query, K)


class HitsTable(DataTable[str]):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("#", "moved", "score", "doc", "text")

    def show(self, results: Results, compared: bool) -> None:
        self.clear()
        self.border_title = f"{results.model} · {results.table} · {results.seconds * 1000:.0f} ms"
        for hit in results.hits:
            self.add_row(
                str(hit.rank),
                moved_text(moved(hit), compared),
                f"{hit.score:.3f}",
                hit.doc_id,
                one_line(hit.text),
                key=hit.chunk_id,
            )


class SearchScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Search"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+t",
            "toggle_compare",
            "Base vs tuned",
            priority=True,
            tooltip="Set the base model's table beside the live one, with the ranks that moved",
            id="search-compare",
        ),
        Binding("slash", "focus_query", "Query", tooltip="Type a new query", id="search-query"),
        Binding("escape", "back", "Back", tooltip="Back to home", id="search-back"),
    ]
    DEFAULT_CSS = """
    #search-input { margin: 0 1; }
    #search-message { height: auto; padding: 0 1; display: none; }
    #search-message.-error { color: $text-error; border-left: outer $error; }
    #search-message.-note { color: $text-muted; border-left: outer $primary-muted; }
    #search-results { height: 1fr; }
    #search-results HitsTable { width: 1fr; height: 1fr; border: round $primary-muted; }
    #search-detail { height: auto; max-height: 8; padding: 0 1; color: $text-muted; }
    """
    compare: reactive[bool] = reactive(False, bindings=True)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.searcher = Searcher(session.project)
        self.results: Results | None = None

    def compose(self) -> ComposeResult:
        yield Label("Search the live index · enter searches · ctrl+t base vs tuned", id="search-title", markup=False)
        yield Input(placeholder="a query, as your users would type it", id="search-input")
        yield Notice(id="search-message")
        with Horizontal(id="search-results"):
            yield HitsTable(id="search-live")
            yield HitsTable(id="search-base")
        with Vertical(id="search-detail"):
            yield Static("", id="search-text", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#search-base").display = False
        self.query_one("#search-input", Input).focus()

    @on(Input.Submitted, "#search-input")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._say("searching… (the first query loads the model)", "-note")
            self._search(event.value.strip(), self.compare)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _search(self, query: str, compare: bool) -> Results:
        return self.session.call(search_with, self.searcher, query, compare)

    @on(Worker.StateChanged)
    def _done(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "search":
            return
        if event.state == WorkerState.SUCCESS:
            self._say("")
            self.show(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self._say(job_error_text(event.worker.error, "search"), "-error")

    def show(self, results: Results) -> None:
        self.results = results
        compared = results.compare is not None
        live = self.query_one("#search-live", HitsTable)
        live.show(results, compared)
        base = self.query_one("#search-base", HitsTable)
        base.display = compared
        if results.compare is not None:
            base.show(results.compare, True)
        live.focus()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.results is None or event.row_key.value is None:
            return
        hits = [*self.results.hits, *(self.results.compare.hits if self.results.compare else [])]
        hit = next((h for h in hits if h.chunk_id == event.row_key.value), None)
        if hit is not None:
            self.query_one("#search-text", Static).update(f"{hit.doc_id} · {hit.chunk_id}\n{hit.text}")

    def _say(self, text: str, kind: str = "") -> None:
        self.query_one(Notice).say(text, kind)

    def action_toggle_compare(self) -> None:
        self.compare = not self.compare
        query = self.query_one("#search-input", Input).value.strip()
        if query:
            self._search(query, self.compare)
        elif not self.compare:
            self.query_one("#search-base").display = False

    def action_focus_query(self) -> None:
        self.query_one("#search-input", Input).focus()

    def action_back(self) -> None:
        self.dismiss(None)
