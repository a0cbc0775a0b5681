"""Verdicts and per-query changes of a tuned model against its base: pure functions over per-query values.

The verdict rule (thresholds from project.yaml `evaluation:`), on the per-query differences d = tuned - base of
the verdict metric (nDCG@10 by default), with a 95% percentile-bootstrap interval for mean(d):
- REGRESSION: the whole interval lies below 0 (worse beyond chance), or, on the project's general queries, the
  model forgot what the base knew: the 95% paired-bootstrap interval of the general queries' per-query change lies
  below 0 *and* the mean drop exceeds general_max_drop (the two tests WIN passes the other way round). A drop
  beyond general_max_drop whose interval spans 0 is a warning in the reasons, not a verdict: on the 30-50 general
  queries a project has, one query losing its answer moves nDCG@10 by 0.02-0.03, so a point drop is mostly noise;
- WIN: the whole interval lies above 0 and mean(d) is at least min_gain (better beyond chance, by enough to matter);
- MARGINAL: anything else: the interval spans 0, or the gain is real but smaller than min_gain.
A paired bootstrap p-value (engine.retrieval.metrics.paired_bootstrap_p) is reported next to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VERDICTS = ("WIN", "MARGINAL", "REGRESSION")
IMPROVED, REGRESSED, UNCHANGED = "improved", "regressed", "unchanged"


@dataclass(frozen=True)
class GeneralCheck:
    """The tuned model's score on the general queries against the base's (None when the project has none), with
    the 95% paired-bootstrap interval of the mean per-query change tuned - base."""

    metric: str
    n_queries: int
    base: float
    tuned: float
    max_drop: float
    ci: tuple[float, float]

    @property
    def drop(self) -> float:
        return self.base - self.tuned

    @property
    def regressing(self) -> bool:
        """Worse beyond chance and by more than max_drop."""
        return self.ci[1] < 0 and self.drop > self.max_drop + 1e-12

    @property
    def warning(self) -> str | None:
        """What a drop that is not a regression still deserves to say, or None."""
        if self.regressing:
            return None
        change = f"{self.metric} {-self.drop:+.4f}, 95% interval [{self.ci[0]:+.4f}, {self.ci[1]:+.4f}]"
        if self.drop > self.max_drop + 1e-12:
            return (
                f"general queries drop more than evaluation.general_max_drop {self.max_drop}, but the interval "
                f"spans 0 on {self.n_queries} general queries (not a regression beyond chance): {change}"
            )
        if self.ci[1] < 0:
            return (
                f"general queries drop beyond chance, but by no more than evaluation.general_max_drop "
                f"{self.max_drop}: {change}"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": True,
            "metric": self.metric,
            "n_queries": self.n_queries,
            "base": self.base,
            "tuned": self.tuned,
            "drop": self.drop,
            "delta": -self.drop,
            "delta_ci": list(self.ci),
            "max_drop": self.max_drop,
            "regressing": self.regressing,
            "warning": self.warning,
        }


def general_check(
    metric: str, base: Sequence[float], tuned: Sequence[float], *, max_drop: float, samples: int = 1000, seed: int = 0
) -> GeneralCheck:
    """The check from per-query values of the general queries (same queries, same order): a paired bootstrap of
    the per-query differences, so each query is compared with itself and the spread between queries cancels."""
    from engine.retrieval.metrics import bootstrap_ci  # numpy: only when judging, not for display

    diffs = [t - b for b, t in zip(base, tuned, strict=True)]
    ci = bootstrap_ci(diffs, n_samples=samples, seed=seed)
    return GeneralCheck(metric, len(diffs), sum(base) / len(base), sum(tuned) / len(tuned), max_drop, ci)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    metric: str
    delta: float
    ci: tuple[float, float]
    p_value: float
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "delta": self.delta,
            "delta_ci": list(self.ci),
            "p_value": self.p_value,
            "reasons": self.reasons,
        }


def decide(
    base: Sequence[float],
    tuned: Sequence[float],
    *,
    metric: str,
    min_gain: float,
    general: GeneralCheck | None,
    samples: int = 1000,
    seed: int = 0,
) -> Verdict:
    """The verdict of `tuned` against `base`, both the same queries in the same order."""
    from engine.retrieval.metrics import bootstrap_ci, paired_bootstrap_p  # numpy: only when judging, not for display

    diffs = [t - b for b, t in zip(base, tuned, strict=True)]
    delta = sum(diffs) / len(diffs)
    low, high = bootstrap_ci(diffs, n_samples=samples, seed=seed)
    p = paired_bootstrap_p(tuned, base, n_samples=max(samples, 1000), seed=seed)
    interval = f"{metric} {delta:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}], p = {p:.3g}"
    reasons: list[str] = []
    if high < 0:
        reasons.append(f"worse than the base beyond chance: {interval}")
    elif low > 0 and delta >= min_gain:
        reasons.append(f"better than the base beyond chance: {interval}")
    elif low > 0:
        reasons.append(
            f"better than the base beyond chance, but by less than evaluation.min_gain {min_gain}: {interval}"
        )
    else:
        reasons.append(f"not distinguishable from the base on these queries (the interval spans 0): {interval}")
    if general is not None and general.regressing:
        reasons.append(
            f"forgets general queries: {general.metric} on {general.n_queries} general queries drops "
            f"{general.drop:.4f} ({general.base:.4f} → {general.tuned:.4f}), more than "
            f"evaluation.general_max_drop {general.max_drop}, and the 95% interval of the change "
            f"[{general.ci[0]:+.4f}, {general.ci[1]:+.4f}] lies below 0"
        )
    elif general is not None and general.warning:
        reasons.append(f"warning: {general.warning}")
    if high < 0 or (general is not None and general.regressing):
        verdict = "REGRESSION"
    elif low > 0 and delta >= min_gain:
        verdict = "WIN"
    else:
        verdict = "MARGINAL"
    return Verdict(verdict, metric, delta, (low, high), p, reasons)


def rank_change(before: int | None, after: int | None) -> str:
    """How the first relevant rank moved: a smaller rank, or found where it was not (None), is an improvement."""
    if before == after:
        return UNCHANGED
    if after is None:
        return REGRESSED
    if before is None or after < before:
        return IMPROVED
    return REGRESSED


def change_counts(before: Mapping[str, int | None], after: Mapping[str, int | None]) -> dict[str, int]:
    """{improved, regressed, unchanged} over the queries of `before` (every one must be in `after`)."""
    counts = {IMPROVED: 0, REGRESSED: 0, UNCHANGED: 0}
    for qid, rank in before.items():
        counts[rank_change(rank, after[qid])] += 1
    return counts
