"""Review: label pairs and triage mined negatives, one event per action, exact undo, safe with two reviewers.

Every action is one BEGIN IMMEDIATE transaction that reads the row's current state, writes the new state and
appends a review_events row whose before_json is the state it actually replaced. Writers queue on that lock, so
no update and no event is lost with two reviewers (or processes) at once, and each row's events chain exactly:
one's after is the next one's before.

Concurrency policy: the caller passes the state it saw. When another reviewer changed the row meanwhile, the
action still applies (last writer wins; both decisions stay in the log) and the Outcome carries `conflict` (the
state it saw), so the UI says so instead of clobbering silently, and the other reviewer's decision is one `u`
away for whoever wants it back.

Undo reverts the reviewer's latest decision not yet undone (a bulk action's whole batch), restoring before_json
exactly (updated_at included), and links it by undone_by to an 'undo' event. If the row changed since (another
reviewer decided after), that decision is superseded: undo leaves the row alone, records an 'undo' event with
before == after and reports `superseded`, so an earlier decision's undo never overwrites a later one.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from engine.errors import EmbtuneError
from engine.project import Project
from engine.store import review as store
from engine.store._sqlite_utils import Database
from engine.store.db import write
from engine.store.review import STATE, Event, QueueFilter, Target
from engine.store.schema import NEGATIVE_LABELS, PAIR_LABELS, text_hash

LABELS = {"pair": PAIR_LABELS, "negative": NEGATIVE_LABELS}
ACTIONS = {"accept": "accepted", "reject": "rejected", "false_negative": "false_negative"}
FALSE_NEGATIVE_SOURCE = "review:false_negative"
PAGE = 200
END = (float("inf"), 2**62)  # a keyset cursor past every row: unscored negatives sort at +inf
State = dict[str, Any]


class ReviewError(EmbtuneError):
    """An action that cannot apply: the row is gone, or the action does not fit the target."""


@dataclass(frozen=True)
class QueueRow:
    target: Target
    id: int
    snippet: str  # the start of the query
    key: float  # the queue's sort key: the id for pairs, positive_score - score for negatives
    state: State

    @property
    def label(self) -> str:
        return str(self.state["label"])

    @property
    def cursor(self) -> tuple[float, int]:
        return (self.key, self.id)


@dataclass(frozen=True)
class Item:
    target: Target
    id: int
    state: State
    query_id: str
    query: str
    passage: str  # the positive (edited text when edited) or the negative
    split: str
    source: str  # a pair's source, a negative's miner
    doc_id: str
    score: float | None
    original: str | None = None  # a pair's own chunk text, when the passage is an edit
    positive: str | None = None  # a negative's query's positive passage
    positive_score: float | None = None

    @property
    def label(self) -> str:
        return str(self.state["label"])


@dataclass(frozen=True)
class Outcome:
    target: Target
    id: int
    action: str
    before: State
    after: State
    event_id: int
    conflict: State | None = None  # the state the caller saw, when the row had changed meanwhile
    superseded: bool = False  # an undo that found a later decision and left the row alone

    @property
    def label(self) -> str | None:
        return self.after.get("label")


@dataclass(frozen=True)
class Counter:
    reviewed: int
    total: int
    today: int  # this reviewer's decisions since local midnight that still stand


def reviewer_name() -> str:
    """$EMBTUNE_REVIEWER, else the OS user: undo and the today counter are per reviewer."""
    name = os.environ.get("EMBTUNE_REVIEWER", "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _iso(moment: datetime) -> str:
    # SQLite's strftime('%Y-%m-%dT%H:%M:%fZ'): string order is time order, as the store's defaults write it.
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return _iso(datetime.now(timezone.utc))


def day_start(now: datetime | None = None) -> str:
    """The reviewer's local midnight, in the store's UTC format."""
    local = (now or datetime.now()).astimezone()
    return _iso(local.replace(hour=0, minute=0, second=0, microsecond=0))


# --- reading --------------------------------------------------------------------------------------------------


def queue(
    project: Project,
    target: Target,
    flt: QueueFilter | None = None,
    *,
    after: QueueRow | None = None,
    before: QueueRow | None = None,
    at_end: bool = False,
    limit: int = PAGE,
) -> list[QueueRow]:
    """A page of the queue, in queue order: from the start, after `after`, the page ending before `before`,
    or (at_end) the last page."""
    flt = flt or QueueFilter()
    cursor = after.cursor if after else before.cursor if before else END if at_end else None
    backwards = before is not None or at_end
    rows = store.queue_rows(project.db, target, flt, cursor, backwards=backwards, limit=limit)
    fields = STATE[target]
    return [QueueRow(target, r[0], r[1], r[2], dict(zip(fields, r[3:], strict=True))) for r in rows]


def next_unlabeled(
    project: Project, target: Target, flt: QueueFilter | None = None, after: QueueRow | None = None
) -> QueueRow | None:
    rows = queue(project, target, replace(flt or QueueFilter(), label="unlabeled"), after=after, limit=1)
    return rows[0] if rows else None


def item(project: Project, target: Target, row_id: int) -> Item | None:
    db = project.db
    if target == "pair":
        p = store.pair_item(db, row_id)
        if p is None:
            return None
        state = {f: p[f] for f in STATE["pair"]}
        edited = p["edited"]
        return Item(
            "pair",
            p["id"],
            state,
            p["query_id"],
            p["query"],
            edited if edited is not None else p["original"],
            p["split"],
            p["source"],
            p["doc_id"],
            p["score"],
            original=p["original"] if edited else None,
        )
    n = store.negative_item(db, row_id)
    if n is None:
        return None
    state = {f: n[f] for f in STATE["negative"]}
    return Item(
        "negative",
        n["id"],
        state,
        n["query_id"],
        n["query"],
        n["negative"],
        n["split"],
        n["source"],
        n["doc_id"],
        n["score"],
        positive=n["positive"],
        positive_score=n["positive_score"],
    )


def counter(project: Project, target: Target, reviewer: str | None = None) -> Counter:
    by_label = store.label_counts(project.db, target)
    total = sum(by_label.values())
    today = store.decisions_since(project.db, reviewer or reviewer_name(), day_start())
    return Counter(total - by_label.get("unlabeled", 0), total, today)


def filter_choices(project: Project, target: Target) -> dict[str, list[str]]:
    """The values each filter can take: label, source (a negative's miner) and split."""
    return {"label": list(LABELS[target]), **store.choices(project.db, target)}


def history(project: Project, target: Target | None = None, row_id: int | None = None) -> list[Event]:
    return store.events(project.db, target, row_id)


# --- actions ------------------------------------------------------------------------------------------------


def decide(
    project: Project,
    target: Target,
    row_id: int,
    action: str,
    seen: State | None = None,
    reviewer: str | None = None,
) -> Outcome:
    """accept, reject, or (negatives only) false_negative: the mined negative is relevant after all, so it
    becomes a positive pair of its query (split of the query, source 'review:false_negative', accepted)."""
    with write(project.db) as db:
        return _decide(db, target, row_id, action, seen, reviewer or reviewer_name(), now_iso(), None)


def bulk_decide(
    project: Project,
    target: Target,
    rows: Sequence[tuple[int, State | None]],
    action: str,
    reviewer: str | None = None,
) -> list[Outcome]:
    """One decision for many rows, (id, state seen) each: one transaction, one event per row, one batch, so a
    single undo reverts them all."""
    who, at = reviewer or reviewer_name(), now_iso()
    with write(project.db) as db:
        batch = store.next_batch(db)
        return [_decide(db, target, row_id, action, seen, who, at, batch) for row_id, seen in rows]


def edit_passage(
    project: Project, pair_id: int, text: str, seen: State | None = None, reviewer: str | None = None
) -> Outcome:
    """Give a pair its own passage text (training uses it; the corpus chunk stays as it is). Text equal to the
    chunk's own clears the edit."""
    if not text.strip():
        raise ReviewError("an edited passage cannot be empty")
    who, at = reviewer or reviewer_name(), now_iso()
    with write(project.db) as db:
        current = _current(db, "pair", pair_id)
        own = text_hash(text) == store.chunk_text_hash(db, pair_id)
        new = {**current, "edited_text_hash": None if own else store.store_text(db, text), "updated_at": at}
        store.set_row_state(db, "pair", pair_id, new)
        event = store.add_event(db, "pair", pair_id, "edit", current, new, who, at)
    return Outcome("pair", pair_id, "edit", current, new, event, _conflict(seen, current))


def undo(project: Project, reviewer: str | None = None) -> list[Outcome]:
    """Revert the reviewer's latest decision not yet undone (a bulk batch as a whole); [] when none is left."""
    who, at = reviewer or reviewer_name(), now_iso()
    with write(project.db) as db:
        last = store.last_undoable(db, who)
        if last is None:
            return []
        events = store.batch_events(db, last.batch) if last.batch is not None else [last]
        batch = store.next_batch(db) if len(events) > 1 else None
        return [_undo_one(db, event, who, at, batch) for event in events]


def _current(db: Database, target: Target, row_id: int) -> State:
    current = store.row_state(db, target, row_id)
    if current is None:
        raise ReviewError(f"{target} {row_id} no longer exists")
    return current


def _conflict(seen: State | None, current: State) -> State | None:
    return seen if seen is not None and seen != current else None


def _decide(db: Database, target: Target, row_id: int, action: str, seen: State | None, reviewer: str,
            at: str, batch: int | None) -> Outcome:  # fmt: skip
    label = ACTIONS.get(action)
    if label is None or label not in LABELS[target]:
        raise ReviewError(f"'{action}' does not apply to a {target}")
    current = _current(db, target, row_id)
    new = {**current, "label": label, "updated_at": at}
    store.set_row_state(db, target, row_id, new)
    after = {**new, **_promote(db, row_id, at)} if action == "false_negative" else new
    event = store.add_event(db, target, row_id, action, current, after, reviewer, at, batch)
    return Outcome(target, row_id, action, current, after, event, _conflict(seen, current))


def _promote(db: Database, negative_id: int, at: str) -> State:
    """The pair a false negative becomes; an existing pair of the same query and chunk is kept as it is."""
    refs = store.negative_refs(db, negative_id)
    assert refs is not None  # the caller just read the row in this transaction
    query_id, chunk_id, split = refs
    existing = store.find_pair(db, query_id, chunk_id)
    if existing is not None:
        return {"pair_id": existing, "pair_created": False}
    pair_id = store.insert_pair(db, query_id, chunk_id, split, FALSE_NEGATIVE_SOURCE, "accepted", at)
    return {"pair_id": pair_id, "pair_created": True}


def _still_as_left(db: Database, event: Event, current: State | None) -> bool:
    """Whether the row (and a pair `n` created) is exactly as the event left it: nobody decided since."""
    if current != {f: event.after[f] for f in STATE[event.target]}:
        return False
    if event.after.get("pair_created"):
        created = {"label": "accepted", "edited_text_hash": None, "updated_at": event.after["updated_at"]}
        return store.row_state(db, "pair", event.after["pair_id"]) == created
    return True


def _undo_one(db: Database, event: Event, reviewer: str, at: str, batch: int | None) -> Outcome:
    current = store.row_state(db, event.target, event.target_id)
    restore = _still_as_left(db, event, current)
    after: State = dict(current or {})
    if restore:
        after = {f: event.before[f] for f in STATE[event.target]}
        store.set_row_state(db, event.target, event.target_id, after)
        if event.after.get("pair_created"):
            store.delete_pair(db, event.after["pair_id"])
    before = dict(current or {})
    undo_id = store.add_event(db, event.target, event.target_id, "undo", before, after, reviewer, at, batch)
    store.set_undone(db, event.id, undo_id)
    return Outcome(event.target, event.target_id, "undo", before, after, undo_id, superseded=not restore)
