"""Review in the engine: actions and their events, exact undo at any depth (bulk and false negatives included),
two reviewers at once losing nothing, keyset queues, counters, and the highlight functions."""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.data import review
from engine.data.review import QueueFilter, ReviewError
from engine.data.review_terms import Mark, passage_marks, query_marks, term, terms
from engine.project import Project, open_project
from engine.store.corpus import training_pairs
from engine.store.db import open_db
from engine.store.migrations import migrations
from tests.review_data import add_negatives, review_project

ME, OTHER = "ann", "bob"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return review_project(tmp_path)


def snapshot(project: Project) -> dict[str, list[tuple[Any, ...]]]:
    """Every row review may touch, exactly (texts aside: an edit's text stays stored, harmlessly)."""
    return {t: project.db.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("pairs", "negatives")}


def events(project: Project) -> list[review.Event]:
    return review.history(project)


# --- single actions -----------------------------------------------------------------------------------------


def test_accept_and_reject_write_the_label_and_one_exact_event_each(project: Project) -> None:
    first = review.item(project, "pair", 1)
    assert first is not None
    assert first.state == {"label": "unlabeled", "edited_text_hash": None, "updated_at": None}
    outcome = review.decide(project, "pair", 1, "accept", first.state, ME)
    assert outcome.conflict is None
    row = review.item(project, "pair", 1)
    assert row is not None
    assert row.label == "accepted"
    assert row.state["updated_at"] == outcome.after["updated_at"]
    review.decide(project, "pair", 2, "reject", reviewer=ME)
    log = events(project)
    assert [(e.target, e.target_id, e.action, e.reviewer) for e in log] == [
        ("pair", 1, "accept", ME), ("pair", 2, "reject", ME)
    ]  # fmt: skip
    assert log[0].before == first.state
    assert log[0].after == row.state
    assert log[0].at == row.state["updated_at"]  # the event and the row carry one timestamp
    assert log[1].after["label"] == "rejected"


def test_actions_that_do_not_fit_are_refused_and_write_nothing(project: Project) -> None:
    before = snapshot(project)
    with pytest.raises(ReviewError, match="does not apply"):
        review.decide(project, "pair", 1, "false_negative", reviewer=ME)
    with pytest.raises(ReviewError, match="no longer exists"):
        review.decide(project, "pair", 9999, "accept", reviewer=ME)
    with pytest.raises(ReviewError, match="empty"):
        review.edit_passage(project, 1, "   ", reviewer=ME)
    assert snapshot(project) == before
    assert events(project) == []


def test_reviewer_comes_from_the_environment_or_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBTUNE_REVIEWER", "carol")
    assert review.reviewer_name() == "carol"
    monkeypatch.setenv("EMBTUNE_REVIEWER", "")
    monkeypatch.setattr(review.getpass, "getuser", lambda: "osuser")
    assert review.reviewer_name() == "osuser"


def test_edit_stores_the_passage_once_training_uses_it_and_undo_restores_the_hash(project: Project) -> None:
    item = review.item(project, "pair", 13)  # a train pair
    assert item is not None
    assert item.split == "train"
    new_text = "The subrogation rule, shortened by the reviewer."
    outcome = review.edit_passage(project, 13, new_text, item.state, ME)
    edited = review.item(project, "pair", 13)
    assert edited is not None
    assert edited.passage == new_text
    assert edited.original == item.passage  # the chunk itself is unchanged
    assert edited.label == item.label
    assert outcome.before["edited_text_hash"] is None
    assert outcome.after["edited_text_hash"] == edited.state["edited_text_hash"]
    used = {p.query_id: p.passage for p in training_pairs(project.db)}
    assert used[item.query_id] == new_text
    review.edit_passage(project, 13, new_text, reviewer=ME)  # the same text again: stored once
    count = project.db.execute("SELECT count(*) FROM texts WHERE text = ?", [new_text]).fetchone()[0]
    assert count == 1
    cleared = review.edit_passage(project, 13, item.passage, reviewer=ME)  # back to the chunk's own text
    assert cleared.after["edited_text_hash"] is None
    for _ in range(3):
        review.undo(project, ME)
    restored = review.item(project, "pair", 13)
    assert restored is not None
    assert restored.state == item.state


# --- undo ---------------------------------------------------------------------------------------------------


def test_undo_at_any_depth_restores_each_prior_state_exactly(project: Project) -> None:
    negatives = add_negatives(project, [0.1, 0.2])
    states = [snapshot(project)]
    steps = [
        lambda: review.decide(project, "pair", 1, "accept", reviewer=ME),
        lambda: review.decide(project, "pair", 1, "reject", reviewer=ME),
        lambda: review.edit_passage(project, 1, "edited text", reviewer=ME),
        lambda: review.decide(project, "negative", negatives[0], "false_negative", reviewer=ME),
        lambda: review.bulk_decide(project, "pair", [(2, None), (3, None), (1, None)], "accept", ME),
        lambda: review.decide(project, "negative", negatives[1], "reject", reviewer=ME),
    ]
    for step in steps:
        step()
        states.append(snapshot(project))
    for expected in reversed(states[:-1]):
        assert review.undo(project, ME)
        assert snapshot(project) == expected
    assert review.undo(project, ME) == []  # nothing left to undo
    log = events(project)
    decisions = [e for e in log if e.action != "undo"]
    assert all(e.undone_by is not None for e in decisions)
    undos = {e.id: e for e in log if e.action == "undo"}
    for decision in decisions:
        undo_event = undos[decision.undone_by]  # type: ignore[index]
        assert (undo_event.target, undo_event.target_id) == (decision.target, decision.target_id)
        assert undo_event.after == {k: decision.before[k] for k in undo_event.after}


def test_undo_is_per_reviewer(project: Project) -> None:
    review.decide(project, "pair", 1, "accept", reviewer=ME)
    review.decide(project, "pair", 2, "reject", reviewer=OTHER)
    undone = review.undo(project, ME)
    assert [(o.id, o.after["label"]) for o in undone] == [(1, "unlabeled")]
    assert review.item(project, "pair", 2).label == "rejected"  # type: ignore[union-attr]
    assert review.undo(project, ME) == []


def test_a_bulk_action_is_one_transaction_one_batch_and_one_undo(project: Project) -> None:
    review.decide(project, "pair", 9, "reject", reviewer=ME)
    rows = [(i, review.item(project, "pair", i).state) for i in (1, 2, 3, 4)]  # type: ignore[union-attr]
    outcomes = review.bulk_decide(project, "pair", rows, "accept", ME)
    assert [o.label for o in outcomes] == ["accepted"] * 4
    batch = {e.batch for e in events(project) if e.action == "accept"}
    assert len(batch) == 1
    assert None not in batch
    undone = review.undo(project, ME)
    assert sorted(o.id for o in undone) == [1, 2, 3, 4]
    assert all(review.item(project, "pair", i).label == "unlabeled" for i in (1, 2, 3, 4))  # type: ignore[union-attr]
    assert review.item(project, "pair", 9).label == "rejected"  # type: ignore[union-attr]
    assert [o.id for o in review.undo(project, ME)] == [9]


def test_a_bulk_action_on_a_missing_row_writes_nothing(project: Project) -> None:
    before = snapshot(project)
    with pytest.raises(ReviewError):
        review.bulk_decide(project, "pair", [(1, None), (9999, None)], "accept", ME)
    assert snapshot(project) == before
    assert events(project) == []


# --- false negatives ----------------------------------------------------------------------------------------


def test_false_negative_becomes_an_accepted_pair_of_the_querys_split_and_undo_deletes_it(project: Project) -> None:
    [negative] = add_negatives(project, [0.05])
    item = review.item(project, "negative", negative)
    assert item is not None
    assert item.positive is not None
    assert "subrogation" in item.positive  # the query's own positive is shown beside the negative
    pairs_before = snapshot(project)["pairs"]
    outcome = review.decide(project, "negative", negative, "false_negative", item.state, ME)
    assert outcome.after["label"] == "false_negative"
    assert outcome.after["pair_created"] is True
    pair = review.item(project, "pair", outcome.after["pair_id"])
    assert pair is not None
    assert (pair.query_id, pair.doc_id, pair.split, pair.source, pair.label) == (
        item.query_id, item.doc_id, "train", review.FALSE_NEGATIVE_SOURCE, "accepted"
    )  # fmt: skip
    [undone] = review.undo(project, ME)
    assert undone.after["label"] == "unlabeled"
    assert review.item(project, "pair", outcome.after["pair_id"]) is None
    assert snapshot(project)["pairs"] == pairs_before


def test_false_negative_on_an_existing_pair_keeps_that_pair(project: Project) -> None:
    [negative] = add_negatives(project, [0.05])
    refs = project.db.execute("SELECT query_id, chunk_id FROM negatives WHERE id = ?", [negative]).fetchone()
    project.db.execute("INSERT INTO pairs (query_id, chunk_id, split, source) VALUES (?, ?, 'train', 'x')", refs)
    existing = project.db.execute("SELECT max(id) FROM pairs").fetchone()[0]
    outcome = review.decide(project, "negative", negative, "false_negative", reviewer=ME)
    assert outcome.after["pair_id"] == existing
    assert outcome.after["pair_created"] is False
    review.undo(project, ME)
    assert review.item(project, "pair", existing) is not None


# --- two reviewers ------------------------------------------------------------------------------------------


def test_a_decision_on_a_row_changed_since_it_was_seen_is_reported_and_both_are_logged(project: Project) -> None:
    seen = review.item(project, "pair", 1).state  # type: ignore[union-attr]
    other = open_project(project.root)  # bob, in another process
    review.decide(other, "pair", 1, "reject", reviewer=OTHER)
    outcome = review.decide(project, "pair", 1, "accept", seen, ME)
    assert outcome.conflict == seen
    assert outcome.before["label"] == "rejected"  # the event says exactly what it replaced
    assert [(e.reviewer, e.after["label"]) for e in events(project)] == [(OTHER, "rejected"), (ME, "accepted")]
    # bob's undo finds ann's later decision: it is superseded, the row keeps ann's label
    [undo] = review.undo(other, OTHER)
    assert undo.superseded
    assert review.item(project, "pair", 1).label == "accepted"  # type: ignore[union-attr]
    # ann's undo brings back exactly what she replaced: bob's decision
    review.undo(project, ME)
    assert review.item(project, "pair", 1).state == outcome.before  # type: ignore[union-attr]
    other.close()


def test_undo_of_a_false_negative_whose_pair_was_reviewed_since_leaves_both(project: Project) -> None:
    [negative] = add_negatives(project, [0.05])
    outcome = review.decide(project, "negative", negative, "false_negative", reviewer=ME)
    review.decide(project, "pair", outcome.after["pair_id"], "reject", reviewer=OTHER)
    [undo] = review.undo(project, ME)
    assert undo.superseded
    assert review.item(project, "negative", negative).label == "false_negative"  # type: ignore[union-attr]
    assert review.item(project, "pair", outcome.after["pair_id"]).label == "rejected"  # type: ignore[union-attr]


def _hammer(root: Path, reviewer: str, seed: int, rounds: int, done: list[list[review.Outcome]],
            errors: list[BaseException]) -> None:  # fmt: skip
    project = open_project(root)  # its own connection, as a second reviewer's process would have
    rng = random.Random(seed)
    outcomes: list[review.Outcome] = []
    try:
        for _ in range(rounds):
            pair_id = rng.randint(1, 4)  # few rows, so the two reviewers collide all the time
            seen = review.item(project, "pair", pair_id).state  # type: ignore[union-attr]
            time.sleep(rng.random() * 0.002)  # "reading": the other reviewer gets to act in between
            roll = rng.random()
            if roll < 0.15:
                outcomes += review.undo(project, reviewer)
            elif roll < 0.25:
                text = f"{reviewer} text {rng.randint(0, 3)}"
                outcomes.append(review.edit_passage(project, pair_id, text, seen, reviewer))
            elif roll < 0.35:
                outcomes += review.bulk_decide(project, "pair", [(pair_id, seen), (5, None)], "reject", reviewer)
            else:
                action = rng.choice(["accept", "reject"])
                outcomes.append(review.decide(project, "pair", pair_id, action, seen, reviewer))
    except BaseException as e:  # surfaced by the test: a thread's exception would be lost otherwise
        errors.append(e)
    finally:
        project.close()
        done.append(outcomes)


def test_two_reviewers_hammering_the_same_rows_lose_no_event_and_no_label(project: Project) -> None:
    done: list[list[review.Outcome]] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_hammer, args=(project.root, who, seed, 150, done, errors))
               for seed, who in enumerate((ME, OTHER))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    log = events(project)
    outcomes = [o for mine in done for o in mine]
    assert sorted(o.event_id for o in outcomes) == [e.id for e in log]  # every action of both is in the log
    assert sum(a.reviewer != b.reviewer for a, b in itertools.pairwise(log)) > 20  # they really interleaved
    assert any(o.conflict for o in outcomes)  # and acted on rows the other had just changed
    fields = ("label", "edited_text_hash", "updated_at")
    for pair_id in range(1, 6):
        chain = [e for e in log if e.target_id == pair_id]
        state = {"label": "unlabeled", "edited_text_hash": None, "updated_at": None}
        for event in chain:  # each event replaced exactly what the previous one left: no update was lost
            assert {f: event.before[f] for f in fields} == state, (pair_id, event)
            state = {f: event.after[f] for f in fields}
        final = review.item(project, "pair", pair_id)
        assert final is not None
        assert final.state == state
        if chain:
            assert final.label in {e.after["label"] for e in chain} | {"unlabeled"}


# --- queues and counters ------------------------------------------------------------------------------------


def _walk(project: Project, target: review.Target, flt: QueueFilter, limit: int) -> list[review.QueueRow]:
    rows: list[review.QueueRow] = []
    page = review.queue(project, target, flt, limit=limit)
    while page:
        rows += page
        page = review.queue(project, target, flt, after=page[-1], limit=limit)
    return rows


def test_pairs_queue_pages_by_keyset_through_every_row_in_id_order(project: Project) -> None:
    rows = _walk(project, "pair", QueueFilter(), limit=7)
    assert [r.id for r in rows] == list(range(1, 93))
    assert rows[0].snippet == "when do we use subrogation"
    back = review.queue(project, "pair", before=rows[50], limit=5)
    assert [r.id for r in back] == [46, 47, 48, 49, 50]


def test_pairs_queue_filters_by_label_source_split_and_text(project: Project) -> None:
    review.bulk_decide(project, "pair", [(1, None), (20, None), (30, None)], "accept", ME)
    accepted = _walk(project, "pair", QueueFilter(label="accepted"), limit=2)
    assert [r.id for r in accepted] == [1, 20, 30]
    assert len(_walk(project, "pair", QueueFilter(split="gate"), limit=5)) == 12
    assert len(_walk(project, "pair", QueueFilter(source="beir/qrels", split="train"), limit=50)) == 80
    assert _walk(project, "pair", QueueFilter(source="nowhere"), limit=5) == []
    by_query = _walk(project, "pair", QueueFilter(text="SALVAGE"), limit=5)  # case-insensitive, query text
    assert {r.snippet for r in by_query} >= {"when do we use salvage", "question 0 about salvage handling"}
    by_passage = _walk(project, "pair", QueueFilter(text="reaches stage 17."), limit=5)  # passage text
    assert len(by_passage) == 2
    assert _walk(project, "pair", QueueFilter(text="100%"), limit=5) == []  # LIKE wildcards are literal
    choices = review.filter_choices(project, "pair")
    assert choices == {"label": ["unlabeled", "accepted", "rejected"], "source": ["beir/qrels"],
                       "split": ["gate", "train"]}  # fmt: skip


def test_negatives_queue_runs_smallest_margin_first_and_unscored_last(project: Project) -> None:
    margins = [0.3, None, 0.01, 0.2, None, -0.05, 0.2]
    ids = add_negatives(project, margins)
    rows = _walk(project, "negative", QueueFilter(), limit=2)
    expected = [ids[5], ids[2], ids[3], ids[6], ids[0], ids[1], ids[4]]  # ties and unscored in id order
    assert [r.id for r in rows] == expected
    back = review.queue(project, "negative", before=rows[5], limit=3)
    assert [r.id for r in back] == expected[2:5]
    review.decide(project, "negative", ids[3], "reject", reviewer=ME)
    assert [r.id for r in _walk(project, "negative", QueueFilter(label="unlabeled"), 2)] == [
        i for i in expected if i != ids[3]
    ]
    assert review.next_unlabeled(project, "negative", None, rows[1]).id == ids[6]  # type: ignore[union-attr]
    assert len(_walk(project, "negative", QueueFilter(source="test-miner", split="train"), 3)) == 7
    assert _walk(project, "negative", QueueFilter(split="gate"), 3) == []


@pytest.mark.parametrize("target", ["pair", "negative"])
@pytest.mark.parametrize(
    "flt",
    [QueueFilter(), QueueFilter(label="unlabeled"), QueueFilter(source="x"), QueueFilter(split="train"),
     QueueFilter(label="accepted", source="x", split="train")],
)  # fmt: skip
def test_queue_pages_read_an_index_in_queue_order(project: Project, target: review.Target, flt: QueueFilter) -> None:
    from engine.store.review import _queue_sql

    for backwards in (False, True):
        sql, params = _queue_sql(target, flt, backwards=backwards, has_cursor=True)
        plan = " ".join(r[3] for r in project.db.execute(f"EXPLAIN QUERY PLAN {sql}", [0, 0, 0, *params, 1]))
        assert "TEMP B-TREE" not in plan, plan  # no sort of every matching row: a page costs the same anywhere
        assert "SEARCH" in plan.split(" q ")[0], plan  # the driving table is searched (a seek), not scanned


def test_next_unlabeled_skips_reviewed_rows(project: Project) -> None:
    review.bulk_decide(project, "pair", [(2, None), (3, None)], "accept", ME)
    first = review.queue(project, "pair", limit=1)[0]
    assert review.next_unlabeled(project, "pair", None, first).id == 4  # type: ignore[union-attr]
    gate = QueueFilter(split="gate")
    assert review.next_unlabeled(project, "pair", gate, first).id == 4  # type: ignore[union-attr]
    last = review.queue(project, "pair", before=review.queue(project, "pair", limit=200)[-1], limit=1)[0]
    assert review.next_unlabeled(project, "pair", None, review.queue(project, "pair", after=last)[0]) is None


def test_counter_counts_reviewed_total_and_todays_standing_decisions(project: Project) -> None:
    assert review.counter(project, "pair", ME) == review.Counter(0, 92, 0)
    review.bulk_decide(project, "pair", [(1, None), (2, None)], "accept", ME)
    review.decide(project, "pair", 3, "reject", reviewer=ME)
    review.decide(project, "pair", 4, "reject", reviewer=OTHER)
    assert review.counter(project, "pair", ME) == review.Counter(4, 92, 3)
    review.undo(project, ME)
    assert review.counter(project, "pair", ME) == review.Counter(3, 92, 2)


def test_day_start_is_local_midnight_in_the_stores_format() -> None:
    from datetime import datetime

    start = review.day_start(datetime(2026, 3, 4, 15, 30).astimezone())
    assert start.endswith(".000Z")
    assert len(start) == len("2026-03-04T00:00:00.000Z")
    assert start <= review.now_iso()


def test_migration_m004_keeps_older_events(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    old = open_db(path, migrate=False)
    migrations.apply(old, stop_before="m004_review")
    old.execute("INSERT INTO review_events (target, target_id, action, before_json, after_json) "
                "VALUES ('pair', 1, 'accept', '{}', '{}')")  # fmt: skip
    old.conn.close()
    db = open_db(path)
    assert db.execute("SELECT action, batch FROM review_events").fetchall() == [("accept", None)]


# --- highlighting (pure) ------------------------------------------------------------------------------------


def spans(text: str, marks: list[Mark]) -> list[tuple[str, str]]:
    return [(text[m.start : m.end], m.kind) for m in marks]


def test_term_folds_case_possessives_and_plurals() -> None:
    assert term("Claims") == "claim"
    assert term("adjuster's") == "adjuster"
    assert term("policies") == "policy"
    assert term("batches") == "batch"
    assert term("loss") == "loss"  # not a plural
    assert term("bus") == "bus"
    assert terms("What is the deductible for THE claims?") == {"deductible", "claim"}


def test_passage_marks_show_where_query_terms_occur() -> None:
    passage = "Claims adjusters apply the deductible once per claim."
    marks = passage_marks(passage, "what is the deductible on a claim")
    assert spans(passage, marks) == [("Claims", "match"), ("deductible", "match"), ("claim", "match")]


def test_query_marks_say_which_terms_the_passage_lacks() -> None:
    query = "deductible for flood claims"
    marks = query_marks(query, "The deductible applies to each claim.")
    assert spans(query, marks) == [("deductible", "match"), ("flood", "missing"), ("claims", "match")]


def test_negative_marks_show_words_the_positive_lacks() -> None:
    positive = "Subrogation lets the insurer recover the payment from the at-fault party."
    near_duplicate = "Subrogation lets the insurer recover the payment from the responsible party."
    marks = passage_marks(near_duplicate, "what is subrogation", positive)
    assert spans(near_duplicate, marks) == [("Subrogation", "match"), ("responsible", "differs")]
    assert passage_marks("", "anything", positive) == []
