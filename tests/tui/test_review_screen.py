"""The review screen under Pilot: every key drives the store (labels, events, exact undo), filters and modes,
paging beyond the first window, another reviewer's change, and bindings that help and the palette can list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static, TextArea

from engine.data import review
from engine.project import Project, open_project
from engine.store.corpus import training_pairs
from tests.review_data import add_negatives, review_project
from tui.app import EmbtuneApp
from tui.commands import palette_commands
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.home import HomeScreen
from tui.screens.review import screen as review_screen
from tui.screens.review.dialogs import EditScreen, FilterScreen
from tui.screens.review.screen import ReviewScreen

SIZE = (120, 40)
ME = "tester"
PAIRS = 80  # tests.review_data.review_project: 80 train pairs (no gate pairs unless asked)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """80 train pairs and 4 negatives: the queue the screen opens on (the train split)."""
    monkeypatch.setenv("EMBTUNE_REVIEWER", ME)
    project = review_project(tmp_path, n_gate=0)
    add_negatives(project, [0.3, None, 0.01, 0.2])
    project.close()
    return project.root


@pytest.fixture
def root_with_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same plus 12 gate pairs (imported first: ids 1-12), which the queue shows only when filtered to."""
    monkeypatch.setenv("EMBTUNE_REVIEWER", ME)
    project = review_project(tmp_path)
    project.close()
    return project.root


def store(root: Path) -> Project:
    return open_project(root)


def labels(root: Path, target: str = "pairs") -> dict[int, str]:
    project = store(root)
    try:
        return dict(project.db.execute(f"SELECT id, label FROM {target} ORDER BY id").fetchall())
    finally:
        project.close()


def snapshot(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    project = store(root)
    try:
        return {t: project.db.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("pairs", "negatives")}
    finally:
        project.close()


def events(root: Path) -> list[review.Event]:
    project = store(root)
    try:
        return review.history(project)
    finally:
        project.close()


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_review(pilot: Pilot[Any]) -> ReviewScreen:
    await settle(pilot)
    await pilot.press("v")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ReviewScreen)
    return screen


def shown(screen: ReviewScreen) -> tuple[str, int] | None:
    item = screen.item
    return (item.target, item.id) if item else None


def text(screen: ReviewScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


# --- opening and deciding -----------------------------------------------------------------------------------


async def test_v_opens_the_queue_with_the_first_pair_its_texts_and_the_counter(root: Path) -> None:
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        assert shown(screen) == ("pair", 1)
        assert len(screen.queue.rows) == PAIRS
        assert "question 0 about subrogation handling" in text(screen, "#item-query")
        assert "The subrogation rule" in text(screen, "#item-passage")
        assert text(screen, "#review-counter") == f"0 / {PAIRS} reviewed · 0 today ({ME})"
        assert not screen.query_one("#item-negative").display
        # the query's terms found in the passage are marked for the reviewer
        passage = screen.query_one("#item-passage", Static).content
        marked = {passage.plain[s.start : s.end] for s in passage.spans}
        assert "subrogation" in marked


async def test_a_x_and_s_write_labels_and_events_at_once_and_advance(root: Path) -> None:
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("a")
        assert labels(root)[1] == "accepted"  # written before the next key: nothing waits for a flush
        await pilot.press("x", "s", "a")
        assert shown(screen) == ("pair", 5)
        assert text(screen, "#review-counter") == f"3 / {PAIRS} reviewed · 3 today ({ME})"
        assert [r.label for r in screen.queue.rows[:4]] == ["accepted", "rejected", "unlabeled", "accepted"]
    current = labels(root)
    assert (current[1], current[2], current[3], current[4]) == ("accepted", "rejected", "unlabeled", "accepted")
    log = events(root)
    assert [(e.target_id, e.action, e.reviewer) for e in log] == [(1, "accept", ME), (2, "reject", ME),
                                                                   (4, "accept", ME)]  # fmt: skip


async def test_u_undoes_any_depth_exactly_and_returns_to_the_item(root: Path) -> None:
    before = snapshot(root)
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("a", "x", "a", "k", "x")  # pair 3 accepted, then rejected
        assert shown(screen) == ("pair", 4)
        await pilot.press("u")
        assert shown(screen) == ("pair", 3)  # back on the item just undone
        assert labels(root)[3] == "accepted"
        await pilot.press("u", "u", "u")
        assert shown(screen) == ("pair", 1)
        await pilot.press("u")  # nothing left: nothing changes
        assert [r.label for r in screen.queue.rows[:4]] == ["unlabeled"] * 4
    assert snapshot(root) == before  # labels and updated_at exactly as they were
    log = events(root)
    assert sum(e.action == "undo" for e in log) == 4
    assert all(e.undone_by for e in log if e.action != "undo")


async def test_keys_that_do_not_fit_the_mode_are_dimmed_and_write_nothing(root: Path) -> None:
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("n", "A", "X")  # no negative here, nothing marked
        assert shown(screen) == ("pair", 1)
        assert screen.check_action("false_negative", ()) is None
        assert screen.check_action("bulk_accept", ()) is None
    assert events(root) == []


# --- bulk ---------------------------------------------------------------------------------------------------


async def test_space_marks_and_bulk_accept_asks_then_writes_one_batch_that_one_undo_reverts(root: Path) -> None:
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("space", "space", "j", "space")
        assert sorted(screen.queue.marked) == [1, 2, 4]
        assert "3 marked" in str(screen.query_one("#review-title", Static).render())
        await pilot.press("A")
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("n")  # declined: nothing written, marks kept
        assert events(root) == []
        assert len(screen.queue.marked) == 3
        await pilot.press("A", "y")
        await pilot.pause()
        assert pilot.app.screen is screen
        assert not screen.queue.marked
        current = labels(root)
        assert [current[i] for i in (1, 2, 3, 4)] == ["accepted", "accepted", "unlabeled", "accepted"]
        assert len({e.batch for e in events(root)}) == 1
        await pilot.press("u")
        assert all(label == "unlabeled" for label in labels(root).values())
        await pilot.press("space", "X", "y")
        await pilot.pause()
    assert list(labels(root).values()).count("rejected") == 1


# --- filters, jumps, paging ---------------------------------------------------------------------------------


async def test_slash_finds_text_in_query_or_passage_and_escape_clears_it(root: Path) -> None:
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("slash")
        find = screen.query_one("#find", Input)
        assert find.has_focus
        await pilot.press(*"salvage", "enter")
        await settle(pilot)
        assert not find.display
        assert len(screen.queue.rows) == 2  # the two train queries about salvage
        assert all("salvage" in row.snippet for row in screen.queue.rows)
        assert screen.item is not None
        assert "salvage" in screen.item.query
        await pilot.press("a")  # keys act again once the find box is closed
        await pilot.press("slash")
        find.value = "stage 17."  # text only in the passages (typing costs ~60 ms a key under Pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert len(screen.queue.rows) == 2
        await pilot.press("escape")
        await settle(pilot)
        assert len(screen.queue.rows) == PAIRS
        await pilot.press("slash")
        find.value = "no such text"
        await pilot.press("enter")
        await settle(pilot)
        assert screen.item is None
        assert "No item matches" in text(screen, "#item-meta")
    assert list(labels(root).values()).count("accepted") == 1


async def test_f_filters_by_label_source_and_split(root_with_gate: Path) -> None:
    root = root_with_gate
    project = store(root)
    review.bulk_decide(project, "pair", [(3, None), (20, None)], "accept", "someone")
    project.close()
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("f")
        dialog = pilot.app.screen
        assert isinstance(dialog, FilterScreen)
        dialog.query_one("#filter-label", Select).value = "accepted"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert [r.id for r in screen.queue.rows] == [20]  # 3 is a gate pair: the split filter starts at train
        assert "label accepted" in str(screen.query_one("#review-title", Static).render())
        await pilot.press("f")
        dialog = pilot.app.screen
        assert isinstance(dialog, FilterScreen)
        dialog.query_one("#filter-label", Select).value = "any"
        dialog.query_one("#filter-split", Select).value = "gate"
        dialog.query_one("#filter-source", Select).value = "beir/qrels"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert len(screen.queue.rows) == 12
        await pilot.press("f", "escape")  # cancelled: the filter stays
        await settle(pilot)
        assert len(screen.queue.rows) == 12
        await pilot.press("escape")  # back to the default filter: the train split
        await settle(pilot)
        assert len(screen.queue.rows) == PAIRS
        await pilot.press("escape")  # and then goes home
        await settle(pilot)
        assert isinstance(pilot.app.screen, HomeScreen)


async def test_bracket_jumps_to_the_next_unreviewed_item(root: Path) -> None:
    project = store(root)
    review.bulk_decide(project, "pair", [(2, None), (3, None), (5, None)], "reject", "someone")
    project.close()
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("right_square_bracket")
        assert shown(screen) == ("pair", 4)
        await pilot.press("right_square_bracket")
        assert shown(screen) == ("pair", 6)


async def test_the_queue_pages_in_beyond_its_first_window(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(review_screen, "PAGE", 10)
    monkeypatch.setattr(review_screen, "PREFETCH", 3)
    project = store(root)
    review.bulk_decide(project, "pair", [(i, None) for i in range(2, 41)], "accept", "someone")
    project.close()
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        assert len(screen.queue.rows) == 10
        for expected in range(2, 16):  # past the first window's end: the next page was fetched ahead
            await pilot.press("j")
            await settle(pilot)
            assert shown(screen) == ("pair", expected)
        assert len(screen.queue.rows) == 20
        await pilot.press("G")
        await settle(pilot)
        assert shown(screen) == ("pair", PAIRS)
        for _ in range(12):  # back up past the end window's start: the page before is fetched
            await pilot.press("k")
            await settle(pilot)
        assert shown(screen) == ("pair", PAIRS - 12)
        await pilot.press("g")
        await settle(pilot)
        assert shown(screen) == ("pair", 1)
        await pilot.press("right_square_bracket")  # far beyond the window: one is loaded around it
        await settle(pilot)
        assert shown(screen) == ("pair", 41)
        await pilot.press("k")
        await settle(pilot)
        assert shown(screen) == ("pair", 40)


# --- triage ---------------------------------------------------------------------------------------------------


async def test_tab_triages_negatives_closest_first_and_n_makes_a_positive_pair(root: Path) -> None:
    negatives = list(labels(root, "negatives"))  # margins 0.3, None, 0.01, 0.2 in id order
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("tab")
        await settle(pilot)
        assert [r.id for r in screen.queue.rows] == [negatives[i] for i in (2, 3, 0, 1)]
        drawn = [screen.queue.render_line(y).text for y in range(4)]  # not the pairs' lines of the same ids
        assert [line[:17] for line in drawn] == [
            f" ·{n:>7} Δ{m}"
            for n, m in zip((negatives[i] for i in (2, 3, 0, 1)), ("+0.010", "+0.200", "+0.300", "  —   "), strict=True)
        ]
        assert shown(screen) == ("negative", negatives[2])
        assert screen.query_one("#item-negative").display
        assert "score 0.500" in str(screen.query_one("#item-negative").border_title)
        assert screen.check_action("edit", ()) is None
        await pilot.press("e")  # a negative has no passage of its own to edit
        assert not isinstance(pilot.app.screen, EditScreen)
        await pilot.press("n")
        assert shown(screen) == ("negative", negatives[3])
        assert labels(root, "negatives")[negatives[2]] == "false_negative"
        pairs = labels(root)
        assert len(pairs) == PAIRS + 1
        project = store(root)
        created = review.item(project, "pair", max(pairs))
        project.close()
        assert created is not None
        assert (created.source, created.label, created.split) == (review.FALSE_NEGATIVE_SOURCE, "accepted", "train")
        await pilot.press("x")
        assert labels(root, "negatives")[negatives[3]] == "rejected"
        await pilot.press("u", "u")
        assert shown(screen) == ("negative", negatives[2])
        await pilot.press("tab")
        await settle(pilot)
        assert shown(screen) == ("pair", 1)
    assert len(labels(root)) == PAIRS  # undo deleted the pair `n` made
    assert set(labels(root, "negatives").values()) == {"unlabeled"}


# --- editing --------------------------------------------------------------------------------------------------


async def test_e_edits_the_passage_in_a_text_area_and_u_restores_it(root: Path) -> None:
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("j", "j", "j", "j", "j", "j", "j", "j", "j", "j", "j", "j")  # pair 13: a train pair
        original = screen.item.passage if screen.item else ""
        await pilot.press("e")
        editor = pilot.app.screen
        assert isinstance(editor, EditScreen)
        editor.query_one(TextArea).text = "A shorter passage about subrogation."
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert pilot.app.screen is screen
        assert shown(screen) == ("pair", 13)  # stays on the item to decide it
        assert "A shorter passage" in text(screen, "#item-passage")
        assert screen.query_one("#item-passage").border_title == "Positive (edited)"
        project = store(root)
        used = {p.query_id: p.passage for p in training_pairs(project.db)}
        query_id = review.item(project, "pair", 13).query_id  # type: ignore[union-attr]
        project.close()
        assert used[query_id] == "A shorter passage about subrogation."
        await pilot.press("e", "escape")  # cancelled: nothing written
        assert len(events(root)) == 1
        await pilot.press("u")
        assert screen.item is not None
        assert screen.item.passage == original
    assert all(e.after.get("edited_text_hash") is None for e in events(root) if e.action == "undo")


async def test_shift_e_edits_in_the_external_editor(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake_editor(app: Any, text: str) -> str:
        seen.append(text)
        return text + " Edited outside."

    monkeypatch.setattr(review_screen, "edit_externally", fake_editor)
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        await pilot.press("E")
        assert seen
        assert screen.item is not None
        assert screen.item.passage == seen[0] + " Edited outside."
        monkeypatch.undo()  # the real one: a headless app cannot hand its terminal over, so nothing is written
        await pilot.press("E")
        await pilot.pause()
        assert any("did not run" in str(n.message) for n in pilot.app._notifications)
    assert [e.action for e in events(root)] == ["edit"]


# --- two reviewers ------------------------------------------------------------------------------------------


async def test_a_decision_on_an_item_another_reviewer_changed_is_recorded_and_reported(root: Path) -> None:
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        other = store(root)
        review.decide(other, "pair", 1, "reject", reviewer="bob")  # while pair 1 is on the screen
        await pilot.press("a")
        await pilot.pause()
        notes = [str(n.message) for n in pilot.app._notifications]
        assert any("changed by another reviewer" in note for note in notes)
        assert shown(screen) == ("pair", 2)
        await pilot.press("k")
        assert screen.item is not None
        assert screen.item.label == "accepted"
        [undo] = review.undo(other, "bob")  # bob's undo leaves the later decision alone
        other.close()
        assert undo.superseded
        await pilot.press("j", "k")  # each landing reads the store again
        assert screen.item.label == "accepted"
    assert [(e.reviewer, e.action) for e in events(root)] == [("bob", "reject"), (ME, "accept"), ("bob", "undo")]


# --- keys: help and palette ---------------------------------------------------------------------------------


def test_every_review_binding_has_a_description_a_tooltip_and_an_id() -> None:
    classes = (ReviewScreen, EditScreen, FilterScreen)
    bindings = [b for cls in classes for b in cls.BINDINGS if isinstance(b, Binding)]
    for binding in bindings:
        assert binding.description, binding
        assert binding.tooltip, binding
        assert binding.id, binding
    ids = [b.id for b in bindings]
    assert len(ids) == len(set(ids))


async def test_help_and_palette_list_the_review_keys(root: Path) -> None:
    async with EmbtuneApp(root).run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        titles = {command.title for command in palette_commands(screen)}
        assert {"Accept", "Reject", "Undo", "Skip", "Find", "Filter", "Next unreviewed", "Mark"} <= titles
        assert "Relevant" not in titles  # dimmed in the pairs queue
        await pilot.press("question_mark")
        assert isinstance(pilot.app.screen, HelpScreen)
        help_text = "\n".join(str(label.render()) for label in pilot.app.screen.query("Label"))
        for binding in ReviewScreen.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.description in help_text, binding
        await pilot.press("escape")
        assert pilot.app.screen is screen
