"""`embtune export-pairs`: the training set as reviewed, in the formats trainers read.

- st: JSONL {anchor, positive[, negative]}, one row per pair with its query's best usable negative (accepted
  first, then hardest). One row per pair, not one triplet per negative: repeating a pair once per negative would
  put the same positive several times into a batch, where MultipleNegativesRankingLoss counts each copy as an
  in-batch negative of the others. Pairs whose query has no usable negative keep the row without `negative`
  (rows_without_negative counts them): sentence-transformers needs one set of columns per dataset, so filter
  those rows, or mine more, before training on the triplets.
- flag: FlagEmbedding JSONL {query, pos: [...], neg: [...]}, one line per query with all its positives and all
  its usable negatives (neg may be empty: FlagEmbedding then needs negatives sampled from the corpus).
- csv: query,positive[,negative] with a header, rows as in st (RFC 4180 quoting: passages may hold newlines).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from engine.store._sqlite_utils import Database
from engine.store.examples import ReviewedExample, review_counts, reviewed_examples

FORMATS = ("st", "flag", "csv")


def export_pairs(db: Database, fmt: str, out: TextIO, split: str = "train") -> dict[str, Any]:
    """Write the reviewed examples of `split` to `out` in `fmt`; returns counts (the --json contract)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    examples = reviewed_examples(db, split)
    rows: list[dict[str, Any]] = list(_flag_rows(examples) if fmt == "flag" else _pair_rows(examples))
    if fmt == "csv":
        columns = ["query", "positive", "negative"] if any("negative" in r for r in rows) else ["query", "positive"]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([r["anchor"], r["positive"], r.get("negative", "")][: len(columns)] for r in rows)
    else:
        out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    negatives = {e.query_id: e.negatives for e in examples}
    return {
        "format": fmt,
        "split": split,
        "rows": len(rows),
        "pairs": len(examples),
        "queries": len(negatives),
        "negatives": sum(len(n) for n in negatives.values()),
        "rows_without_negative": sum(not r.get("neg" if fmt == "flag" else "negative") for r in rows),
        **review_counts(db, split),
    }


def _pair_rows(examples: Sequence[ReviewedExample]) -> Iterator[dict[str, str]]:
    for e in examples:
        row = {"anchor": e.query, "positive": e.positive}
        if e.negatives:
            row["negative"] = e.negatives[0]
        yield row


def _flag_rows(examples: Sequence[ReviewedExample]) -> Iterator[dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for e in examples:
        row = grouped.setdefault(e.query_id, {"query": e.query, "pos": [], "neg": list(e.negatives)})
        if e.positive not in row["pos"]:
            row["pos"].append(e.positive)
    yield from grouped.values()
