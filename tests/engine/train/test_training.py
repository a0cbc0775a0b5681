"""Training in-process on the tiny model: the run record, the dev slice carved by document from the train split,
hard negatives, the pre-flight plan, settings validation, and cancel at step k stopping within one step."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine.train.callbacks
import engine.train.run
from engine.config import ConfigError, config_from_dict
from engine.project import Project, open_project
from engine.store import corpus, examples, runs
from engine.store import jobs as store
from engine.store.db import write
from engine.store.examples import reviewed_examples
from engine.train.callbacks import metric_rows
from engine.train.dataset import build_data
from engine.train.run import TrainingError, execute, plan, settings_for, start_training
from tests.projects import make_project

SMALL_DEV = "training:\n  dev_min_queries: 10\n"  # the tiny project's 36 train queries still get a dev slice


@pytest.fixture
def project(tmp_path: Path, tiny_embedder_path: Path) -> Project:
    made = make_project(tmp_path, tiny_embedder_path, train_per_doc=3)
    made.close()
    with (made.root / "project.yaml").open("a") as f:
        f.write(SMALL_DEV)
    p = open_project(made.root)
    yield p
    p.close()


def test_a_run_records_everything_and_leaves_a_loadable_model(project: Project) -> None:
    from sentence_transformers import SentenceTransformer

    settings = settings_for(project, batch_size=8, max_steps=6)
    run_id, summary = start_training(project, settings, launch=False)
    assert summary["max_steps"] == 6
    assert summary["dev_queries"] >= 10
    result = execute(project, run_id)
    assert result["status"] == "finished"
    run = store.train_run(project.db, run_id)
    assert run is not None
    assert run["status"] == "finished"
    assert run["model_path"] == f"models/run-{run_id}"
    config = run["config"]
    for key in ("seed", "data_hash", "base_model_fingerprint", "versions", "device", "max_seq_length", "preflight"):
        assert key in config, key
    assert config["versions"]["sentence-transformers"]
    assert config["preflight"]["step_seconds"] > 0
    losses = [step for key, split, step, _ in store.metric_series(project.db, run_id) if key == "loss"]
    assert losses == list(range(1, 7))  # one loss point per step, no duplicates
    dev = {step for key, split, step, _ in store.metric_series(project.db, run_id) if key == "ndcg@10"}
    assert 0 in dev
    assert 6 in dev
    model_dir = project.root / run["model_path"]
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "README.md").is_file()
    vectors = SentenceTransformer(str(model_dir), device="cpu").encode(["a claim"])
    assert vectors.shape == (1, 64)
    from engine.models.refs import resolve_ref

    assert resolve_ref(project, str(run_id)).spec == str(model_dir)


def test_dev_slice_is_carved_by_document_from_train_and_never_leaks(project: Project) -> None:
    settings = dict(seed=1, dev_fraction=0.2, dev_max_queries=200, dev_corpus_max=1000, hard_negatives=True)
    data = build_data(project.db, **settings, dev_min_queries=5)
    train_examples = examples.reviewed_examples(project.db, "train")
    dev_docs = {e.doc_id for e in train_examples if e.query_id in data.dev_queries}
    train_queries = set(data.anchors)
    assert not train_queries & set(data.dev_queries.values())
    train_passages = set(data.positives)
    dev_positives = {data.dev_corpus[c] for rel in data.dev_relevant.values() for c in rel}
    assert not train_passages & dev_positives  # a dev document is never a training positive
    assert dev_docs
    test_ids = {q.id for q in corpus.judged_queries(project.db, "gate")}
    assert not test_ids & set(data.dev_queries)  # only train-split queries
    again = build_data(project.db, **settings, dev_min_queries=5)
    assert again.snapshot_hash() == data.snapshot_hash()  # seeded


def test_mined_negatives_become_a_third_column(project: Project) -> None:
    pairs = examples.reviewed_examples(project.db, "train")
    chunk = project.db.execute("SELECT id FROM chunks WHERE doc_id = 'd39'").fetchone()[0]
    with write(project.db):
        project.db.execute(
            "INSERT INTO negatives (query_id, chunk_id, score, miner) VALUES (?, ?, 0.5, 'test')",
            [pairs[0].query_id, chunk],
        )
    data = build_data(project.db, seed=0, dev_fraction=0.0, dev_max_queries=1, dev_corpus_max=10, hard_negatives=True)
    assert data.negatives is not None
    assert len(data.negatives) == data.rows
    assert data.counts["mined_negatives"] >= 1
    off = build_data(project.db, seed=0, dev_fraction=0.0, dev_max_queries=1, dev_corpus_max=10, hard_negatives=False)
    assert off.negatives is None


def test_plan_counts_duplicates_and_rejects_bad_settings(project: Project) -> None:
    summary = plan(project, settings_for(project, batch_size=16))
    assert summary["duplicates_per_batch"] > 0  # three queries per document: a random batch repeats passages
    assert summary["duplicates_per_batch_sampled"] == 0
    with pytest.raises(TrainingError, match="fewer than one batch"):
        plan(project, settings_for(project, batch_size=4096))
    with pytest.raises(TrainingError, match="--lr"):
        settings_for(project, learning_rate=5.0)
    with pytest.raises(ConfigError, match=r"training\.dev_fraction"):
        config_from_dict({"training": {"dev_fraction": 0.9}})


def test_the_seed_is_the_projects_unless_given(project: Project) -> None:
    """`embtune train --seed N` (once a TypeError: the project seed and the flag were both passed)."""
    assert settings_for(project).seed == project.config.seed
    assert settings_for(project, seed=project.config.seed + 5).seed == project.config.seed + 5


def test_metric_rows_split_train_and_dev() -> None:
    rows = metric_rows(
        {"loss": 1.5, "learning_rate": 1e-5, "epoch": 0.1, "eval_dev_cosine_ndcg@10": 0.4, "eval_runtime": 2.0}, 7
    )
    assert sorted(rows) == [("loss", "train", 7, 1.5), ("lr", "train", 7, 1e-5), ("ndcg@10", "dev", 7, 0.4)]


def test_cancel_at_step_k_stops_within_one_step_with_a_loadable_checkpoint(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentence_transformers import SentenceTransformer

    k = 3
    run_id, _ = start_training(
        project, settings_for(project, batch_size=8, max_steps=12, dev_fraction=0.0), launch=False
    )
    polls = {"n": 0}
    real = engine.train.callbacks.store.cancel_requested

    def cancel_during_step_k(db: object, rid: int) -> bool:
        polls["n"] += 1  # polled once per step end
        if polls["n"] == k:
            store.request_cancel(project.db, run_id)  # as if `c` was pressed while step k ran
        return real(db, rid)

    monkeypatch.setattr(engine.train.callbacks.store, "cancel_requested", cancel_during_step_k)
    result = execute(project, run_id)
    assert result["status"] == "cancelled"
    assert result["steps"] <= k + 1
    run = store.train_run(project.db, run_id)
    assert run is not None
    assert run["status"] == "cancelled"
    checkpoint = project.root / run["checkpoint_path"]
    assert checkpoint.name == f"checkpoint-{result['steps']}"
    assert SentenceTransformer(str(checkpoint), device="cpu").encode(["x"]).shape == (1, 64)
    assert runs.model_run(project.db, run_id) is None  # a cancelled run offers no model to `--model RUN`


def test_cancel_during_the_base_evaluation_stops_before_any_step(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, _ = start_training(project, settings_for(project, batch_size=8, max_steps=12), launch=False)
    calls = {"n": 0}

    def cancelled_once_evaluating(db: object, rid: int) -> bool:
        calls["n"] += 1  # 1: before loading, 2: after loading, 3: the base evaluation's first encoding block
        return calls["n"] >= 3

    monkeypatch.setattr(engine.train.run.store, "cancel_requested", cancelled_once_evaluating)
    result = execute(project, run_id)
    assert result == {"status": "cancelled", "steps": 0, "seconds": result["seconds"]}
    assert calls["n"] == 3
    assert store.train_run(project.db, run_id)["status"] == "cancelled"
    assert not [row for row in store.metric_series(project.db, run_id) if row[0] == "loss"]


def test_loss_options_and_precision(tiny_embedder_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from engine.train.settings import TrainSettings
    from engine.train.trainer import make_loss, resolve_precision

    model = SentenceTransformer(str(tiny_embedder_path), device="cpu")
    names = {
        loss: type(make_loss(model, TrainSettings(loss=loss))).__name__
        for loss in ("mnrl", "cached_mnrl", "matryoshka")
    }
    assert names == {
        "mnrl": "MultipleNegativesRankingLoss",
        "cached_mnrl": "CachedMultipleNegativesRankingLoss",
        "matryoshka": "MatryoshkaLoss",
    }
    assert list(make_loss(model, TrainSettings(loss="matryoshka")).matryoshka_dims) == [64, 32, 16, 8]
    # hardness weighting (default 9) on the in-batch negatives of every loss; 0 turns it off
    for loss in ("mnrl", "cached_mnrl"):
        weighted, plain = (
            make_loss(model, TrainSettings(loss=loss)),
            make_loss(model, TrainSettings(loss=loss, hardness=0)),
        )
        assert (weighted.hardness_mode, weighted.hardness_strength) == ("in_batch_negatives", 9.0)
        assert plain.hardness_mode is None
    assert make_loss(model, TrainSettings(loss="matryoshka")).loss.hardness_mode == "in_batch_negatives"
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"


def test_a_small_project_trains_on_every_row_and_only_watches_its_gate_queries(project: Project) -> None:
    # below dev_min_queries (default 200) a dev nDCG is too noisy to choose checkpoints with
    data = build_data(
        project.db, seed=1, dev_fraction=0.1, dev_max_queries=200, dev_corpus_max=1000, hard_negatives=True
    )
    assert data.rows == data.counts["pairs"] == 120
    assert (data.dev_source, len(data.dev_queries)) == ("gate", 12)  # the tiny project's gate queries
    assert not data.selects_checkpoint
    gate_texts = {e.query for e in reviewed_examples(project.db, "gate")}
    assert set(data.dev_queries.values()) == gate_texts
    off = build_data(
        project.db, seed=1, dev_fraction=0.0, dev_max_queries=200, dev_corpus_max=1000, hard_negatives=True
    )
    assert (off.dev_queries, off.dev_source) == ({}, "")


def test_without_a_dev_slice_the_test_queries_are_watched_first(tmp_path: Path, tiny_embedder_path: Path) -> None:
    from tests.evalmodels import N_TEST, make_eval_project

    project = make_eval_project(tmp_path, tiny_embedder_path)
    data = build_data(project.db, seed=1, dev_fraction=0.1, dev_max_queries=8, dev_corpus_max=50, hard_negatives=True)
    assert data.dev_source == "test"
    assert len(data.dev_queries) == 8 < N_TEST  # capped at dev_max_queries, seeded
    test_texts = {e.query for e in reviewed_examples(project.db, "test")}
    assert set(data.dev_queries.values()) <= test_texts
    assert data.rows == data.counts["pairs"]  # every train row still trains
    project.close()


def test_a_run_watching_gate_queries_keeps_its_last_step(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path, train_per_doc=3)
    settings = settings_for(project, batch_size=8, max_steps=4, watch="every 2")
    run_id, summary = start_training(project, settings, launch=False)
    assert summary["dev_source"] == "gate"
    assert summary["watch"]["text"] == "every 2 steps"
    result = execute(project, run_id)
    assert result["status"] == "finished"
    assert result["dev"] is None  # nothing was chosen on the watched queries
    watched = sorted(step for key, split, step, _ in store.metric_series(project.db, run_id) if key == "ndcg@10")
    assert watched == [0, 2, 4]
    assert result["steps"] == 4
    project.close()


def test_watch_off_evaluates_nothing_and_auto_stays_within_its_budget(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path, train_per_doc=3)
    off_id, off_plan = start_training(
        project, settings_for(project, batch_size=8, max_steps=3, watch="off"), launch=False
    )
    assert off_plan["eval_steps"] == 0
    assert execute(project, off_id)["status"] == "finished"
    assert not [r for r in store.metric_series(project.db, off_id) if r[1] == "dev"]
    auto_id, auto_plan = start_training(project, settings_for(project, batch_size=8, max_steps=6), launch=False)
    assert auto_plan["watch"] == {"mode": "auto", "budget_share": 0.1, "text": "auto: at most 10% of training time"}
    assert execute(project, auto_id)["status"] == "finished"
    events = {e["kind"]: e for e in runs.run_events(project.db, auto_id, 0)}
    run = store.train_run(project.db, auto_id)
    steps = sorted({s for key, split, s, _ in store.metric_series(project.db, auto_id) if key == "ndcg@10"})
    assert steps[0] == 0  # the base model, through the embedding cache
    # every later evaluation was paid for by training time: at most 10% of it, besides the base's
    watch = run["result"]["watch"]
    assert watch["evaluations"] == len(steps) - 1
    assert watch["seconds"] - watch["base_seconds"] <= 0.1 * watch["train_seconds"] + 1e-6
    assert events["preflight"]["payload"]["step_seconds"] > 0  # measured on the first real step
    assert run["step"] == 6  # and that step trained: nothing was thrown away
    project.close()


def test_dev_slice_never_holds_out_more_than_its_share_of_rows() -> None:
    """Shared documents (many queries judged on each, as in synthetic QA sets) make a dev slice by document hold
    out far more rows than queries; the slice stops at dev_fraction of the rows, or is not carved at all."""
    import random

    from engine.store.examples import ReviewedExample
    from engine.train.dataset import _dev_queries

    def example(i: int, query: int, doc: int) -> ReviewedExample:
        return ReviewedExample(i, f"q{query}", f"query {query}", f"d{doc}", f"passage {doc}", ())

    # 1,000 queries, each judged on a document of its own and on a hub document shared with 9 others: 2,000 rows
    shared = [example(2 * q + k, q, q if k == 0 else 1000 + q // 10) for q in range(1000) for k in (0, 1)]
    dev, dev_docs = _dev_queries(shared, random.Random(0), fraction=0.1, cap=200, minimum=20)
    held = [e for e in shared if e.query_id in dev or e.doc_id in dev_docs]
    assert 20 <= len(dev) < 100  # not the 100 queries a 10% query share would give
    assert len(held) <= 200  # 10% of the rows
    assert dev_docs == {e.doc_id for e in shared if e.query_id in dev}  # no dev document is a training positive

    # a query per document: the query share is reached well within the row budget
    single = [example(q, q, q) for q in range(1000)]
    dev, _ = _dev_queries(single, random.Random(0), fraction=0.1, cap=200, minimum=20)
    assert len(dev) == 100

    # the budget cannot reach the minimum: no dev slice, every row trains
    assert _dev_queries(shared, random.Random(0), fraction=0.1, cap=200, minimum=50) == (set(), set())


def test_filler_negatives_are_never_another_positive_of_the_same_query() -> None:
    import random

    from engine.store.examples import ReviewedExample
    from engine.train.dataset import _negatives

    # every query judged on two documents; no mined negatives, so each row gets a filler negative
    train = [
        ReviewedExample(2 * q + k, f"q{q}", f"query {q}", f"d{q}-{k}", f"passage {q}-{k}", ())
        for q in range(4)
        for k in (0, 1)
    ]
    for seed in range(50):
        negatives, mined = _negatives(train, random.Random(seed))
        assert mined == 0
        for e, negative in zip(train, negatives, strict=True):
            assert not negative.startswith(f"passage {e.query_id[1:]}-")


def test_dry_run_names_the_recipe_and_starts_nothing(tmp_path: Path, tiny_embedder_path: Path) -> None:
    import json

    from tests.projects import cli

    project = make_project(tmp_path, tiny_embedder_path, train_per_doc=3)
    root = project.root
    project.close()
    given = ("--epochs", "2", "--batch-size", "8", "--watch", "every 3", "--seed", "7")
    code, out = cli("train", root, "--dry-run", "--json", *given)
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["loss"], summary["epochs"], summary["max_steps"]) == ("mnrl", 2, 2 * summary["steps_per_epoch"])
    assert (summary["in_batch"], summary["batches"], summary["hard_negatives"]) == ("gte", "topic", False)
    assert summary["watch"]["text"] == "every 3 steps"
    assert summary["eval_steps"] == 3
    assert any("TAS-B" in line for line in summary["recipe"])
    assert summary["hardness"] == 9.0
    assert any("hardness-weighted" in line for line in summary["recipe"])
    code, out = cli("runs", root, "--json")
    assert json.loads(out) == {"runs": []}  # nothing was queued
    code, out = cli("train", root, "--dry-run", "--watch", "sometimes")
    assert code == 2


def test_the_cached_base_evaluation_equals_the_libraries_evaluator(project: Project, tiny_embedder_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from engine.models.encoder import cache_key
    from engine.models.prompts import Prompts
    from engine.store.embeddings import cached_vectors
    from engine.train.run import load_data
    from engine.train.trainer import dev_evaluator
    from engine.train.watch import base_metrics

    data = load_data(project, settings_for(project))
    model = SentenceTransformer(str(tiny_embedder_path), device="cpu")
    theirs = dev_evaluator(data, 8)(model)
    ours = base_metrics(model, "tiny-fp", data, project.db, Prompts())
    for key, value in ours.items():
        assert value == pytest.approx(theirs[f"dev_cosine_{key}"], abs=1e-9), key
    keys = [cache_key(t, "query") for t in data.dev_queries.values()]
    keys += [cache_key(t, "document") for t in data.dev_corpus.values()]
    assert len(cached_vectors(project.db, "tiny-fp", int(model.max_seq_length), keys)) == len(set(keys))
    again = base_metrics(model, "tiny-fp", data, project.db, Prompts(), cancelled=lambda: True)
    assert again == ours  # read from the cache: no encoding block ran, so cancel had nothing to stop


def test_the_batch_size_follows_the_row_count_unless_set(project: Project) -> None:
    from engine.train.settings import SMALL_SET_ROWS, auto_batch_size

    assert (auto_batch_size(SMALL_SET_ROWS - 1), auto_batch_size(SMALL_SET_ROWS)) == (16, 32)
    auto = settings_for(project)
    assert auto.batch_size == 16  # 120 rows: a small set gets the steps of the smaller batch
    assert "batch 16: 120 pairs, fewer than 3,200 (enough steps)" in plan(project, auto)["recipe"]
    assert settings_for(project, batch_size=32).batch_size == 32
    assert not any(line.startswith("batch") for line in plan(project, settings_for(project, batch_size=32))["recipe"])
