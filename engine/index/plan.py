"""`embtune index plan`: measure index types and vector compressions on the project's own table and queries.

Every option is scored against exact float32 search over the live table (its top 10 per query, one streaming scan):
recall@10, bytes per vector, p50/p95 search latency and build seconds. The pick is the smallest (then fastest)
option whose recall@10 reaches `index.min_recall`; a build with `index.type: auto` uses the latest plan's index
type. Index types are built on a scratch copy of the table (chunk ids and vectors only), never on the live one.

Compressions are measured in numpy as brute-force search over the compressed vectors (engine.index.compression, one
streaming scan): Matryoshka truncation (only for a model trained for it), int8 and binary quantization
(sentence-transformers' `quantize_embeddings`) each re-scoring the top 4×10 candidates with the float query, as its
docs advise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EmbtuneError
from engine.index.ann import (
    KINDS,
    LABELS,
    PLAN_KIND,
    K,
    build_ann,
    exact_top_k,
    latest_plan,
    measure_latency,
)
from engine.index.build import RECALL_QUERIES, connect, recall_query_texts
from engine.index.stream import SCAN_BATCH
from engine.jobs.progress import Progress, cancellable
from engine.project import Project
from engine.store import indexes, runs
from engine.store import jobs as store_jobs

LATENCY_QUERIES = 50


class PlanError(EmbtuneError):
    """A plan that cannot be measured (no complete table)."""


@dataclass
class Option:
    name: str  # "exact", "ivf_pq", "int8+rescore", "matryoshka:128", …
    family: str  # "exact" | "index" | "compression"
    recall_at_10: float
    bytes_per_vector: float
    p50_ms: float
    p95_ms: float
    build_seconds: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def meets(self, min_recall: float) -> bool:
        return self.recall_at_10 >= min_recall

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "recall_at_10": self.recall_at_10,
            "bytes_per_vector": round(self.bytes_per_vector, 1),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "build_seconds": self.build_seconds,
            "settings": self.settings,
            "note": self.note,
        }


@dataclass
class IndexPlan:
    table: str
    rows: int
    dim: int
    queries: int
    min_recall: float
    options: list[Option]
    pick: str | None
    index_pick: str | None
    run_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows": self.rows,
            "dim": self.dim,
            "queries": self.queries,
            "min_recall": self.min_recall,
            "pick": self.pick,
            "index_pick": self.index_pick,
            "options": [o.to_json() for o in self.options],
            "run_id": self.run_id,
        }


def plan_index(
    project: Project,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> IndexPlan:
    """Measure every index type in `kinds` and every compression on the live table; store the plan as a run."""
    from engine.index.search import Searcher

    stop = cancelled or (lambda: False)
    report = cancellable(progress, stop, "index plan")  # a cancel lands between steps, not only between probes
    row = indexes.live(project.db)
    if row is None:
        raise PlanError(f"no live index to measure: build one first (embtune index {project.root})")
    lance = connect(project)
    table = lance.open_table(row["table_name"])
    rows = table.count_rows()
    report("encode queries", 0, 1)
    queries = Searcher(project).encode_queries(row, recall_query_texts(project, rows)[:RECALL_QUERIES])
    report("exact search", 0, 1)
    truth = exact_top_k(table, queries, K)
    dim = int(queries.shape[1])
    min_recall = project.config.index.min_recall
    options = [_exact_option(table, queries, dim)]
    options += _index_options(project, lance, table, queries, truth, kinds, report, stop)
    options += _compression_options(project, row, table, queries, truth, report)
    plan = IndexPlan(row["table_name"], rows, dim, len(queries), min_recall, options, *_picks(options, min_recall))
    store_plan(project, plan)
    return plan


def store_plan(project: Project, plan: IndexPlan) -> int:
    """Record `plan` as a finished index-plan run (what `index.type: auto` and the Index screen read back)."""
    plan.run_id = runs.create_run(project.db, PLAN_KIND, {"table": plan.table})
    runs.finish_run(project.db, plan.run_id, plan.to_json(), [], [])
    return plan.run_id


def plan_rows(project: Project) -> list[dict[str, Any]]:
    """The latest plan's options as table rows for a screen: name, recall, bytes/vector, p50/p95, build, picked."""
    plan = latest_plan(project.db)
    return _marked(plan) if plan is not None else []


def plan_view(project: Project) -> dict[str, Any] | None:
    """The latest plan as plain data for a screen: its header figures, options marked `picked` / `meets`, a
    one-line verdict and when it was measured; None before the first plan."""
    found = runs.latest_result(project.db, PLAN_KIND)
    if found is None:
        return None
    run_id, plan = found
    run = runs.get_run(project.db, run_id) or {}
    return {
        **plan,
        "run_id": run_id,
        "measured_at": run.get("finished_at"),
        "options": _marked(plan),
        "verdict": verdict(plan),
    }


def _marked(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**o, "picked": o["name"] == plan["pick"], "meets": o["recall_at_10"] >= plan["min_recall"]}
        for o in plan["options"]
    ]


def label(name: str) -> str:
    """An option's display name: LanceDB's spelling for index types (IVF_PQ), the plan's own for the rest."""
    return LABELS.get(name, name)


def verdict(plan: dict[str, Any]) -> str:
    """'IVF_PQ meets recall@10 0.95 (0.972) at 1/16 the bytes of exact float32 (p50 0.8 ms vs 2.1 ms)', or why
    only exact search does; then the index type `index.type: auto` builds with when that differs."""
    options = {o["name"]: o for o in plan["options"]}
    floor, exact, pick = plan["min_recall"], options.get("exact"), options.get(plan.get("pick") or "")
    if pick is None or exact is None or pick["name"] == "exact":
        others = [o for o in plan["options"] if o["name"] != "exact"]
        best = max(others, key=lambda o: o["recall_at_10"], default=None)
        near = f" (closest: {label(best['name'])} at {best['recall_at_10']:.3f})" if best else ""
        text = f"Only exact search meets recall@10 {floor}{near}: keep full float32 vectors"
    else:
        ratio = exact["bytes_per_vector"] / pick["bytes_per_vector"] if pick["bytes_per_vector"] else 0.0
        size = (
            f"1/{ratio:.0f} the bytes"
            if ratio >= 1.95
            else f"{1 / ratio:.0%} of the bytes"
            if ratio
            else "an unmeasured size"
        )
        text = (
            f"{label(pick['name'])} meets recall@10 {floor} ({pick['recall_at_10']:.3f}) at {size} of exact float32 "
            f"(p50 {pick['p50_ms']:.2f} ms vs {exact['p50_ms']:.2f} ms)"
        )
    index_pick = plan.get("index_pick")
    if index_pick and index_pick != plan.get("pick"):
        text += f"; index builds (index.type: auto) use {label(index_pick)}"
    elif not index_pick and any(o["family"] == "index" for o in plan["options"]):
        text += "; no index type met it (a build keeps an index only if it does)"
    return text + "."


def _picks(options: list[Option], min_recall: float) -> tuple[str | None, str | None]:
    """Smallest bytes per vector, then fastest, among options meeting min_recall: overall and among indexes."""

    def best(pool: list[Option]) -> str | None:
        ok = [o for o in pool if o.meets(min_recall)]
        return min(ok, key=lambda o: (o.bytes_per_vector, o.p50_ms)).name if ok else None

    return best(options), best([o for o in options if o.family == "index"])


def _exact_option(table: Any, queries: np.ndarray, dim: int) -> Option:
    latency = measure_latency(table, queries[:LATENCY_QUERIES], None, None)
    return Option("exact", "exact", 1.0, 4.0 * dim, latency["p50_ms"], latency["p95_ms"], note="flat float32 scan")


def _index_options(
    project: Project,
    lance: Any,
    table: Any,
    queries: np.ndarray,
    truth: list[list[str]],
    kinds: tuple[str, ...],
    report: Progress,
    stop: Callable[[], bool],
) -> list[Option]:
    """Each index type on a scratch copy (chunk ids + vectors), at the fewest probes meeting min_recall."""
    rows = table.count_rows()
    if rows < 256:
        return []  # IVF training needs a few hundred vectors: exact search is the only sensible option here
    name = f"plan_scratch_{table.name}"
    scratch = _scratch_copy(lance, table, name)
    options = []
    try:
        for number, kind in enumerate(kinds):
            report("index types", number, len(kinds))
            result = build_ann(
                scratch, queries, project.config.index.min_recall, stop, kind=kind, truth=truth, keep=False
            )
            options.append(_index_option(kind, result, rows))
        report("index types", len(kinds), len(kinds))
    finally:
        lance.drop_table(name)
    return options


def _index_option(kind: str, result: Any, rows: int) -> Option:
    best = max(result.tried, key=lambda t: t["recall_at_10"]) if result.tried else {"recall_at_10": 0.0}
    recall = result.recall if result.recall is not None else best["recall_at_10"]
    latency = result.latency or {"p50_ms": float("nan"), "p95_ms": float("nan")}
    size = float(result.bytes_per_vector or 0.0)
    return Option(
        kind,
        "index",
        recall,
        size,
        latency["p50_ms"],
        latency["p95_ms"],
        result.build_seconds,
        {
            "nprobes": result.nprobes or best.get("nprobes"),
            "refine_factor": result.refine_factor,
            "index_bytes_on_disk": result.index_bytes,
        },
        result.note if result.recall is not None else f"{LABELS[kind]}: below min_recall at every probe setting",
    )


def _scratch_copy(lance: Any, table: Any, name: str) -> Any:
    if name in lance.list_tables().tables:
        lance.drop_table(name)
    scan = table.search().select(["chunk_id", "vector"]).limit(None).to_batches(SCAN_BATCH)
    first = next(iter(scan))
    import pyarrow as pa

    scratch = lance.create_table(name, pa.Table.from_batches([first]))
    for batch in scan:
        scratch.add(pa.Table.from_batches([batch]))
    return scratch


def _compression_options(
    project: Project, row: dict[str, Any], table: Any, queries: np.ndarray, truth: list[list[str]], report: Progress
) -> list[Option]:
    from engine.index import compression

    report("compressions", 0, 1)
    dim = int(queries.shape[1])
    found = compression.measure(
        table, queries, truth, compression.compressions(table, queries, matryoshka_dims(project, row, dim))
    )
    report("compressions", 1, 1)
    options = []
    for m in found:
        c = m.compression
        settings = {**c.settings, "rescore_multiplier": c.rescore} if c.rescore else c.settings
        options.append(
            Option(
                c.name, "compression", m.recall_at_10, c.bytes_per_vector, m.p50_ms, m.p95_ms, None, settings, m.note
            )
        )
    return options


def matryoshka_dims(project: Project, row: dict[str, Any], dim: int) -> list[int]:
    """Truncation sizes worth measuring: the run's training.matryoshka_dims for a model trained with
    MatryoshkaLoss, or halves and quarters when the model's card says it was; none otherwise (truncating other
    models loses most of the recall)."""
    run_id = row["config"].get("model_run")
    if run_id is not None:
        run = store_jobs.train_run(project.db, int(run_id))
        settings = ((run or {}).get("config") or {}).get("settings") or {}
        if settings.get("loss") == "matryoshka":  # the sizes it trained (null: full, 1/2, 1/4, 1/8, as the loss did)
            trained = settings.get("matryoshka_dims") or [d for d in (dim // 2, dim // 4, dim // 8) if d >= 8]
            return sorted({int(d) for d in trained if int(d) < dim}, reverse=True)
    spec = row["config"].get("spec")
    if spec and _card_mentions_matryoshka(project, spec):
        return [d for d in (dim // 2, dim // 4) if d >= 16]
    return []


def _card_mentions_matryoshka(project: Project, spec: str) -> bool:
    """The model card claims Matryoshka training (MatryoshkaLoss, "Matryoshka", "MRL"), outside the reading list
    every card sentence-transformers 6 writes carries ("Introduction to Matryoshka Embedding Models": a link, not
    a claim, on every model it saves, trained or not)."""
    from engine.models.resolve import resolve_model

    try:
        card = Path(resolve_model(spec, project.root).path) / "README.md"
        text = card.read_text(errors="replace") if card.is_file() else ""
    except EmbtuneError:
        return False
    claims = [line for line in text.splitlines() if "huggingface.co/blog/matryoshka" not in line]
    return any("matryoshka" in line.lower() or re.search(r"\bMRL\b", line) for line in claims)
