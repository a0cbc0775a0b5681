"""`enter` on a drill-down row: one gate query in full, its rank under each arm and the documents it expects."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static
from textual.worker import Worker, WorkerState

from engine.gate.results import QueryOutcome, expected_documents
from tui.screens.gate.drilldown import LOSS, WIN, Changes, rank_text
from tui.session import Session
from tui.widgets.footer import KeyFooter

MARK_WORDS = {WIN: f"{WIN} wins against base", LOSS: f"{LOSS} loses against base"}


def rank_lines(outcome: QueryOutcome, arm_names: list[str], changes: Changes) -> list[str]:
    width = max((len(name) for name in arm_names), default=4)
    lines = []
    for name in arm_names:
        mark = changes.mark(name, outcome.id)
        rank = rank_text(outcome.ranks.get(name))
        lines.append(f"{name:<{width}}  {rank:>3}  {MARK_WORDS.get(mark, '')}".rstrip())
    return lines


class QueryScreen(ModalScreen[None]):
    BINDING_GROUP_TITLE = "Gate query"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", tooltip="Back to the drill-down", id="query-close"),
    ]

    def __init__(self, session: Session, outcome: QueryOutcome, arm_names: list[str], changes: Changes) -> None:
        super().__init__()
        self.session = session
        self.outcome = outcome
        self.arm_names = arm_names
        self.changes = changes

    def compose(self) -> ComposeResult:
        outcome = self.outcome
        with VerticalScroll(id="query-detail") as box:
            box.border_title = f"Gate query {outcome.id}"
            yield Label("Query", classes="section")
            yield Static(outcome.text or "(this query is no longer in the project)", id="query-text", markup=False)
            yield Label("Rank of the first expected document (— : not in the top 100)", classes="section")
            yield Static("\n".join(rank_lines(outcome, self.arm_names, self.changes)), id="query-ranks", markup=False)
            yield Label("Expected documents" if len(outcome.expected) > 1 else "Expected document", classes="section")
            for i, (doc, title) in enumerate(zip(outcome.expected, outcome.titles, strict=True)):
                yield Label(f"{title or '(untitled)'}  · {doc}", id=f"doc-title-{i}", classes="doc-title", markup=False)
                yield Static("loading…", id=f"doc-text-{i}", classes="doc-text", markup=False)
            if not outcome.expected:
                yield Static("no judged document: every judgment of this query was rejected or removed")
        yield KeyFooter()

    def on_mount(self) -> None:
        if self.outcome.expected:
            self._load()

    def action_close(self) -> None:
        self.dismiss(None)

    @work(thread=True, exclusive=True, group="documents", exit_on_error=False)
    def _load(self) -> list[Any]:
        return self.session.call(expected_documents, self.outcome.expected)

    @on(Worker.StateChanged)
    def _loaded(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "documents" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        found = {d.id: d.text for d in event.worker.result or []} if event.state == WorkerState.SUCCESS else {}
        for i, doc in enumerate(self.outcome.expected):
            missing = "(this document is no longer in the project)"
            if event.state == WorkerState.ERROR:
                missing = f"could not read the document: {event.worker.error}"
            self.query_one(f"#doc-text-{i}", Static).update(found.get(doc, missing))
