"""An evaluation result (the `embtune eval --json` object) as terminal text, a Markdown report or a JSON file.

Works on the stored JSON, so the CLI and the TUI export the same report, from a fresh run or a stored one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.config import EVAL_METRICS

LABELS = {
    "recall@1": "R@1",
    "recall@5": "R@5",
    "recall@10": "R@10",
    "recall@100": "R@100",
    "mrr@10": "MRR@10",
    "ndcg@10": "nDCG@10",
    "map@100": "MAP@100",
}


def _name_width(models: dict[str, Any]) -> int:
    """Model names are runs or folders; the column fits the longest (at least the old 16)."""
    return max([16, *(len(name) for name in models)])


def _header(result: dict[str, Any]) -> list[str]:
    return [f"{result['n_queries']} {result['split']} queries, eval run {result.get('run_id')}"]


def _general_lines(result: dict[str, Any]) -> list[str]:
    general = result["general"]
    if not general.get("n_queries"):
        return [f"general queries: {general.get('note', 'none')}"]
    lines = [
        f"general queries ({general['n_queries']}), {general['metric']}, regressing when the 95% interval of the "
        f"change lies below 0 and it drops more than {general['max_drop']}:"
    ]
    width = _name_width(general.get("models", {}))
    for name, values in general.get("models", {}).items():
        flag = "  REGRESSING" if values.get("regressing") else (f"  ({_note(values)})" if _note(values) else "")
        change = f"  {-values['drop']:+.4f} vs base{_interval(values)}" if "drop" in values else ""
        lines.append(f"  {name:<{width}} {values.get(general['metric'], float('nan')):.4f}{change}{flag}")
    return lines


def _interval(values: dict[str, Any]) -> str:
    """' [low, high]' for results that carry the general change's interval (stored results before it: '')."""
    ci = values.get("delta_ci")
    return f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else ""


def _note(values: dict[str, Any]) -> str:
    """Why a drop is not a regression: the interval spans 0, or the drop is real but within max_drop."""
    if not values.get("warning") or values.get("regressing"):
        return ""
    return "real drop, within max drop" if values["delta_ci"][1] < 0 else "point drop, interval spans 0"


def _general_markdown(result: dict[str, Any]) -> list[str]:
    general = result["general"]
    if not general.get("n_queries"):
        return [f"Not checked: {general.get('note', 'no general queries')}."]
    metric = general["metric"]
    lines = [
        f"{general['n_queries']} general queries; a model regresses when the 95% paired-bootstrap interval of "
        f"its per-query {metric} change lies below 0 and the mean drops more than {general['max_drop']}.",
        "",
        f"| model | {metric} | vs base | 95% interval | regressing |",
        "|---|---:|---:|---:|---|",
    ]
    for name, values in general.get("models", {}).items():
        change = f"{-values['drop']:+.4f}" if "drop" in values else ""
        flag = ("**yes**" if values["regressing"] else "no") if "regressing" in values else ""
        flag += f" ({_note(values)})" if _note(values) else ""
        interval = _interval(values).strip()
        lines.append(f"| {name} | {values.get(metric, float('nan')):.4f} | {change} | {interval} | {flag} |")
    return lines


def _leakage_lines(result: dict[str, Any]) -> list[str]:
    leakage = result["leakage"]
    overlap = leakage["document_overlap"]
    lines = [
        f"{overlap['documents']:,} {result['split']} documents ({overlap['queries']:,} queries) are also train "
        "positives: normal when splits share a corpus; a tuned model has seen those documents"
    ]
    if leakage["queries"] or leakage["pairs"]:
        lines.append(
            f"LEAKAGE allowed (--allow-leakage): {leakage['queries']} queries and {leakage['pairs']} pairs "
            "repeat training; their figures measure memorisation"
        )
    near = leakage.get("near_duplicates") or []  # absent from results stored before the near-duplicate guard
    if near:
        lines.append(
            f"{leakage.get('near_duplicate_queries', len(near))} {result['split']} queries are near-duplicates of "
            f"train queries (similarity >= {leakage.get('near_duplicate_threshold')}), e.g. {near[0]['test_id']} "
            f"{near[0]['test_text']!r} ~ train {near[0]['train_id']} {near[0]['train_text']!r} "
            f"({near[0]['similarity']:.2f})"
        )
    return lines


def render_text(result: dict[str, Any]) -> str:
    lines = [*_header(result), ""]
    width = _name_width(result["models"])
    header = f"{'model':<{width}} " + " ".join(f"{LABELS[k]:>8}" for k in EVAL_METRICS)
    lines.append(header)
    for name, m in result["models"].items():
        lines.append(f"{name:<{width}} " + " ".join(f"{m[k]:>8.4f}" for k in EVAL_METRICS))
    for name, m in result["models"].items():
        if "verdict" not in m:
            continue
        changes = m["per_query"]
        lines += [
            "",
            f"{name}: {m['verdict']}  ({changes['improved']} queries improved, {changes['regressed']} "
            f"regressed, {changes['unchanged']} unchanged)",
        ]
        lines += [f"  - {reason}" for reason in m["reasons"]]
    lines += ["", *_general_lines(result), *_leakage_lines(result)]
    return "\n".join(lines)


def render_markdown(result: dict[str, Any], queries: list[dict[str, Any]] | None = None) -> str:
    """A self-contained report: what was measured on, the table with intervals, verdicts, and the changed queries."""
    lines = [
        f"# Evaluation: {', '.join(result['models'])}",
        "",
        f"- split: **{result['split']}**, {result['n_queries']} judged queries (document-level metrics)",
        f"- eval run: {result.get('run_id')}; verdict metric {result['settings']['metric']}, "
        f"min gain {result['settings']['min_gain']}, general max drop {result['settings']['general_max_drop']}",
        "",
        "| model | fingerprint | max seq |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | `{m['fingerprint']}` | {m['max_seq_length']} |" for name, m in result["models"].items()]
    lines += [
        "",
        "| model | " + " | ".join(LABELS[k] for k in EVAL_METRICS) + " |",
        "|---|" + "---:|" * len(EVAL_METRICS),
    ]
    for name, m in result["models"].items():
        cells = [f"{m[k]:.4f} [{m[k + '_ci'][0]:.3f}, {m[k + '_ci'][1]:.3f}]" for k in EVAL_METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "95% percentile-bootstrap intervals over queries in brackets.", "", "## Verdicts", ""]
    tuned = {name: m for name, m in result["models"].items() if "verdict" in m}
    if not tuned:
        lines.append("Only the base model was measured.")
    for name, m in tuned.items():
        c = m["per_query"]
        lines.append(
            f"- **{name}: {m['verdict']}** — {c['improved']} improved, {c['regressed']} regressed, "
            f"{c['unchanged']} unchanged"
        )
        lines += [f"  - {reason}" for reason in m["reasons"]]
    lines += [
        "",
        "## General queries (regression check)",
        "",
        *_general_markdown(result),
        "",
        "## Leakage",
        "",
        *_leakage_lines(result),
    ]
    leakage = result["leakage"]
    lines += [
        f"- {leak['query']} {leak['text']!r} ~ train {leak['train']} ({leak['match']})"
        for leak in leakage.get("query_examples", [])
    ]
    lines += [
        f"- near-duplicate: {d['test_id']} {d['test_text']!r} ~ train {d['train_id']} {d['train_text']!r} "
        f"({d['similarity']:.2f})"
        for d in (leakage.get("near_duplicates") or [])[:10]
    ]
    if queries:
        lines += [
            "",
            "## Queries whose first relevant rank changed",
            "",
            "| query | text | " + " | ".join(result["models"]) + " |",
            "|---|---|" + "---:|" * len(result["models"]),
        ]
        for q in queries:
            ranks = " | ".join("—" if q["ranks"].get(n) is None else str(q["ranks"][n]) for n in result["models"])
            text = q["text"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {q['id']} | {text} | {ranks} |")
    return "\n".join(lines) + "\n"


def write_report(path: Path, result: dict[str, Any], queries: list[dict[str, Any]] | None = None) -> Path:
    """Markdown for .md, else JSON (the --json object plus the changed queries); written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".md", ".markdown"):
        text = render_markdown(result, queries)
    else:
        text = json.dumps({**result, "changed_queries": queries or []}, indent=2)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path
