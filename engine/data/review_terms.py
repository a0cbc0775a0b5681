"""Which words of a review item to highlight: pure functions over plain text, no UI types.

A reviewer asks "does this passage answer this query?". Marking the passage's words that are query terms shows
where it speaks to the query, and marking the query terms a passage lacks shows the usual sign of a wrong pair
(or a paraphrase worth a closer look). Marking every passage word absent from the query would light up nearly
all of it, so that is not done. For a mined negative the question is "is this really different from the
positive?": marking the negative's words the positive lacks makes near-duplicates (few marks: likely a false
negative) stand out at a glance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["match", "missing", "differs"]

WORD = re.compile(r"\w+(?:['’]\w+)*")
_STOP = """a about after all also an and any are as at be been before but by can could did do does for from had has
have how i if in into is it its may me more most my no not of on or our out shall should so some such than that the
their them then there these they this those to under up us was we were what when where which who why will with
would you your"""
STOPWORDS = frozenset(_STOP.split())


@dataclass(frozen=True)
class Mark:
    start: int
    end: int
    kind: Kind


def term(word: str) -> str:
    """A word's comparable form: case-folded, possessive and plural endings dropped ("Claims'" → "claim")."""
    w = word.casefold().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.rstrip("'")
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("ches", "shes", "sses", "xes", "zes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def terms(text: str) -> set[str]:
    """The content terms of a text (stopwords left out: they match everywhere and mean nothing)."""
    return {t for m in WORD.finditer(text) if (t := term(m.group())) not in STOPWORDS}


def _words(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), t) for m in WORD.finditer(text) if (t := term(m.group())) not in STOPWORDS]


def passage_marks(passage: str, query: str, positive: str | None = None) -> list[Mark]:
    """Marks on a passage: its words that are query terms ('match'); given the `positive` (when the passage is
    a mined negative), also its words the positive lacks ('differs')."""
    wanted = terms(query)
    known = terms(positive) if positive is not None else None
    marks = []
    for start, end, t in _words(passage):
        if t in wanted:
            marks.append(Mark(start, end, "match"))
        elif known is not None and t not in known:
            marks.append(Mark(start, end, "differs"))
    return marks


def query_marks(query: str, passage: str) -> list[Mark]:
    """Marks on the query: each term found in the passage ('match') or missing from it ('missing')."""
    found = terms(passage)
    return [Mark(start, end, "match" if t in found else "missing") for start, end, t in _words(query)]
