"""`enter` on a per-query diff row: the query in full, its rank under every model, and the expected documents."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static
from textual.worker import Worker, WorkerState

from engine.evaluate.results import QueryRanks, expected_documents
from engine.evaluate.verdict import UNCHANGED, rank_change
from tui.screens.evaluate.diff import GLYPHS, rank_text
from tui.session import Session


def rank_lines(query: QueryRanks, models: list[str], baseline: str) -> list[str]:
    width = max((len(name) for name in models), default=4)
    lines = []
    for name in models:
        change = rank_change(query.ranks.get(baseline), query.ranks.get(name))
        ndcg = query.metrics.get(name, {}).get("ndcg@10")
        note = "baseline" if name == baseline else ("" if change == UNCHANGED else f"{GLYPHS[change]} {change}")
        score = f"nDCG@10 {ndcg:.3f}" if ndcg is not None else ""
        lines.append(f"{name:<{width}}  {rank_text(query.ranks.get(name)):>3}  {score}  {note}".rstrip())
    return lines


class EvalQueryScreen(ModalScreen[None]):
    BINDING_GROUP_TITLE = "Evaluated query"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", tooltip="Back to the per-query diff", id="eval-query-close"),
    ]
    DEFAULT_CSS = """
    EvalQueryScreen { align: center middle; }
    #eval-query { width: 90%; height: 85%; border: round $primary; padding: 0 1; background: $surface; }
    #eval-query .section { text-style: bold; margin-top: 1; }
    #eval-query .doc-title { color: $text-accent; margin-top: 1; }
    """

    def __init__(self, session: Session, query: QueryRanks, models: list[str], baseline: str) -> None:
        super().__init__()
        self.session = session
        self.query_ranks = query
        self.models = models
        self.baseline = baseline

    def compose(self) -> ComposeResult:
        query = self.query_ranks
        with VerticalScroll(id="eval-query") as box:
            box.border_title = f"Query {query.id}"
            yield Label("Query", classes="section")
            yield Static(query.text or "(this query is no longer in the project)", id="eval-query-text", markup=False)
            yield Label(
                "Rank of the first relevant document under each model (— : not in the top 100)", classes="section"
            )
            yield Static("\n".join(rank_lines(query, self.models, self.baseline)), id="eval-query-ranks", markup=False)
            yield Label("Expected documents" if len(query.expected) > 1 else "Expected document", classes="section")
            for i, (doc, title) in enumerate(zip(query.expected, query.titles, strict=True)):
                yield Label(f"{title or '(untitled)'}  · {doc}", classes="doc-title", markup=False)
                yield Static("loading…", id=f"eval-doc-{i}", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        if self.query_ranks.expected:
            self._load()

    def action_close(self) -> None:
        self.dismiss(None)

    @work(thread=True, exclusive=True, group="eval-documents", exit_on_error=False)
    def _load(self) -> list[Any]:
        return self.session.call(expected_documents, self.query_ranks.expected)

    @on(Worker.StateChanged)
    def _loaded(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "eval-documents" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        found = {d.id: d.text for d in event.worker.result or []} if event.state == WorkerState.SUCCESS else {}
        for i, doc in enumerate(self.query_ranks.expected):
            self.query_one(f"#eval-doc-{i}", Static).update(
                found.get(doc, "(this document is no longer in the project)")
            )
