"""Plain-text rendering of a gate report for the terminal (the TUI draws its own)."""

from __future__ import annotations

from engine.gate.costs import cost_lines
from engine.gate.run import GateReport


def render_report(report: GateReport) -> str:
    key = f"recall@{report.k}"
    rule = f", rule {report.rule}" if report.rule else ""
    lines = [f"VERDICT: {report.verdict}  ({report.n_queries} gate queries, run {report.run_id}{rule})", ""]
    lines += [f"  - {r}" for r in report.reasons]
    lines += [
        "",
        f"{'arm':<28} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'nDCG@10':>8}  "
        f"{key + ' 95% CI*':<18} {'wins':>4} {'loss':>4}",
    ]
    for arm in report.arms:
        m = arm.metrics
        low, high = report.intervals.get(arm.name, arm.recall_ci)
        ci = f"[{low:.3f}, {high:.3f}]"
        lines.append(
            f"{arm.name:<28} {m['recall@1']:>6.3f} {m['recall@5']:>6.3f} {m['recall@10']:>6.3f} "
            f"{m['mrr@10']:>7.3f} {m['ndcg@10']:>8.3f}  {ci:<18} {len(arm.wins):>4} {len(arm.losses):>4}"
        )
    lines.append(f"* simultaneous over the {len(report.arms)} arms, so the best one's interval holds after picking it")
    rerankers = {a.reranker for a in report.arms if a.reranker}
    if rerankers:
        lines.append(f"re-ranker: {', '.join(sorted(rerankers))}")
    lines += _cost_lines(report)
    if report.skipped:
        lines += ["", "Arms that could not run:"] + [f"  - {name}: {why}" for name, why in report.skipped.items()]
    if report.hints:
        lines += ["", "Hints:"] + [f"  - {h}" for h in report.hints]
    return "\n".join(lines)


def _cost_lines(report: GateReport) -> list[str]:
    lines = cost_lines(report.to_json())
    if not lines:
        return []
    return ["", "Cost of each fix (engineering hours from the guide; compute measured on this machine):"] + [
        f"  {line}" for line in lines
    ]
