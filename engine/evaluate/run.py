"""`embtune eval`: the base model against tuned ones on held-out queries, per query, with a verdict each.

For every model (project.yaml's base model, a training run's model, or a local folder; see engine.models.refs):
dense retrieval over the project's corpus, scored at document level on the split's judged queries (Recall@1/5/
10/100, MRR@10, nDCG@10, MAP@100, each with a 95% bootstrap interval) and on the general queries (the regression
check). Each tuned model gets a paired significance test and a verdict against the base (engine.evaluate.verdict),
and a per-query diff: the rank of the first relevant document before → after. Vectors come from the embedding
cache, so a second evaluation on an unchanged corpus encodes nothing. The result is stored as an 'eval' run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.config import EVAL_METRICS
from engine.errors import EmbtuneError
from engine.evaluate.leakage import Leakage, find_leakage
from engine.evaluate.verdict import GeneralCheck, Verdict, change_counts, decide, general_check
from engine.jobs.progress import Progress, cancellable
from engine.models.encoder import open_encoder
from engine.models.refs import ModelRef, ModelRefError, resolve_ref
from engine.project import Project
from engine.retrieval.arms import dense_search, to_documents
from engine.retrieval.metrics import bootstrap_ci, evaluate_run, first_relevant_rank
from engine.store import corpus, runs
from engine.store import evals as store

DOC_DEPTH = 100  # documents kept per query: enough for recall@100 and map@100
CHUNK_DEPTH = 1000  # chunks searched before collapsing to documents
KS = (1, 5, 10, 100)
BASE = "base"


class EvalError(EmbtuneError):
    """The evaluation cannot run (no judged queries in the split, no corpus, an unusable model reference)."""


class LeakageError(EvalError):
    """Evaluation queries or pairs were seen in training; the message names them."""


@dataclass
class ModelScore:
    name: str
    spec: str
    fingerprint: str
    max_seq_length: int
    run_id: int | None
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    per_query: dict[str, dict[str, float]] = field(repr=False)
    first_ranks: dict[str, int | None] = field(repr=False)
    general: dict[str, float] | None = None  # metric means on the general queries
    general_per_query: dict[str, dict[str, float]] | None = field(default=None, repr=False)
    verdict: Verdict | None = None
    general_check: GeneralCheck | None = None
    changes: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "spec": self.spec,
            "fingerprint": self.fingerprint,
            "max_seq_length": self.max_seq_length,
            "run_id": self.run_id,
        }
        for key in EVAL_METRICS:
            out[key] = self.metrics[key]
            out[f"{key}_ci"] = list(self.ci[key])
        if self.verdict is not None:
            out["verdict"] = self.verdict.verdict
            out.update(self.verdict.to_json())
            out["per_query"] = self.changes
            out["general"] = self.general_check.to_json() if self.general_check else {"checked": False}
        return out

    def general_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in (self.general or {}).items() if k in EVAL_METRICS}
        if self.general_check is not None:
            check = self.general_check
            out.update(drop=check.drop, delta_ci=list(check.ci), regressing=check.regressing, warning=check.warning)
        return out


@dataclass
class EvalReport:
    split: str
    n_queries: int
    models: list[ModelScore]
    leakage: Leakage
    allow_leakage: bool
    settings: dict[str, Any]
    n_general: int
    run_id: int | None = None
    queries_excluded: list[dict[str, str]] = field(default_factory=list)  # of the split, with why (review)

    @property
    def tuned(self) -> list[ModelScore]:
        return [m for m in self.models if m.verdict is not None]

    def to_json(self) -> dict[str, Any]:
        """The `embtune eval --json` contract."""
        general: dict[str, Any] = {
            "n_queries": self.n_general,
            "metric": self.settings["metric"],
            "max_drop": self.settings["general_max_drop"],
        }
        if self.n_general:
            general["models"] = {m.name: m.general_json() for m in self.models}
            checks = [m.general_check for m in self.tuned if m.general_check is not None]
            # general.delta_ci: the first tuned model's interval (every tuned model's is under general.models)
            general["delta_ci"] = list(checks[0].ci) if checks else None
        else:
            general["note"] = NO_GENERAL
        return {
            "run_id": self.run_id,
            "split": self.split,
            "n_queries": self.n_queries,
            "baseline": BASE,
            "models": {m.name: m.to_json() for m in self.models},
            "verdict": {m.name: m.verdict.verdict for m in self.tuned if m.verdict},
            "per_query": {m.name: m.changes for m in self.tuned},
            "general": general,
            "leakage": self.leakage.to_json(self.allow_leakage),
            "queries_excluded": self.queries_excluded,
            "settings": self.settings,
        }


NO_GENERAL = (
    "no judged general queries: the regression check did not run; import ~30+ everyday queries with "
    "judgments (embtune import DIR --queries general.jsonl --tag general)"
)


def default_refs(project: Project) -> list[str]:
    """'base' and the newest finished training run's model, when there is one."""
    trained = store.trained_models(project.db)
    return [BASE, *([str(trained[-1]["id"])] if trained else [])]


def run_eval(
    project: Project,
    models: list[str] | None = None,
    split: str | None = None,
    allow_leakage: bool = False,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> EvalReport:
    """Evaluate `models` (references; default: base and the newest trained model) on `split` and store the result.

    The base model is always measured first: verdicts and per-query diffs are against it. Raises LeakageError
    before encoding anything when evaluation queries or pairs were seen in training, unless allow_leakage."""
    config = project.config.evaluation
    split = split or config.split
    is_cancelled = cancelled or (lambda: False)
    report_progress = cancellable(progress, is_cancelled, "evaluation")

    refs = _refs(project, models)
    queries = _queries(project, split)
    leakage = find_leakage(project, split)
    if leakage.leaks and not allow_leakage:
        raise LeakageError(leakage.message())
    general = corpus.judged_queries(project.db, "general") if split != "general" else []
    _, chunk_docs, chunk_texts = corpus.retrieval_chunks(project.db)
    if not chunk_texts:
        raise EvalError("the project has no corpus: import documents first (embtune import DIR --beir/--docs)")
    settings = {
        "models": [r.name for r in refs],
        "split": split,
        "metric": config.metric,
        "min_gain": config.min_gain,
        "general_max_drop": config.general_max_drop,
        "bootstrap_samples": config.bootstrap_samples,
        "allow_leakage": allow_leakage,
    }
    # A read-only project (a shared, write-protected folder) is evaluated from its cached vectors, nothing stored.
    run_id = None if project.read_only else runs.create_run(project.db, "eval", settings)
    try:
        scores = [
            _score(project, ref, queries, general, chunk_docs, chunk_texts, report_progress, is_cancelled)
            for ref in refs
        ]
        _judge(scores, queries, config, project.config.seed)
        report = EvalReport(split, len(queries), scores, leakage, allow_leakage, settings, len(general))
        report.queries_excluded = [{"id": q, "reason": why} for q, why in corpus.excluded_queries(project.db, split)]
    except BaseException as e:
        status = "cancelled" if isinstance(e, InterruptedError) and is_cancelled() else "failed"
        if run_id is not None:
            runs.fail_run(project.db, run_id, f"{type(e).__name__}: {e}", status)
        raise
    report.run_id = run_id
    if run_id is not None:
        _save(project, run_id, report)
    return report


def _refs(project: Project, models: list[str] | None) -> list[ModelRef]:
    wanted = [m.strip() for m in (models or default_refs(project)) if m.strip()]
    try:
        refs = [resolve_ref(project, m) for m in wanted]
    except ModelRefError as e:
        raise EvalError(str(e)) from e
    base = [r for r in refs if r.name == BASE]
    # one of each, base first: the verdicts compare against it
    unique = {r.name: r for r in [*(base or [resolve_ref(project, BASE)]), *refs]}
    return list(unique.values())


def _queries(project: Project, split: str) -> list[corpus.JudgedQuery]:
    queries = corpus.judged_queries(project.db, split)
    if not queries:
        total = corpus.query_count(project.db, split)
        if total:
            raise EvalError(
                f"the project's {total} {split} queries have no judgments: give each the documents "
                f"that answer it (qrels/{split}.tsv, or 'relevant' in a --queries file)"
            )
        raise EvalError(
            f"the project has no {split} queries to evaluate on: import held-out queries with "
            f"judgments (qrels/{split}.tsv in a BEIR folder, or embtune import DIR --queries FILE "
            f"--tag {split})"
        )
    return queries


def _score(
    project: Project,
    ref: ModelRef,
    queries: list[corpus.JudgedQuery],
    general: list[corpus.JudgedQuery],
    chunk_docs: list[str],
    chunk_texts: list[str],
    progress: Progress,
    cancelled: Callable[[], bool],
) -> ModelScore:
    progress(f"load {ref.name}", 0, 1)
    encoder = open_encoder(
        ref.spec,
        base_dir=project.root,
        db=project.db,
        fit_texts=chunk_texts,
        trust_remote_code=project.config.trust_remote_code,
        prompts=project.config.prompts,
        backend=project.config.models.encode_backend,
    )
    vectors = encoder.encode(chunk_texts, "document", lambda d, t: progress(f"corpus {ref.name}", d, t), cancelled)
    texts = [q.text for q in queries] + [q.text for q in general]
    q_vectors = encoder.encode(texts, "query", lambda d, t: progress(f"queries {ref.name}", d, t), cancelled)
    rankings = dense_search(q_vectors, vectors, CHUNK_DEPTH)
    run = {q.id: to_documents(r, chunk_docs, DOC_DEPTH) for q, r in zip([*queries, *general], rankings, strict=True)}
    means, per_query = evaluate_run(run, {q.id: set(q.relevant) for q in queries}, ks=KS)
    samples, seed = project.config.evaluation.bootstrap_samples, project.config.seed
    ci = {
        key: bootstrap_ci([per_query[q.id][key] for q in queries], n_samples=samples, seed=seed) for key in EVAL_METRICS
    }
    score = ModelScore(
        ref.name,
        ref.spec,
        encoder.fingerprint,
        encoder.max_seq_length,
        ref.run_id,
        means,
        ci,
        per_query,
        {q.id: first_relevant_rank(run[q.id], q.relevant) for q in queries},
    )
    if general:
        score.general, score.general_per_query = evaluate_run(run, {q.id: set(q.relevant) for q in general}, ks=KS)
    del encoder, vectors  # one model in memory at a time
    progress(f"scored {ref.name}", 1, 1)
    return score


def _judge(scores: list[ModelScore], queries: list[corpus.JudgedQuery], config: Any, seed: int) -> None:
    base, metric = scores[0], config.metric
    ids = [q.id for q in queries]
    for score in scores[1:]:
        check = None
        if base.general is not None and score.general is not None:
            general_ids = list(base.general_per_query or {})
            check = general_check(
                metric,
                [(base.general_per_query or {})[q][metric] for q in general_ids],
                [(score.general_per_query or {})[q][metric] for q in general_ids],
                max_drop=config.general_max_drop,
                samples=config.bootstrap_samples,
                seed=seed,
            )
        score.general_check = check
        score.verdict = decide(
            [base.per_query[q][metric] for q in ids],
            [score.per_query[q][metric] for q in ids],
            metric=metric,
            min_gain=config.min_gain,
            general=check,
            samples=config.bootstrap_samples,
            seed=seed,
        )
        score.changes = change_counts(base.first_ranks, score.first_ranks)


def _save(project: Project, run_id: int, report: EvalReport) -> None:
    metrics = [(key, m.name, float(value)) for m in report.models for key, value in m.metrics.items()]
    metrics += [
        (f"general/{key}", m.name, float(value)) for m in report.models for key, value in (m.general or {}).items()
    ]
    rows = [(m.name, qid, m.first_ranks[qid], m.per_query[qid]) for m in report.models for qid in m.per_query]
    runs.finish_run(project.db, run_id, report.to_json(), metrics, rows)
