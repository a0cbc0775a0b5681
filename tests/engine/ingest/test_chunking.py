import itertools
import re

import pytest

from engine.ingest.chunking import (
    DEFAULTS,
    KINDS,
    Chunk,
    ChunkingSpec,
    chunk_text,
    spec_from_dict,
    split_sentences,
)

LONG_DOC = """# Fine-tuning embeddings

Embedding models map text to vectors. Similar texts end up close together, e.g. questions and
their answers. Dr. Rivera measured a 2.5 point gain on No. 3 of the benchmarks!

Why fine-tune at all? General models are trained on web text. Domain jargon, i.e. words like
"stent" or "tort", gets squeezed into a few directions.
## Data

Pairs of (query, passage) are enough. Hard negatives help vs. random ones, cf. the ablation in
Fig. 4 by J. K. Lee et al. who reported 0.7 vs. 0.4 recall.


Short note.

Another short note. It has two sentences.
   
# Evaluation
Recall@10 is the headline metric. MRR follows closely. NDCG is reported too, etc. The end.
"""


def texts(chunks: list[Chunk]) -> list[str]:
    return [c.text for c in chunks]


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("kind", KINDS)
def test_every_chunk_is_the_exact_trimmed_slice(kind: str) -> None:
    params = {"paragraph": {"max_words": 20}, "fixed_tokens": {"size": 12, "overlap": 4}}.get(kind, {})
    chunks = chunk_text(LONG_DOC, spec_from_dict("t", {"kind": kind, **params}))
    assert chunks
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text == LONG_DOC[c.start : c.end]
        assert c.text == c.text.strip()
        assert c.text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", ["", "   ", "\n\n \t\n"])
def test_empty_or_blank_text_gives_no_chunks(kind: str, text: str) -> None:
    assert chunk_text(text, ChunkingSpec(kind=kind)) == []
    assert split_sentences(text) == []


@pytest.mark.parametrize("kind", ["paragraph", "sentence_window"])
def test_chunks_cover_every_word_in_order(kind: str) -> None:
    chunks = chunk_text(LONG_DOC, spec_from_dict("t", {"kind": kind}))
    covered = [w for c in chunks for w in c.text.split()]
    if kind == "paragraph":  # paragraph chunks never overlap
        assert covered == LONG_DOC.split()
    else:  # windows overlap, but together they reach every word
        assert set(covered) == set(LONG_DOC.split())
        assert chunks[-1].end == len(LONG_DOC.rstrip())


# --------------------------------------------------------------------------- whole


def test_whole_is_the_trimmed_document() -> None:
    src = "\n\n  Title line\n\nBody.  \n"
    [chunk] = chunk_text(src, ChunkingSpec(kind="whole"))
    assert chunk == Chunk(position=0, text="Title line\n\nBody.", start=4, end=21)


# --------------------------------------------------------------------------- sentences


def test_split_sentences_basic_punctuation() -> None:
    assert sentences("One. Two! Three? Four") == ["One.", "Two!", "Three?", "Four"]


def test_abbreviations_initials_and_decimals_do_not_split() -> None:
    text = (
        "Mr. Smith and Dr. Jones met, e.g. at noon, i.e. Before lunch. "
        "They compared No. 5 vs. No. 7 etc. and J. R. Tolkien. "
        "The score rose 2.5 points to 71.25 today."
    )
    assert sentences(text) == [
        "Mr. Smith and Dr. Jones met, e.g. at noon, i.e. Before lunch.",
        "They compared No. 5 vs. No. 7 etc. and J. R. Tolkien.",
        "The score rose 2.5 points to 71.25 today.",
    ]


def test_split_needs_capital_digit_or_quote_after_the_stop() -> None:
    text = 'It ended. "Really?" she asked. 42 people agreed. then lowercase continues.'
    assert sentences(text) == [
        "It ended.",
        '"Really?" she asked.',
        "42 people agreed. then lowercase continues.",
    ]


def test_no_before_a_word_ends_the_sentence() -> None:
    assert sentences("She said No. Then she left.") == ["She said No.", "Then she left."]


def test_closing_quotes_stay_with_their_sentence() -> None:
    assert sentences('He wrote "Done." Then he slept.') == ['He wrote "Done."', "Then he slept."]


def test_paragraph_breaks_and_headings_end_sentences() -> None:
    text = "# Title\nno final stop here\n\nNext paragraph starts lowercase? maybe. Yes"
    assert sentences(text) == [
        "# Title\nno final stop here",
        "Next paragraph starts lowercase? maybe.",
        "Yes",
    ]


def test_sentence_spans_are_trimmed_slices() -> None:
    spans = split_sentences(LONG_DOC)
    assert len(spans) > 15
    for s, e in spans:
        assert LONG_DOC[s:e] == LONG_DOC[s:e].strip()
    assert [LONG_DOC[s:e] for s, e in spans][:4] == [
        "# Fine-tuning embeddings",
        "Embedding models map text to vectors.",
        "Similar texts end up close together, e.g. questions and\ntheir answers.",
        "Dr. Rivera measured a 2.5 point gain on No. 3 of the benchmarks!",
    ]


# --------------------------------------------------------------------------- sentence_window


def test_sentence_window_strides_and_covers_the_tail() -> None:
    text = "S1 a. S2 b. S3 c. S4 d. S5 e. S6 f."
    chunks = chunk_text(text, spec_from_dict("sw", {"kind": "sentence_window", "sentences": 3, "stride": 2}))
    assert texts(chunks) == ["S1 a. S2 b. S3 c.", "S3 c. S4 d. S5 e.", "S5 e. S6 f."]


def test_sentence_window_stride_equal_to_size_does_not_overlap() -> None:
    text = "A a. B b. C c. D d. E e."
    chunks = chunk_text(text, ChunkingSpec(kind="sentence_window", sentences=2, stride=2))
    assert texts(chunks) == ["A a. B b.", "C c. D d.", "E e."]


def test_sentence_window_shorter_text_than_window_is_one_chunk() -> None:
    text = "Only one. And two."
    assert texts(chunk_text(text, ChunkingSpec(kind="sentence_window"))) == ["Only one. And two."]


# --------------------------------------------------------------------------- fixed_tokens


def test_fixed_tokens_exact_windows() -> None:
    text = "a b c d e f g h i j"
    chunks = chunk_text(text, spec_from_dict("f", {"kind": "fixed_tokens", "size": 4, "overlap": 1}))
    assert texts(chunks) == ["a b c d", "d e f g", "g h i j"]


def test_fixed_tokens_punctuation_counts_as_tokens() -> None:
    text = "Hi, you! Go."
    chunks = chunk_text(text, ChunkingSpec(kind="fixed_tokens", size=3, overlap=0))
    assert texts(chunks) == ["Hi, you", "! Go."]


def test_fixed_tokens_neighbours_share_exactly_overlap_tokens() -> None:
    size, overlap = 12, 5
    chunks = chunk_text(LONG_DOC, ChunkingSpec(kind="fixed_tokens", size=size, overlap=overlap))
    assert len(chunks) > 5
    all_tokens = tokens(LONG_DOC)
    step = size - overlap
    for i, chunk in enumerate(chunks):
        assert tokens(chunk.text) == all_tokens[i * step : i * step + size]
    for prev, nxt in itertools.pairwise(chunks):
        assert tokens(prev.text)[-overlap:] == tokens(nxt.text)[:overlap]
        shared = LONG_DOC[nxt.start : prev.end]
        assert len(tokens(shared)) == overlap
    assert chunks[-1].end == len(LONG_DOC.rstrip())


def test_fixed_tokens_defaults_are_256_and_32() -> None:
    text = " ".join(f"w{i}" for i in range(500))
    chunks = chunk_text(text, ChunkingSpec(kind="fixed_tokens"))
    assert [len(c.text.split()) for c in chunks] == [256, 256, 52]
    assert chunks[1].text.split()[0] == "w224"


def test_fixed_tokens_custom_tokenizer_spans() -> None:
    text = "unbelievable results"

    def subwords(s: str) -> list[tuple[int, int]]:
        # Offset-mapping style: a special token with an empty span and a leading-space token.
        return [(0, 0), (0, 2), (2, 8), (8, 12), (12, 20), (20, 20)]

    chunks = chunk_text(text, ChunkingSpec(kind="fixed_tokens", size=2, overlap=1), tokenize=subwords)
    assert texts(chunks) == ["unbeliev", "believable", "able results"]
    assert all(c.text == text[c.start : c.end] for c in chunks)


# --------------------------------------------------------------------------- paragraph


def test_paragraph_splits_on_blank_lines_and_headings() -> None:
    text = "First para\nstill first.\n\n  \n\nSecond para.\n# Heading\nUnder heading."
    chunks = chunk_text(text, ChunkingSpec(kind="paragraph", max_words=4))
    assert texts(chunks) == ["First para\nstill first.", "Second para.", "# Heading\nUnder heading."]


def test_paragraph_merges_short_paragraphs_up_to_max_words() -> None:
    text = "one two\n\nthree four\n\nfive six\n\nseven eight nine\n\nten"
    chunks = chunk_text(text, spec_from_dict("p", {"kind": "paragraph", "max_words": 5}))
    assert texts(chunks) == ["one two\n\nthree four", "five six\n\nseven eight nine", "ten"]


def test_paragraph_heading_starts_a_new_chunk_even_when_it_would_fit() -> None:
    text = "intro words\n\n# Section\n\nsection body"
    chunks = chunk_text(text, ChunkingSpec(kind="paragraph", max_words=50))
    assert texts(chunks) == ["intro words", "# Section\n\nsection body"]


def test_paragraph_long_paragraph_splits_at_sentence_boundaries() -> None:
    text = "A b c. D e f. G h i j. K l.\n\nTail para."
    chunks = chunk_text(text, ChunkingSpec(kind="paragraph", max_words=6))
    assert texts(chunks) == ["A b c. D e f.", "G h i j. K l.", "Tail para."]


def test_paragraph_overlong_sentence_splits_at_words() -> None:
    text = "one two three four five six seven"
    chunks = chunk_text(text, ChunkingSpec(kind="paragraph", max_words=3))
    assert texts(chunks) == ["one two three", "four five six", "seven"]


def test_paragraph_chunks_respect_max_words_on_long_doc() -> None:
    for max_words in (5, 12, 30):
        chunks = chunk_text(LONG_DOC, ChunkingSpec(kind="paragraph", max_words=max_words))
        assert all(len(c.text.split()) <= max_words for c in chunks)
    merged = chunk_text(LONG_DOC, ChunkingSpec(kind="paragraph", max_words=30))
    assert "Short note.\n\nAnother short note. It has two sentences." in texts(merged)


# --------------------------------------------------------------------------- spec validation


def test_spec_from_dict_fills_defaults() -> None:
    assert spec_from_dict("p", {"kind": "paragraph"}) == ChunkingSpec(kind="paragraph", max_words=200)
    assert spec_from_dict("f", {"kind": "fixed_tokens", "size": 64}) == ChunkingSpec(
        kind="fixed_tokens", size=64, overlap=32
    )
    assert spec_from_dict("s", {"kind": "sentence_window"}) == ChunkingSpec(
        kind="sentence_window", sentences=3, stride=2
    )
    assert spec_from_dict("w", {"kind": "whole"}) == ChunkingSpec(kind="whole")
    assert set(DEFAULTS) == set(KINDS)


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"kind": "semantic"}, r"'bad': kind must be one of"),
        ({}, r"'bad': kind must be one of .* \(got None\)"),
        (
            {"kind": "fixed_tokens", "size": 256, "overlap": 256},
            r"overlap must be smaller than size \(got 256 >= 256\)",
        ),
        ({"kind": "fixed_tokens", "size": 0}, r"'bad': size must be positive \(got 0\)"),
        ({"kind": "fixed_tokens", "overlap": -1}, r"'bad': overlap must be non-negative"),
        ({"kind": "fixed_tokens", "size": "256"}, r"'bad': size must be an integer \(got '256'\)"),
        ({"kind": "fixed_tokens", "size": True}, r"'bad': size must be an integer"),
        ({"kind": "fixed_tokens", "size": 12.5}, r"'bad': size must be an integer"),
        (
            {"kind": "sentence_window", "sentences": 2, "stride": 3},
            r"stride must not exceed sentences \(got 3 > 2\)",
        ),
        ({"kind": "sentence_window", "stride": 0}, r"'bad': stride must be positive"),
        ({"kind": "paragraph", "max_words": None}, r"'bad': max_words must be an integer \(got None\)"),
        ({"kind": "paragraph", "size": 10}, r"'bad': field 'size' does not apply to kind 'paragraph'"),
        (
            {"kind": "whole", "max_words": 10},
            r"field 'max_words' does not apply to kind 'whole' \(allowed: none\)",
        ),
    ],
)
def test_spec_from_dict_errors_name_strategy_and_field(d: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        spec_from_dict("bad", d)
    assert str(info.value).startswith("chunking strategy 'bad': ")


def test_spec_from_dict_message_matches_documented_example() -> None:
    with pytest.raises(ValueError, match="overlap") as info:
        spec_from_dict("fixed256", {"kind": "fixed_tokens", "size": 256, "overlap": 256})
    assert str(info.value) == "chunking strategy 'fixed256': overlap must be smaller than size (got 256 >= 256)"


def test_spec_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(ValueError, match="'x': expected a mapping, got list"):
        spec_from_dict("x", ["kind", "whole"])  # type: ignore[arg-type]


def test_chunk_text_validates_hand_built_specs() -> None:
    with pytest.raises(ValueError, match="overlap must be smaller than size"):
        chunk_text("a b c", ChunkingSpec(kind="fixed_tokens", size=2, overlap=2))
    with pytest.raises(ValueError, match="kind must be one of"):
        chunk_text("a b c", ChunkingSpec(kind="nope"))
