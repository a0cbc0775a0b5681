"""Chunking strategies: split a document into passages before embedding it.

Pure Python (stdlib only) so the TUI and tests can preview chunks without loading a model.
Every chunk's ``text`` is the exact slice ``source[start:end]``; boundaries are trimmed of
surrounding whitespace instead of rewriting the text, so offsets stay usable for highlighting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

KINDS = ("whole", "paragraph", "fixed_tokens", "sentence_window")

# Per-kind parameters and their defaults; a parameter not listed for a kind is rejected.
DEFAULTS: dict[str, dict[str, int]] = {
    "whole": {},
    "paragraph": {"max_words": 200},
    "fixed_tokens": {"size": 256, "overlap": 32},
    "sentence_window": {"sentences": 3, "stride": 2},
}

Span = tuple[int, int]
Tokenizer = Callable[[str], list[Span]]


@dataclass(frozen=True)
class Chunk:
    position: int
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class ChunkingSpec:
    kind: str
    size: int | None = None
    overlap: int | None = None
    sentences: int | None = None
    stride: int | None = None
    max_words: int | None = None


# --------------------------------------------------------------------------- spec parsing


def spec_from_dict(name: str, d: Mapping[str, Any]) -> ChunkingSpec:
    """Build a validated spec from config, e.g. ``{"kind": "fixed_tokens", "size": 128}``.

    Missing parameters take the kind's defaults; unknown kinds or fields, non-integers,
    non-positive values and inconsistent pairs raise ``ValueError`` naming ``name`` and the field.
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"chunking strategy {name!r}: expected a mapping, got {type(d).__name__}")
    kind = d.get("kind")
    if kind not in KINDS:
        raise ValueError(f"chunking strategy {name!r}: kind must be one of {', '.join(KINDS)} (got {kind!r})")
    allowed = DEFAULTS[kind]
    for key in d:
        if key != "kind" and key not in allowed:
            hint = ", ".join(allowed) or "none"
            raise ValueError(
                f"chunking strategy {name!r}: field {key!r} does not apply to kind {kind!r} (allowed: {hint})"
            )
    params = {**allowed, **{k: v for k, v in d.items() if k != "kind"}}
    spec = ChunkingSpec(kind=kind, **params)
    _validate(name, spec)
    return spec


def _with_defaults(spec: ChunkingSpec) -> ChunkingSpec:
    # Lets callers build ChunkingSpec(kind=...) directly and still get the documented defaults.
    missing = {k: v for k, v in DEFAULTS.get(spec.kind, {}).items() if getattr(spec, k) is None}
    return replace(spec, **missing) if missing else spec


def _validate(name: str, spec: ChunkingSpec) -> None:
    prefix = f"chunking strategy {name!r}"
    if spec.kind not in KINDS:
        raise ValueError(f"{prefix}: kind must be one of {', '.join(KINDS)} (got {spec.kind!r})")
    for field_name in DEFAULTS[spec.kind]:
        value = getattr(spec, field_name)
        # bool is an int subclass; `size: true` in YAML is a mistake, not 1.
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{prefix}: {field_name} must be an integer (got {value!r})")
        minimum = 0 if field_name == "overlap" else 1
        if value < minimum:
            word = "non-negative" if minimum == 0 else "positive"
            raise ValueError(f"{prefix}: {field_name} must be {word} (got {value})")
    if spec.kind == "fixed_tokens" and spec.overlap >= spec.size:  # type: ignore[operator]
        raise ValueError(f"{prefix}: overlap must be smaller than size (got {spec.overlap} >= {spec.size})")
    if spec.kind == "sentence_window" and spec.stride > spec.sentences:  # type: ignore[operator]
        # A stride past the window would silently drop the sentences in between.
        raise ValueError(f"{prefix}: stride must not exceed sentences (got {spec.stride} > {spec.sentences})")


# --------------------------------------------------------------------------- text helpers


def _trim(text: str, start: int, end: int) -> Span | None:
    """Shrink [start, end) past surrounding whitespace; None if nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


_HEADING = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]|$)")
_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _paragraphs(text: str) -> list[tuple[int, int, bool]]:
    """Paragraph spans (start, end, starts_with_heading): blank lines separate, headings start anew."""
    out: list[tuple[int, int, bool]] = []
    cur: list[Any] | None = None  # [start, end, is_heading]

    def close() -> None:
        if cur is not None and (span := _trim(text, cur[0], cur[1])):
            out.append((*span, cur[2]))

    offset = 0
    for line in text.split("\n"):
        start, end = offset, offset + len(line)
        offset = end + 1
        if not line.strip():
            close()
            cur = None
        elif _HEADING.match(line):
            close()
            cur = [start, end, True]
        elif cur is None:
            cur = [start, end, False]
        else:
            cur[1] = end
    close()
    return out


# --------------------------------------------------------------------------- sentences

# Lower-cased words whose trailing period does not end a sentence.
_ABBREVIATIONS = frozenset(
    {"e.g.", "i.e.", "mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "vs.", "etc.", "cf."}
    | {"fig.", "approx.", "al."}
)
_CANDIDATE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
_OPENERS = "\"'“‘([¿¡"
_DIGIT_NEXT = re.compile(r"\s+\d")


def _starts_sentence(text: str, pos: int) -> bool:
    """True if the first non-space char at/after pos (past opening quotes) is a capital or digit."""
    n = len(text)
    while pos < n and text[pos].isspace():
        pos += 1
    while pos < n and text[pos] in _OPENERS:
        pos += 1
    return pos < n and (text[pos].isupper() or text[pos].isdigit())


def _is_abbreviation(text: str, lo: int, dot: int, next_pos: int) -> bool:
    """Whether the period at text[dot] closes an abbreviation or an initial rather than a sentence."""
    word_start = dot
    while word_start > lo and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start : dot + 1].lstrip(_OPENERS)
    if re.fullmatch(r"[A-Z]\.", word):  # "J. R. R. Tolkien"
        return True
    if word.lower() == "no.":
        # "No. 5" is an abbreviation, but "She said no. Then…" ends a sentence.
        return _DIGIT_NEXT.match(text, next_pos) is not None
    return word.lower() in _ABBREVIATIONS


def _sentence_spans(text: str, lo: int, hi: int) -> list[Span]:
    spans: list[Span] = []
    start = lo
    for m in _CANDIDATE_END.finditer(text, lo, hi):
        punct = text[m.start() : m.end()].rstrip("\"'”’)]")
        if not _starts_sentence(text, m.end()) or m.end() >= hi:
            continue
        if punct == "." and _is_abbreviation(text, lo, m.start(), m.end()):
            continue
        if span := _trim(text, start, m.end()):
            spans.append(span)
        start = m.end()
    if span := _trim(text, start, hi):
        spans.append(span)
    return spans


def split_sentences(text: str) -> list[Span]:
    """Sentence char spans (whitespace-trimmed).

    A sentence ends at ``.``, ``!`` or ``?`` (plus closing quotes/brackets) followed by whitespace and a
    capital letter, digit or opening quote. Common abbreviations (e.g., i.e., Mr., Dr., vs., etc.),
    single capital initials and "No." before a number do not end a sentence; decimals such as 2.5
    never do because no whitespace follows their point. Paragraph breaks and Markdown headings are
    hard boundaries, so a heading without final punctuation is its own sentence.
    """
    spans: list[Span] = []
    for start, end, _ in _paragraphs(text):
        spans.extend(_sentence_spans(text, start, end))
    return spans


# --------------------------------------------------------------------------- strategies


def _whole(text: str) -> list[Span]:
    span = _trim(text, 0, len(text))
    return [span] if span else []


def _windows(units: list[Span], size: int, step: int) -> list[Span]:
    """Spans covering units[i:i+size] for i = 0, step, 2*step, …; the last window reaches the end."""
    out: list[Span] = []
    for i in range(0, len(units), step):
        last = min(i + size, len(units)) - 1
        out.append((units[i][0], units[last][1]))
        if i + size >= len(units):
            break
    return out


def _word_pieces(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int, int]]:
    """Split an over-long sentence into runs of max_words words: (start, end, words)."""
    words = [m.span() for m in _WORD.finditer(text, start, end)]
    return [
        (words[i][0], words[min(i + max_words, len(words)) - 1][1], min(max_words, len(words) - i))
        for i in range(0, len(words), max_words)
    ]


def _paragraph_units(text: str, max_words: int) -> Iterable[tuple[int, int, int, bool]]:
    """(start, end, words, must_start_chunk) pieces, each at most max_words words long."""
    for start, end, heading in _paragraphs(text):
        words = len(_WORD.findall(text, start, end))
        if words <= max_words:
            yield start, end, words, heading
            continue
        first = heading
        for s_start, s_end in _sentence_spans(text, start, end):
            for piece in _word_pieces(text, s_start, s_end, max_words):
                yield (*piece, first)
                first = False


def _paragraph(text: str, max_words: int) -> list[Span]:
    # Greedy packing: short paragraphs merge until the next one would overflow max_words.
    # A heading always opens a new chunk so sections are not glued onto the previous one.
    out: list[Span] = []
    cur: list[int] | None = None  # [start, end, words]
    for start, end, words, hard in _paragraph_units(text, max_words):
        if cur is not None and not hard and cur[2] + words <= max_words:
            cur[1], cur[2] = end, cur[2] + words
            continue
        if cur is not None:
            out.append((cur[0], cur[1]))
        cur = [start, end, words]
    if cur is not None:
        out.append((cur[0], cur[1]))
    return out


def _regex_tokens(text: str) -> list[Span]:
    return [m.span() for m in _TOKEN.finditer(text)]


def _fixed_tokens(text: str, size: int, overlap: int, tokenize: Tokenizer | None) -> list[Span]:
    spans = (tokenize or _regex_tokens)(text)
    # Model offset mappings may contain empty spans (special tokens) or leading-space spans.
    tokens = [t for s, e in spans if (t := _trim(text, s, e))]
    return _windows(tokens, size, size - overlap)


def chunk_text(text: str, spec: ChunkingSpec, *, tokenize: Tokenizer | None = None) -> list[Chunk]:
    """Split ``text`` according to ``spec``; empty or whitespace-only text gives ``[]``.

    - ``whole``: the trimmed document as one chunk.
    - ``paragraph``: paragraphs separated by blank lines (a Markdown ``#`` heading line also starts
      one); consecutive short paragraphs merge up to ``max_words`` words, longer paragraphs split at
      sentence boundaries (and a single over-long sentence at word boundaries).
    - ``fixed_tokens``: windows of ``size`` tokens, neighbours sharing exactly ``overlap`` tokens.
      Tokens default to the regex ``\\w+|[^\\w\\s]`` (words and single punctuation marks); subword
      model tokenizers produce roughly 1.3x more tokens for English prose, so size a window
      accordingly or pass ``tokenize`` returning char spans (e.g. a tokenizer's offset mapping).
    - ``sentence_window``: windows of ``sentences`` sentences advancing by ``stride``; the last
      window always reaches the final sentence.
    """
    spec = _with_defaults(spec)
    _validate(f"<{spec.kind}>", spec)
    if spec.kind == "whole":
        spans = _whole(text)
    elif spec.kind == "paragraph":
        spans = _paragraph(text, spec.max_words)  # type: ignore[arg-type]
    elif spec.kind == "fixed_tokens":
        spans = _fixed_tokens(text, spec.size, spec.overlap, tokenize)  # type: ignore[arg-type,operator]
    else:
        spans = _windows(split_sentences(text), spec.sentences, spec.stride)  # type: ignore[arg-type]
    return [Chunk(position=i, text=text[s:e], start=s, end=e) for i, (s, e) in enumerate(spans)]
