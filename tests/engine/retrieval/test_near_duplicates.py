"""Near-duplicate queries: the sample project's paraphrase copy is caught, template variants are not, and the
prefix-filtered join finds exactly the pairs a brute-force comparison finds."""

from __future__ import annotations

import random

import pytest

from engine.retrieval.near_duplicates import find_near_duplicates, is_template_variant, similarity

THRESHOLD = 0.7  # project.yaml's default leakage.near_duplicate_threshold
TE_A015 = ("te-a015", "forgot to put the storm event code on a claim, does it matter?")
TR_B057_3 = ("tr-b057-3", "forgot to put the storm code on a claim does it matter")


def test_the_sample_projects_paraphrase_copy_is_a_near_duplicate() -> None:
    found = find_near_duplicates([TE_A015], [("tr-x", "who approves a reserve increase"), TR_B057_3], THRESHOLD)
    assert len(found) == 1
    pair = found[0]
    assert (pair.query_id, pair.reference_id) == ("te-a015", "tr-b057-3")
    assert (pair.query_text, pair.reference_text) == (TE_A015[1], TR_B057_3[1])
    assert pair.similarity == pytest.approx(0.8352, abs=1e-4)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "customer left a voicemail over the weekend, when does the clock start?",
            "when does the clock start if the customer left a voicemail over the weekend",
        ),
        ("TNFAIP3 is a tumor suppressor in glioblastoma.", "TNFAIP3 is a glioblastoma tumor suppressor."),
        ("forgot to put the strom event code on a claim", "forgot to put the storm event code on a claim"),  # typo
        ("who pays when the car is totaled by the flood", "who pays when the car is total by the flood"),
    ],
)
def test_reordered_retyped_and_inflected_copies_are_near_duplicates(a: str, b: str) -> None:
    assert similarity(a, b) >= THRESHOLD
    assert not is_template_variant(a, b)
    assert find_near_duplicates([("q", a)], [("r", b)], THRESHOLD)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # one template, another slot: two questions, however many characters they share
        (
            "what is the deductible for a windstorm claim on a rental property",
            "what is the deductible for a hailstorm claim on a rental property",
        ),
        ("who approves a reserve increase over 50k", "who approves a reserve increase over 10k"),
        ("can I pay the contractor directly for roof repairs", "can I pay the contractor directly for water repairs"),
        ("what is the deductible for flood claims", "what is the deductible for hail claims"),
        ("how long do we keep closed claim files", "how long do we keep open claim files"),
        (
            "varenicline is more effective after 12 weeks of treatment",
            "varenicline is more effective after 26 weeks of treatment",
        ),
        ("when do we use subrogation", "how do we use subrogation"),
        # different questions that merely share words
        ("how can I tell if I'm drinking enough water?", "how can I tell if water stains are old"),
        (
            "can I tell the customer their claim will go faster with our contractor?",
            "can I tell the customer their policy lapsed",
        ),
    ],
)
def test_different_questions_sharing_a_template_are_not_flagged(a: str, b: str) -> None:
    assert not find_near_duplicates([("q", a)], [("r", b)], THRESHOLD)


def test_the_closest_reference_is_reported_once_per_query_in_query_order() -> None:
    queries = [("q2", "how do I reopen a closed claim file today"), TE_A015, ("q3", "something else entirely")]
    refs = [
        ("r1", "forgot to put the storm event code on the claim, does it matter"),
        TR_B057_3,
        ("r2", "how do i reopen a closed claim file"),
        ("r2-again", "How do I reopen a closed claim file?"),  # the same text under a second id: the first wins
    ]
    found = find_near_duplicates(queries, refs, THRESHOLD)
    assert [(d.query_id, d.reference_id) for d in found] == [("q2", "r2"), ("te-a015", "r1")]
    assert found[1].similarity > similarity(TE_A015[1], TR_B057_3[1])
    with pytest.raises(ValueError, match="threshold"):
        find_near_duplicates(queries, refs, 0.0)


def test_the_join_finds_exactly_the_pairs_brute_force_finds() -> None:
    rng = random.Random(3)
    words = ["claim", "storm", "code", "flood", "adjuster", "reserve", "file", "customer", "deductible", "policy"]
    words += ["the", "a", "on", "of", "to"]
    base = [" ".join(rng.choices(words, k=rng.randint(3, 9))) for _ in range(150)]
    edited = [t + rng.choice(["", " please", "s", "?"]) for t in base[:60]]
    refs = [(f"r{i}", t) for i, t in enumerate(base)]
    queries = [(f"q{i}", t) for i, t in enumerate(edited + [" ".join(rng.choices(words, k=6)) for _ in range(60)])]
    for threshold in (0.5, 0.7, 0.9):
        found = {(d.query_id, d.similarity) for d in find_near_duplicates(queries, refs, threshold)}
        expected = set()
        for qid, text in queries:
            scores = [similarity(text, r) for _, r in refs if not is_template_variant(text, r)]
            best = max((s for s in scores if s >= threshold), default=None)
            if best is not None:
                expected.add((qid, round(best, 4)))
        assert found == expected
