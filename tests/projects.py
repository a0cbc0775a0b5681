"""Small, deterministic projects for engine and TUI tests: a BEIR folder written in tmp, imported for real.

Each document is about one rare term, and each query names its document's term, so a lexical signal exists
(BM25 finds it) while the tiny random-weight embedder mostly does not: arms really differ.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from engine.cli.main import main
from engine.ingest import importing
from engine.project import Project, init_project, open_project
from engine.store import runs

TERMS = [
    "subrogation",
    "salvage",
    "deductible",
    "adjuster",
    "reinsurance",
    "indemnity",
    "endorsement",
    "premium",
    "underwriting",
    "actuary",
    "annuity",
    "rider",
    "exclusion",
    "coinsurance",
    "copayment",
    "arbitration",
    "appraisal",
    "depreciation",
    "betterment",
    "contribution",
    "waiver",
    "lapse",
    "rescission",
    "estoppel",
    "peril",
    "hazard",
    "casualty",
    "liability",
    "negligence",
    "tort",
    "bailment",
    "fiduciary",
    "warranty",
    "franchise",
    "retention",
    "layering",
    "treaty",
    "facultative",
    "cedent",
    "runoff",
]


def _rows(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_beir(root: Path, *, n_docs: int = 40, n_gate: int = 12, train_per_doc: int = 2) -> Path:
    """A BEIR folder: n_docs documents, gate queries on the first n_gate, train pairs on every document."""
    root.mkdir(parents=True, exist_ok=True)
    corpus, queries = [], []
    qrels: dict[str, list[tuple[str, str]]] = {"train": [], "gate": []}
    for i, term in enumerate(TERMS[:n_docs]):
        doc = f"d{i:02d}"
        corpus.append(
            {
                "_id": doc,
                "title": term.title(),
                "text": f"The {term} rule. Handlers apply {term} when the file reaches stage {i}. "
                f"Ask the team lead about {term} exceptions before paying.",
            }
        )
        for j in range(train_per_doc):
            queries.append({"_id": f"tr-{doc}-{j}", "text": f"question {j} about {term} handling"})
            qrels["train"].append((f"tr-{doc}-{j}", doc))
        if i < n_gate:
            queries.append({"_id": f"ga-{doc}", "text": f"when do we use {term}"})
            qrels["gate"].append((f"ga-{doc}", doc))
    (root / "corpus.jsonl").write_text(_rows(corpus))
    (root / "queries.jsonl").write_text(_rows(queries))
    (root / "qrels").mkdir(exist_ok=True)
    for split, rows in qrels.items():
        lines = "".join(f"{q}\t{d}\t1\n" for q, d in rows)
        (root / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + lines)
    return root


def make_project(
    tmp: Path,
    embedder: Path,
    *,
    reranker: Path | None = None,
    expansions: bool = True,
    gate: dict[str, float] | None = None,
    **beir: int,
) -> Project:
    """A project on the tiny embedder with the BEIR folder above imported; `gate` overrides thresholds."""
    root = tmp / "project"
    init_project(root)
    gate_lines = "".join(f"  {key}: {value}\n" for key, value in (gate or {}).items())
    lines = [f"name: test-project\nbase_model: {embedder}\n", f"gate:\n  bootstrap_samples: 200\n{gate_lines}"]
    if reranker is not None:
        lines.append(f"reranker: {reranker}\n")
    if expansions:
        (root / "synonyms.yaml").write_text("SUBRO: [subrogation]\nDED: [deductible]\nUW: [underwriting]\n")
        lines.append("expansions: synonyms.yaml\n")
    (root / "project.yaml").write_text("".join(lines))
    from engine.project import open_project

    project = open_project(root)
    importing.import_beir(project, write_beir(tmp / "beir", **beir))
    return project


def set_index_config(project: Project, **values: Any) -> Project:
    """Append an `index:` section to project.yaml and reopen the project."""
    path = project.root / "project.yaml"
    path.write_text(path.read_text() + "index:\n" + "".join(f"  {k}: {v}\n" for k, v in values.items()))
    project.close()
    return open_project(project.root)


def register_model(project: Project, model: Path) -> int:
    run_id = runs.create_run(project.db, "train", {"settings": {"epochs": 1}, "data": {"pairs": 80}})
    shutil.copytree(model, project.root / "models" / f"run-{run_id}")
    runs.finish_model_run(project.db, run_id, f"models/run-{run_id}", {"steps": 3})
    return run_id


def cli(*args: Any) -> tuple[int, str]:
    """`embtune ARGS` in this process: (exit code, stdout)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout
