"""Evaluation fixtures: a project with train, test and general queries, and a tuned model registered as a run.

The tuned model is the tiny embedder after a few MultipleNegativesRankingLoss steps on the project's train pairs:
a real, different model (its own fingerprint), mostly better on the test queries about the same documents.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.ingest import importing
from engine.project import Project, init_project, open_project
from engine.store import corpus, runs
from tests.projects import TERMS, write_beir

N_TEST = 20
N_GENERAL = 8


def write_eval_beir(root: Path) -> Path:
    """tests.projects' BEIR folder plus test queries (documents 0-19) and general queries (documents 30-37)."""
    write_beir(root, n_gate=0)
    extra, test, general = [], [], []
    for i, term in enumerate(TERMS[:N_TEST]):
        extra.append({"_id": f"te-{i:02d}", "text": f"which stage needs the {term} exceptions checked"})
        test.append(f"te-{i:02d}\td{i:02d}\t1\n")
    for i, term in enumerate(TERMS[30 : 30 + N_GENERAL], start=30):
        extra.append({"_id": f"ge-{i:02d}", "text": f"tell me what {term} means"})
        general.append(f"ge-{i:02d}\td{i:02d}\t1\n")
    with (root / "queries.jsonl").open("a") as f:
        f.writelines(json.dumps(row) + "\n" for row in extra)
    header = "query-id\tcorpus-id\tscore\n"
    (root / "qrels" / "test.tsv").write_text(header + "".join(test))
    (root / "qrels" / "general.tsv").write_text(header + "".join(general))
    (root / "qrels" / "gate.tsv").unlink()
    return root


def make_eval_project(tmp: Path, embedder: Path, evaluation: dict[str, float] | None = None) -> Project:
    root = tmp / "project"
    init_project(root)
    extra = "".join(f"  {k}: {v}\n" for k, v in (evaluation or {}).items())
    (root / "project.yaml").write_text(
        f"name: eval-test\nbase_model: {embedder}\nseed: 1\nevaluation:\n  bootstrap_samples: 200\n{extra}"
    )
    project = open_project(root)
    importing.import_beir(project, write_eval_beir(tmp / "beir"))
    return project


def train_tiny(base: Path, dest: Path, pairs: list[tuple[str, str]], steps: int = 30, seed: int = 0) -> Path:
    """A few MNRL steps from `base` on (query, passage) pairs, saved in `dest`."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(seed)
    model = SentenceTransformer(str(base), device="cpu")
    loss = MultipleNegativesRankingLoss(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        picked = torch.randperm(len(pairs), generator=generator)[:16].tolist()
        features = [model.preprocess([pairs[i][0] for i in picked]), model.preprocess([pairs[i][1] for i in picked])]
        value = loss(features, None)
        value.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.save(str(dest))
    return dest


def register_run(project: Project, model: Path) -> int:
    """Copy a model folder to models/run-N and record a finished 'train' run for it, as training does."""
    run_id = runs.create_run(project.db, "train", {"note": "test fixture"})
    relative = f"models/run-{run_id}"
    shutil.copytree(model, project.root / relative)
    runs.finish_model_run(project.db, run_id, relative, {"steps": 30})
    return run_id


def train_pairs(project: Project) -> list[tuple[str, str]]:
    return [(p.query, p.passage) for p in corpus.training_pairs(project.db)]
