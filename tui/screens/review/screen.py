"""`v`: review pairs and triage mined negatives at keyboard speed.

The queue pages in by keyset (a window of rows; the next page is fetched in a worker before the cursor gets
there), so 100k pairs open as fast as 100. A decision is one engine call on the event loop: measured at well under
a millisecond (BEGIN IMMEDIATE, two statements, COMMIT in WAL), so writing in order on the loop is both the
simplest and the fastest way to keep keypresses and writes in the same order. Each item is read again when the
cursor lands on it, so what is shown is the store's state, another reviewer's decisions included.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Label
from textual.worker import Worker, WorkerState

from engine.data import review
from engine.data.review import Counter, Item, Outcome, QueueFilter, QueueRow, ReviewError, Target
from tui.screens.confirm import ConfirmScreen
from tui.screens.review.dialogs import EditScreen, FilterScreen, edit_externally
from tui.screens.review.widgets import ItemDetail, QueueList
from tui.session import Session
from tui.widgets.footer import KeyFooter

PAGE = 200
PREFETCH = 60  # rows left before the window's edge at which the next page is fetched
RECOUNT_AFTER_S = 1.0  # the counter is recounted (in a worker) once keys pause this long
NOUN = {"pair": ("pair", "pairs"), "negative": ("negative", "negatives")}
MODE_TITLE = {"pair": "pairs", "negative": "negatives · false-negative triage (closest scores first)"}
PAIRS_ONLY = frozenset({"edit", "edit_external"})
NEGATIVES_ONLY = frozenset({"false_negative"})
NEED_MARKS = frozenset({"bulk_accept", "bulk_reject"})


@dataclass(frozen=True)
class Window:
    """A freshly loaded queue window and what goes with it."""

    generation: int
    rows: list[QueueRow]
    cursor: int
    item: Item | None
    counter: Counter
    more_before: bool
    more_after: bool


def _b(key: str, action: str, description: str, tooltip: str, id: str, show: bool = False) -> Binding:
    return Binding(key, action, description, tooltip=tooltip, id=f"review-{id}", show=show)


# The queue opens on training pairs: a review of gate or test pairs changes what the gate and evaluation measure
# (a rejected judgment drops its query), so it takes an explicit split filter.
DEFAULT_FILTER = QueueFilter(split="train")


class ReviewScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Review"
    AUTO_FOCUS = ""  # nothing takes focus: the screen's keys drive the queue
    BINDINGS: ClassVar[list[BindingType]] = [
        _b(
            "a",
            "accept",
            "Accept",
            "Keep it (a pair for training, a negative as a true negative); next",
            "accept",
            show=True,
        ),
        _b("x", "reject", "Reject", "Leave it out of training; next", "reject", show=True),
        _b(
            "n",
            "false_negative",
            "Relevant",
            "This mined negative answers the query: make it a positive pair",
            "false-negative",
            show=True,
        ),
        _b("e", "edit", "Edit", "Edit this pair's passage text (the corpus chunk stays as it is)", "edit", show=True),
        _b("E", "edit_external", "Edit in $EDITOR", "Edit the passage in $VISUAL / $EDITOR", "edit-external"),
        _b("s", "skip", "Skip", "Next item, no decision", "skip"),
        _b(
            "u",
            "undo",
            "Undo",
            "Revert your latest decision (a bulk one whole); repeat to go further back",
            "undo",
            show=True,
        ),
        _b("space", "mark", "Mark", "Mark or unmark this item for a bulk decision; next", "mark"),
        _b("A", "bulk_accept", "Accept marked", "Accept every marked item (asks first)", "bulk-accept"),
        _b("X", "bulk_reject", "Reject marked", "Reject every marked item (asks first)", "bulk-reject"),
        _b(
            "right_square_bracket",
            "next_unreviewed",
            "Next unreviewed",
            "Jump to the next unlabeled item",
            "next-unreviewed",
            show=True,
        ),
        _b("slash", "filter_text", "Find", "Show only items whose query or passage holds a text", "filter-text"),
        _b("f", "filter", "Filter", "Show only items of a label, source and split", "filter"),
        _b(
            "tab",
            "switch_mode",
            "Pairs / negatives",
            "Switch between pairs and false-negative triage",
            "mode",
            show=True,
        ),
        _b("j,down", "move(1)", "Down", "Next item", "down"),
        _b("k,up", "move(-1)", "Up", "Previous item", "up"),
        _b("pagedown", "page(1)", "Page down", "A screenful further", "page-down"),
        _b("pageup", "page(-1)", "Page up", "A screenful back", "page-up"),
        _b("g,home", "first", "First", "The first item of the queue", "first"),
        _b("G,end", "last", "Last", "The last item of the queue", "last"),
        _b("escape", "back", "Back", "Close the find box, else clear the filters, else go home", "back"),
    ]

    def __init__(self, session: Session, target: Target = "pair") -> None:
        super().__init__()
        self.session = session
        self.target: Target = target
        self.flt = DEFAULT_FILTER
        self.reviewer = review.reviewer_name()
        self.item: Item | None = None
        self.counter: Counter | None = None
        self._generation = 0  # bumps on every reload, so a page fetched for an older queue is dropped
        self._more_after = self._more_before = False
        self._recount: Timer | None = None

    # --- layout -----------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="review-header"):
            yield Label("", id="review-title", markup=False)
            yield Label("counting…", id="review-counter", markup=False)
        with Horizontal(id="review-body"):
            yield QueueList(id="queue")
            yield ItemDetail(id="item")
        yield Input(placeholder="find in query or passage · enter: apply · escape: close", id="find")
        yield KeyFooter()

    @property
    def queue(self) -> QueueList:
        return self.query_one(QueueList)

    @property
    def detail(self) -> ItemDetail:
        return self.query_one(ItemDetail)

    def on_mount(self) -> None:
        self.query_one("#find").display = False
        self.detail.show(None, empty="loading…")
        self._reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in PAIRS_ONLY and self.target != "pair":
            return None
        if action in NEGATIVES_ONLY and self.target != "negative":
            return None
        if action in NEED_MARKS and not self.queue.marked:
            return None
        return True

    # --- loading ----------------------------------------------------------------------------------------------

    def _reload(self, start: QueueRow | None = None, *, at_end: bool = False) -> None:
        """Load the queue window from the queue's start, from `start`, or at its end, in a worker."""
        self._generation += 1
        generation, target, flt, reviewer = self._generation, self.target, self.flt, self.reviewer

        def read(project: Any) -> Window:
            if at_end:
                rows = review.queue(project, target, flt, at_end=True, limit=PAGE)
            else:
                rows = review.queue(project, target, flt, after=start, limit=PAGE)
                rows = [start, *rows] if start is not None else rows
            cursor = len(rows) - 1 if at_end else 0
            first = review.item(project, target, rows[cursor].id) if rows else None
            more_after = not at_end and len(rows) >= PAGE
            more_before = at_end or start is not None  # a fetch before the first row finds out for sure
            counter = review.counter(project, target, reviewer)
            return Window(generation, rows, cursor, first, counter, more_before, more_after)

        self.run_worker(lambda: self.session.call(read), thread=True, group="load", exclusive=True,
                        exit_on_error=False)  # fmt: skip
        self._title()

    def _loaded(self, window: Window) -> None:
        if window.generation != self._generation:
            return
        self._more_after, self._more_before = window.more_after, window.more_before
        self.queue.set_rows(window.rows, cursor=window.cursor)
        self._show_counter(window.counter)
        self._show(window.item)
        self._fetch_more()  # a window opened mid-queue has rows above it to page in at once

    def _fetch_more(self) -> None:
        """Page in beyond the window's edge, in a worker, when the cursor nears it."""
        rows, cursor = self.queue.rows, self.queue.cursor
        if rows and self._more_after and cursor >= len(rows) - PREFETCH:
            self._more_after = False  # until this fetch answers
            self._fetch("after", rows[-1])
        if rows and self._more_before and cursor < PREFETCH:
            self._more_before = False
            self._fetch("before", rows[0])

    def _fetch(self, side: str, edge: QueueRow) -> None:
        generation, target, flt, limit = self._generation, self.target, self.flt, PAGE
        where = {side: edge}

        def page() -> tuple[int, list[QueueRow]]:
            return generation, self.session.call(review.queue, target, flt, limit=limit, **where)

        self.run_worker(page, thread=True, group=side, exit_on_error=False)

    @on(Worker.StateChanged)
    def _worker_done(self, event: Worker.StateChanged) -> None:
        group = event.worker.group
        if event.state == WorkerState.ERROR:
            self.notify(f"Review could not read the store: {event.worker.error}", severity="error", markup=False)
            return
        if event.state != WorkerState.SUCCESS:
            return
        result = event.worker.result
        if group == "load":
            self._loaded(result)
        elif group == "count" and result[0] == self.target:
            self._show_counter(result[1])
        elif group in ("after", "before") and result[0] == self._generation:
            page: list[QueueRow] = result[1]
            if group == "after":
                self.queue.extend(page)
                self._more_after = len(page) >= PAGE
            else:
                self.queue.prepend(page)
                self._more_before = len(page) >= PAGE

    # --- showing ----------------------------------------------------------------------------------------------

    def _title(self) -> None:
        parts = [f"Review {MODE_TITLE[self.target]}"]
        flt = self.flt
        picked = [f"{name} {value}" for name, value in (("label", flt.label), ("source", flt.source),
                                                          ("split", flt.split)) if value]  # fmt: skip
        if flt.text:
            picked.append(f'text "{flt.text}"')
        if picked:
            parts.append("filter: " + ", ".join(picked))
        if self.queue.marked:
            parts.append(f"{len(self.queue.marked)} marked")
        self.query_one("#review-title", Label).update(" · ".join(parts))

    def _show_counter(self, counter: Counter) -> None:
        self.counter = counter
        text = f"{counter.reviewed:,} / {counter.total:,} reviewed · {counter.today:,} today ({self.reviewer})"
        self.query_one("#review-counter", Label).update(text)

    def _show(self, item: Item | None) -> None:
        self.item = item
        self.detail.show(item, empty=self._empty_text())

    def _empty_text(self) -> str:
        if self.flt != DEFAULT_FILTER:
            return "No item matches the filter (escape clears it)."
        if self.target == "negative":
            return "No mined negatives yet: mine some first, then triage them here."
        return "No pairs yet: import some (i on the home screen)."

    def _show_current(self) -> None:
        row = self.queue.current
        self._show(self.session.call(review.item, self.target, row.id) if row else None)

    def _go(self, index: int) -> None:
        moved = self.queue.move_to(index)
        current, shown = self.queue.current, self.item
        if moved or current is None or shown is None or current.id != shown.id:
            self._show_current()
        self._fetch_more()

    # --- navigation -------------------------------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        self._go(self.queue.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._go(self.queue.cursor + direction * max(self.queue.scrollable_content_region.height - 1, 1))

    def action_first(self) -> None:
        if self._more_before:
            self._reload()
        else:
            self._go(0)

    def action_last(self) -> None:
        if self._more_after:
            self._reload(at_end=True)
        else:
            self._go(len(self.queue.rows) - 1)

    def action_skip(self) -> None:
        self.action_move(1)

    def action_next_unreviewed(self) -> None:
        current = self.queue.current
        found = self.session.call(review.next_unlabeled, self.target, self.flt, current)
        if found is None:
            self.notify("No unreviewed item after this one.", markup=False)
            return
        index = self.queue.index_of(found.id)
        if index is not None:
            self._go(index)
        else:
            self._reload(found)

    @on(QueueList.Clicked)
    def _clicked(self, event: QueueList.Clicked) -> None:
        self._go(event.index)

    # --- decisions --------------------------------------------------------------------------------------------

    def action_accept(self) -> None:
        self._decide("accept")

    def action_reject(self) -> None:
        self._decide("reject")

    def action_false_negative(self) -> None:
        if self.target == "negative":
            self._decide("false_negative")

    def _decide(self, action: str) -> None:
        item = self.item
        if item is None:
            return
        try:
            outcome = self.session.call(review.decide, item.target, item.id, action, item.state, self.reviewer)
        except ReviewError as e:
            self.notify(str(e), severity="error", markup=False)
            return
        self._applied([outcome])
        if outcome.conflict is not None:
            was = outcome.before.get("label")
            self.notify(f"{item.target} {item.id} had been changed by another reviewer (to {was}) since it was "
                        "shown; your decision was recorded after theirs (u brings theirs back).",
                        severity="warning", markup=False, timeout=8)  # fmt: skip
        if action == "false_negative" and outcome.after.get("pair_created"):
            self.notify(f"Now positive pair {outcome.after['pair_id']} (u to undo).", markup=False, timeout=3)
        self.queue.move_to(self.queue.cursor + 1)  # on the last item, it stays and shows its new label
        self._show_current()
        self._fetch_more()

    def _applied(self, outcomes: list[Outcome]) -> None:
        """Reflect written outcomes in the queue and the counter at once; a recount follows when keys pause (it
        also picks up other reviewers' work)."""
        reviewed, today = (self.counter.reviewed, self.counter.today) if self.counter else (0, 0)
        for outcome in outcomes:
            today += -1 if outcome.action == "undo" else 1
            if outcome.target == self.target:
                self.queue.update_row(outcome.id, outcome.after)
                was = outcome.before.get("label", "unlabeled") != "unlabeled"
                reviewed += (outcome.after.get("label", "unlabeled") != "unlabeled") - was
        if self.counter is not None:
            self._show_counter(Counter(reviewed, self.counter.total, max(today, 0)))
        if self._recount is not None:
            self._recount.stop()
        self._recount = self.set_timer(RECOUNT_AFTER_S, self._count)

    def _count(self) -> None:
        target, reviewer = self.target, self.reviewer
        self.run_worker(lambda: (target, self.session.call(review.counter, target, reviewer)), thread=True,
                        group="count", exclusive=True, exit_on_error=False)  # fmt: skip

    def action_undo(self) -> None:
        try:
            outcomes = self.session.call(review.undo, self.reviewer)
        except ReviewError as e:
            self.notify(str(e), severity="error", markup=False)
            return
        if not outcomes:
            self.notify("Nothing of yours left to undo.", markup=False)
            return
        self._applied(outcomes)
        mine = [o for o in outcomes if o.target == self.target and self.queue.index_of(o.id) is not None]
        if mine:
            self._go(min(self.queue.index_of(o.id) or 0 for o in mine))  # back to the (first) undone item
        self._show_current()
        self.notify(_undo_message(outcomes), markup=False, timeout=4)

    # --- marks and bulk ---------------------------------------------------------------------------------------

    def action_mark(self) -> None:
        self.queue.toggle_mark()
        self.refresh_bindings()
        self._title()
        self.action_move(1)

    def action_bulk_accept(self) -> None:
        self._bulk("accept")

    def action_bulk_reject(self) -> None:
        self._bulk("reject")

    def _bulk(self, action: str) -> None:
        marked = list(self.queue.marked.values())
        if not marked:
            self.notify("Mark items with space first.", markup=False)
            return
        noun = NOUN[self.target][0 if len(marked) == 1 else 1]
        verb = "Accept" if action == "accept" else "Reject"
        question = f"{verb} {len(marked):,} marked {noun}?"

        def answered(yes: bool | None) -> None:
            if yes:
                self._bulk_write(action, marked)

        self.app.push_screen(ConfirmScreen(question, "One undo (u) reverts them all."), callback=answered)

    def _bulk_write(self, action: str, marked: list[QueueRow]) -> None:
        rows = [(row.id, row.state) for row in marked]
        try:
            outcomes = self.session.call(review.bulk_decide, self.target, rows, action, self.reviewer)
        except ReviewError as e:
            self.notify(f"Nothing was written: {e}", severity="error", markup=False)
            return
        self._applied(outcomes)
        self.queue.clear_marks()
        self.refresh_bindings()
        self._title()
        self._show_current()
        changed = sum(o.conflict is not None for o in outcomes)
        note = f"; {changed} had been changed by another reviewer meanwhile" if changed else ""
        self.notify(f"{len(outcomes):,} {action}ed{note} (u undoes all).", markup=False, timeout=4)

    # --- editing ----------------------------------------------------------------------------------------------

    def action_edit(self) -> None:
        item = self.item
        if item is None or item.target != "pair":
            return
        title = f"Passage of pair {item.id} · ctrl+s save · escape cancel"
        self.app.push_screen(EditScreen(item.passage, title), callback=lambda text: self._edited(item, text))

    def action_edit_external(self) -> None:
        item = self.item
        if item is None or item.target != "pair":
            return
        text = edit_externally(self.app, item.passage)
        if text is None:
            self.notify("The editor did not run here (no terminal to hand over?): use e.", markup=False)
            return
        self._edited(item, text)

    def _edited(self, item: Item, text: str | None) -> None:
        if text is None or text == item.passage:
            return
        try:
            outcome = self.session.call(review.edit_passage, item.id, text, item.state, self.reviewer)
        except ReviewError as e:
            self.notify(str(e), severity="error", markup=False)
            return
        self._applied([outcome])
        self._show_current()
        self.notify("Passage saved for this pair (u to undo).", markup=False, timeout=3)

    # --- filters and modes ------------------------------------------------------------------------------------

    def action_filter_text(self) -> None:
        find = self.query_one("#find", Input)
        find.value = self.flt.text
        find.display = True
        find.focus()

    @on(Input.Submitted, "#find")
    def _find(self, event: Input.Submitted) -> None:
        self._close_find()
        self._refilter(replace(self.flt, text=event.value.strip()))

    def _close_find(self) -> None:
        find = self.query_one("#find", Input)
        find.display = False
        self.set_focus(None)

    def action_filter(self) -> None:
        choices = self.session.call(review.filter_choices, self.target)
        source = "Source" if self.target == "pair" else "Miner"
        self.app.push_screen(FilterScreen(self.flt, choices, source), callback=self._filtered)

    def _filtered(self, flt: QueueFilter | None) -> None:
        if flt is not None:
            self._refilter(flt)

    def _refilter(self, flt: QueueFilter) -> None:
        if flt != self.flt:
            self.flt = flt
            self._reload()

    def action_switch_mode(self) -> None:
        if self.query_one("#find").display:
            return
        self.target = "negative" if self.target == "pair" else "pair"
        self.flt = DEFAULT_FILTER
        self.queue.clear_marks()
        self.refresh_bindings()
        self.detail.show(None, empty="loading…")
        self._reload()

    def action_back(self) -> None:
        if self.query_one("#find").display:
            self._close_find()
        elif self.flt != DEFAULT_FILTER:
            self._refilter(DEFAULT_FILTER)
        else:
            self.dismiss(None)


def _undo_message(outcomes: list[Outcome]) -> str:
    superseded = [o for o in outcomes if o.superseded]
    first = outcomes[-1]
    if len(outcomes) == 1 and superseded:
        return (f"{first.target} {first.id} was decided again by another reviewer since: left as it is "
                "(your decision is marked undone).")  # fmt: skip
    if len(outcomes) == 1:
        return f"Undone on {first.target} {first.id}: {restored_text(first)}."
    note = f" ({len(superseded)} left as another reviewer set them since)" if superseded else ""
    return f"Undone: {len(outcomes) - len(superseded):,} decisions of one bulk action{note}."


def restored_text(outcome: Outcome) -> str:
    """What an undo put back, from the state before and after it: an edit's undo restores text, not a label."""
    before, after = outcome.before, outcome.after
    changes = []
    if before.get("label") != after.get("label"):
        changes.append(f"label back to {after.get('label', '?')}")
    if before.get("edited_text_hash") != after.get("edited_text_hash"):
        edited = after.get("edited_text_hash") is not None
        changes.append("its earlier edited passage is back" if edited else "passage edit removed: corpus text again")
    return " and ".join(changes) or "nothing needed restoring"
