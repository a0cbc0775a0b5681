"""A forgetting guard: interpolate the base and a tuned model's weights, and measure each mix.

LM-Cocktail (Xiao et al. 2023, FlagEmbedding `research/LM_Cocktail`): merging a fine-tuned embedder with its base,
θ = (1 − α)·θ_base + α·θ_tuned, keeps most of the domain gain while recovering general ability (their report: target
76.0 → 74.8 while other tasks go 48.5 → 50.0). `embtune merge DIR RUN --alphas …` writes one model per α (α = 0 is
the base, α = 1 the run's own model), evaluates every one on the held-out domain queries and the general queries,
and recommends the highest domain score whose general check does not regress. A merged model is a run of kind
"merge" with a model folder, so evaluation, indexing, search and export use it like any training run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EmbtuneError
from engine.jobs.progress import Progress
from engine.models.refs import resolve_ref
from engine.models.resolve import load_embedder, resolve_model
from engine.project import Project
from engine.store import runs

MERGE_KIND = "merge"
SWEEP_KIND = "merge-sweep"  # one `merge` command: its points, recommendation and the α a person chose
DEFAULT_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


class MergeError(EmbtuneError):
    """The models cannot be merged (different architectures, no tuned run, bad alphas)."""


@dataclass(frozen=True)
class MergePoint:
    alpha: float
    model: str  # the reference evaluation, indexing and export take: "base", a run id
    ndcg: float
    general_ndcg: float | None
    general_regressing: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "ndcg@10": self.ndcg,
            "general_ndcg@10": self.general_ndcg,
            "general_regressing": self.general_regressing,
            "model": self.model,
        }


def parse_alphas(text: str) -> list[float]:
    try:
        alphas = sorted({round(float(part), 4) for part in text.split(",") if part.strip()})
    except ValueError as e:
        raise MergeError(f"--alphas must be numbers between 0 and 1 separated by commas, got {text!r}") from e
    if not alphas or any(not 0 <= a <= 1 for a in alphas):
        raise MergeError(f"--alphas must be numbers between 0 and 1, got {text!r}")
    return alphas


def interpolate(base: str | Path, tuned: str | Path, alpha: float, dest: Path, trust_remote_code: bool = False) -> Path:
    """Write (1 − alpha)·base + alpha·tuned, parameter by parameter, as a SentenceTransformer folder at `dest`.

    `base` and `tuned` are model folders; a LoRA run's adapter is folded into its base first. Both must be the same
    architecture (same parameter names and shapes). Integer buffers (position ids) are taken from the tuned model;
    the tuned model's modules, tokenizer and prompts are kept."""
    import torch

    base_model = _plain_model(Path(base), trust_remote_code)
    tuned_model = _plain_model(Path(tuned), trust_remote_code)
    base_state, tuned_state = base_model.state_dict(), tuned_model.state_dict()
    _check_same_shape(base_state, tuned_state)
    merged = {
        name: torch.lerp(base_state[name].to(value.dtype), value, alpha) if value.is_floating_point() else value
        for name, value in tuned_state.items()
    }
    tuned_model.load_state_dict(merged)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # our own leftover: the folder is named for this run id
    tuned_model.save(str(partial))
    partial.rename(dest)
    return dest


def _plain_model(folder: Path, trust_remote_code: bool) -> Any:
    """The model in `folder` on the CPU with plain weights: an adapter folder's LoRA merged into its base."""
    from engine.models.adapters import is_adapter_dir
    from engine.models.export import load_merged

    if is_adapter_dir(folder):
        return load_merged(folder, trust_remote_code=trust_remote_code)
    return load_embedder(str(folder), device="cpu", trust_remote_code=trust_remote_code)


def _check_same_shape(base: dict[str, Any], tuned: dict[str, Any]) -> None:
    if base.keys() != tuned.keys():
        missing = sorted(base.keys() ^ tuned.keys())[:3]
        raise MergeError(f"the base and tuned models differ in architecture (parameters {', '.join(missing)} …)")
    for name, value in tuned.items():
        if tuple(base[name].shape) != tuple(value.shape):
            raise MergeError(f"parameter {name} has shape {tuple(base[name].shape)} vs {tuple(value.shape)}")


def merge_run(
    project: Project,
    run: str,
    alphas: Sequence[float],
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Merge base and `run` at every alpha, evaluate each, and recommend one (the `embtune merge --json` object)."""
    from engine.evaluate.run import run_eval

    tuned = resolve_ref(project, run)
    if tuned.run_id is None:
        raise MergeError(f"{run!r} is not a training run: merge takes a run id (see `embtune runs {project.root}`)")
    # specs resolve as everywhere else (a pip-packaged or cached id, or a path relative to the project), once and
    # before anything is recorded: a missing model is named without leaving a failed sweep behind
    folders = tuple(resolve_model(ref.spec, project.root).path for ref in (resolve_ref(project, "base"), tuned))
    sweep = runs.create_run(project.db, SWEEP_KIND, {"source_run": tuned.run_id, "alphas": list(alphas)})
    try:
        refs = []
        for i, alpha in enumerate(alphas):
            _report(progress, cancelled, "merge weights", i, len(alphas))
            refs.append(_model_for(project, folders, tuned.run_id, alpha))
        report = run_eval(project, _unique(refs), allow_leakage=True, progress=progress, cancelled=cancelled).to_json()
    except InterruptedError as e:
        runs.fail_run(project.db, sweep, f"cancelled: {e}", "cancelled")
        raise
    except BaseException as e:
        runs.fail_run(project.db, sweep, f"{type(e).__name__}: {e}")
        raise
    points = [_point(report, alpha, ref) for alpha, ref in zip(alphas, refs, strict=True)]
    result = {
        "run": tuned.run_id,
        "points": [p.to_json() for p in points],
        "recommended": recommend(points),
        "eval_run": report["run_id"],
        "split": report["split"],
        "n_general": report["general"]["n_queries"],
        "sweep_run": sweep,
        "chosen": None,
    }
    runs.finish_run(project.db, sweep, result, [], [])
    return result


def _report(progress: Progress | None, cancelled: Callable[[], bool] | None, stage: str, done: int, total: int) -> None:
    if cancelled is not None and cancelled():
        raise InterruptedError("merge cancelled")
    if progress is not None:
        progress(stage, done, total)


def latest_sweep(project: Project) -> dict[str, Any] | None:
    """The newest finished `merge` result (what the Evaluate screen's merge chart shows), or None."""
    found = runs.latest_result(project.db, SWEEP_KIND)
    return found[1] if found else None


def choose_alpha(project: Project, alpha: float) -> dict[str, Any]:
    """Record `alpha` of the newest sweep as the chosen mix: its model is what a new index build is offered
    (engine.index.build.suggested_model) and what the Evaluate screen names for export. Returns the sweep."""
    sweep = latest_sweep(project)
    if sweep is None:
        raise MergeError(f"no merge has finished in {project.root}: run `embtune merge {project.root} RUN` first")
    point = next((p for p in sweep["points"] if p["alpha"] == alpha), None)
    if point is None:
        measured = ", ".join(str(p["alpha"]) for p in sweep["points"])
        raise MergeError(f"alpha {alpha} was not measured by merge {sweep['sweep_run']} (it measured {measured})")
    chosen = {**sweep, "chosen": alpha}
    runs.finish_run(project.db, int(sweep["sweep_run"]), chosen, [], [])  # rewrites the stored result in place
    return chosen


def chosen_model(project: Project, newer_than: int | None = None) -> str | None:
    """The model of the α chosen on the newest sweep ("base" or a run id); None if none was chosen, or if the
    sweep is older than run `newer_than` (a training run that finished since supersedes the choice)."""
    sweep = latest_sweep(project)
    if sweep is None or sweep.get("chosen") is None:
        return None
    if newer_than is not None and int(sweep["sweep_run"]) < newer_than:
        return None
    return next((str(p["model"]) for p in sweep["points"] if p["alpha"] == sweep["chosen"]), None)


def _model_for(project: Project, folders: tuple[Path, Path], source_run: int, alpha: float) -> str:
    """The model ref of the mix at `alpha`: the base and the run themselves at the ends, else a new merge run."""
    if alpha == 0:
        return "base"
    if alpha == 1:
        return str(source_run)
    run_id = runs.create_run(project.db, MERGE_KIND, {"source_run": source_run, "alpha": alpha})
    folder = f"models/run-{run_id}"
    try:
        interpolate(*folders, alpha, project.root / folder, project.config.trust_remote_code)
    except BaseException as e:
        runs.fail_run(project.db, run_id, f"{type(e).__name__}: {e}")
        raise
    runs.finish_model_run(project.db, run_id, folder, {"source_run": source_run, "alpha": alpha})
    return str(run_id)


def _unique(refs: list[str]) -> list[str]:
    return list(dict.fromkeys(refs))


def _point(report: dict[str, Any], alpha: float, ref: str) -> MergePoint:
    name = "base" if ref == "base" else f"run {ref}"
    general = report["general"].get("models", {}).get(name, {})
    return MergePoint(
        alpha,
        ref,
        float(report["models"][name]["ndcg@10"]),
        general.get("ndcg@10"),
        bool(general.get("regressing", False)),
    )


def recommend(points: Sequence[MergePoint]) -> float | None:
    """The alpha with the highest domain nDCG@10 among those whose general check does not regress (the base, α = 0,
    never does); None when no point was measured."""
    safe = [p for p in points if not p.general_regressing]
    return max(safe, key=lambda p: (p.ndcg, -p.alpha)).alpha if safe else None
