"""Evaluation on tiny real models: metrics and intervals, verdicts, the per-query diff, the general-query check,
the leakage guard, the embedding cache, the stored result and the `embtune eval` contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.config import EVAL_METRICS
from engine.evaluate.report import render_markdown
from engine.evaluate.results import candidates, load_eval_result
from engine.evaluate.run import EvalError, LeakageError, run_eval
from engine.evaluate.verdict import change_counts, decide, general_check, rank_change
from engine.models.encoder import Encoder
from engine.project import Project, open_project
from engine.store import runs
from engine.store.queries import status_counts
from tests.evalmodels import N_GENERAL, N_TEST, make_eval_project, register_run, train_pairs, train_tiny


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, tiny_embedder_path: Path) -> tuple[Path, Path]:
    """(project root with a registered tuned run, tuned model folder), built once; tests work on copies."""
    tmp = tmp_path_factory.mktemp("evaltemplate")
    project = make_eval_project(tmp, tiny_embedder_path)
    tuned = train_tiny(tiny_embedder_path, tmp / "tuned", train_pairs(project))
    assert register_run(project, tuned) == 1
    project.close()
    return project.root, tuned


@pytest.fixture
def project(template: tuple[Path, Path], tmp_path: Path) -> Project:
    copy = open_project(shutil.copytree(template[0], tmp_path / "project"))
    yield copy
    copy.close()


def plain_ranks(model_path: Path, project: Project) -> dict[str, int | None]:
    """First relevant ranks computed without embtune's encoder, cache or search: the diff's reference."""
    from sentence_transformers import SentenceTransformer

    from engine.store import corpus

    _, docs, texts = corpus.retrieval_chunks(project.db)
    queries = corpus.judged_queries(project.db, "test")
    model = SentenceTransformer(str(model_path), device="cpu")
    d = model.encode_document(texts, normalize_embeddings=True)
    q = model.encode_query([x.text for x in queries], normalize_embeddings=True)
    out = {}
    for query, scores in zip(queries, q @ d.T, strict=True):
        order = [docs[i] for i in np.argsort(-scores, kind="stable")]
        hit = next((rank for rank, doc in enumerate(order, start=1) if doc in query.relevant), None)
        out[query.id] = hit if hit is not None and hit <= 100 else None
    return out


# --- verdicts and changes: hand-computed cases --------------------------------------------------------------


def test_verdict_follows_the_interval_of_the_per_query_gain() -> None:
    base = [0.2, 0.4, 0.5, 0.1, 0.3, 0.6, 0.2, 0.4] * 5
    better = [b + 0.1 for b in base]  # every query gains 0.1: interval [0.1, 0.1]
    win = decide(base, better, metric="ndcg@10", min_gain=0.01, general=None, samples=500)
    assert win.verdict == "WIN"
    assert win.delta == pytest.approx(0.1)
    assert win.ci == pytest.approx((0.1, 0.1))
    assert win.p_value < 0.01
    # a real but tiny gain is MARGINAL under min_gain
    small = decide(base, [b + 0.005 for b in base], metric="ndcg@10", min_gain=0.01, general=None, samples=500)
    assert small.verdict == "MARGINAL"
    assert "less than evaluation.min_gain" in small.reasons[0]
    # gains and losses that cancel: the interval spans 0
    mixed = decide(
        base,
        [b + (0.2 if i % 2 else -0.2) for i, b in enumerate(base)],
        metric="ndcg@10",
        min_gain=0.0,
        general=None,
        samples=500,
    )
    assert mixed.verdict == "MARGINAL"
    assert mixed.ci[0] < 0 < mixed.ci[1]
    assert mixed.p_value > 0.5
    worse = decide(base, [b - 0.05 for b in base], metric="ndcg@10", min_gain=0.01, general=None, samples=500)
    assert worse.verdict == "REGRESSION"
    assert worse.ci[1] < 0


GENERAL_BASE = [0.9, 0.5, 0.7, 0.3, 0.6, 0.8] * 5  # 30 general queries, mean 0.6333


def test_forgetting_general_queries_turns_a_win_into_a_regression() -> None:
    base = [0.2, 0.4, 0.5, 0.1] * 10
    ok = general_check("ndcg@10", GENERAL_BASE, [g - 0.01 for g in GENERAL_BASE], max_drop=0.02)
    # every general query loses 0.05: the interval is [-0.05, -0.05], wholly below 0, and the drop exceeds 0.02
    forgot = general_check("ndcg@10", GENERAL_BASE, [g - 0.05 for g in GENERAL_BASE], max_drop=0.02)
    assert not ok.regressing
    assert ok.ci[1] < 0
    assert "by no more than evaluation.general_max_drop" in (ok.warning or "")
    assert forgot.regressing
    assert forgot.drop == pytest.approx(0.05)
    assert forgot.ci == pytest.approx((-0.05, -0.05))
    assert forgot.to_json()["delta_ci"] == pytest.approx([-0.05, -0.05])
    kept = decide(base, [b + 0.1 for b in base], metric="ndcg@10", min_gain=0.01, general=ok)
    assert kept.verdict == "WIN"
    lost = decide(base, [b + 0.1 for b in base], metric="ndcg@10", min_gain=0.01, general=forgot)
    assert lost.verdict == "REGRESSION"
    assert "forgets general queries" in lost.reasons[1]
    assert "0.6333 → 0.5833" in lost.reasons[1]
    assert "[-0.0500, -0.0500] lies below 0" in lost.reasons[1]


def test_a_general_drop_whose_interval_spans_0_is_a_warning_not_a_regression() -> None:
    # on average 0.04 lower (twice general_max_drop), but 3 queries lose 0.6 while 27 gain 0.022: one resample
    # in ~4 holds none of the three losers, so the interval of the mean change reaches above 0
    tuned = [g - 0.6 if i % 10 == 0 else g + 0.0222 for i, g in enumerate(GENERAL_BASE)]
    noisy = general_check("ndcg@10", GENERAL_BASE, tuned, max_drop=0.02, samples=2000)
    assert noisy.drop == pytest.approx(0.04, abs=1e-3)
    assert noisy.ci[0] < 0 < noisy.ci[1]
    assert not noisy.regressing  # the old point rule (drop > 0.02) called this a regression
    assert "spans 0 on 30 general queries" in (noisy.warning or "")
    base = [0.2, 0.4, 0.5, 0.1] * 10
    verdict = decide(base, [b + 0.1 for b in base], metric="ndcg@10", min_gain=0.01, general=noisy)
    assert verdict.verdict == "WIN"
    assert verdict.reasons[1].startswith("warning: general queries drop more than evaluation.general_max_drop")
    # the same mean drop spread over every query is consistent: a regression
    steady = general_check("ndcg@10", GENERAL_BASE, [g - 0.04 for g in GENERAL_BASE], max_drop=0.02)
    assert steady.regressing
    assert decide(base, [b + 0.1 for b in base], metric="ndcg@10", min_gain=0.01, general=steady).verdict == (
        "REGRESSION"
    )


def test_rank_changes() -> None:
    assert rank_change(5, 1) == "improved"
    assert rank_change(None, 40) == "improved"  # found where it was not in the top 100
    assert rank_change(1, 2) == "regressed"
    assert rank_change(3, None) == "regressed"
    assert rank_change(None, None) == "unchanged"
    assert rank_change(7, 7) == "unchanged"
    counts = change_counts({"a": 5, "b": 1, "c": None, "d": 2}, {"a": 1, "b": 3, "c": None, "d": 2})
    assert counts == {"improved": 1, "regressed": 1, "unchanged": 2}


# --- the evaluation on a tiny model pair ------------------------------------------------------------------


def test_base_against_a_tuned_run_metrics_diff_verdict_and_stored_result(
    project: Project, template: tuple[Path, Path], tiny_embedder_path: Path
) -> None:
    report = run_eval(project, ["base", "run-1"])
    out = report.to_json()
    assert out["split"] == "test"
    assert out["n_queries"] == N_TEST
    assert list(out["models"]) == ["base", "run 1"]
    base, tuned = report.models
    # the per-query diff is exactly the ranks a plain sentence-transformers search gives
    assert base.first_ranks == plain_ranks(tiny_embedder_path, project)
    assert tuned.first_ranks == plain_ranks(template[1], project)
    expected = change_counts(base.first_ranks, tuned.first_ranks)
    assert out["models"]["run 1"]["per_query"] == expected == out["per_query"]["run 1"]
    assert sum(expected.values()) == N_TEST
    assert expected["improved"]
    assert expected["regressed"]
    for model in report.models:
        # recall@k and MRR@10 follow from the first ranks (one relevant document per query)
        ranks = list(model.first_ranks.values())
        for k in (1, 5, 10, 100):
            assert model.metrics[f"recall@{k}"] == pytest.approx(sum(r is not None and r <= k for r in ranks) / N_TEST)
        assert model.metrics["mrr@10"] == pytest.approx(sum(1 / r for r in ranks if r is not None and r <= 10) / N_TEST)
        for key in EVAL_METRICS:
            low, high = out["models"][model.name][f"{key}_ci"]
            assert low <= model.metrics[key] <= high
    assert base.fingerprint != tuned.fingerprint
    verdict = out["models"]["run 1"]
    assert verdict["verdict"] in ("WIN", "MARGINAL", "REGRESSION")
    assert out["verdict"] == {"run 1": verdict["verdict"]}
    assert verdict["delta"] == pytest.approx(tuned.metrics["ndcg@10"] - base.metrics["ndcg@10"])
    assert 0 < verdict["p_value"] <= 1
    assert out["general"]["n_queries"] == N_GENERAL
    assert set(out["general"]["models"]) == {"base", "run 1"}
    assert out["leakage"]["queries"] == 0
    assert out["leakage"]["pairs"] == 0
    # BEIR-style: the test queries' documents are train positives: counted, not an error
    assert out["leakage"]["document_overlap"] == {"documents": N_TEST, "queries": N_TEST}
    assert out["queries_excluded"] == []  # no review has rejected a test judgment

    stored = load_eval_result(project)
    assert stored is not None
    assert stored.run_id == report.run_id
    assert stored.report == json.loads(json.dumps(out))
    by_id = {q.id: q for q in stored.queries}
    assert {q: by_id[q].ranks["run 1"] for q in tuned.first_ranks} == tuned.first_ranks
    assert by_id["te-03"].text == "which stage needs the adjuster exceptions checked"
    assert by_id["te-03"].titles == ("Adjuster",)
    assert runs.get_run(project.db, report.run_id)["kind"] == "eval"
    markdown = render_markdown(stored.report, stored.changed())
    assert f"{N_TEST} judged queries" in markdown
    assert base.fingerprint in markdown
    assert tuned.fingerprint in markdown
    assert "## Queries whose first relevant rank changed" in markdown


def test_a_model_that_forgets_general_queries_is_a_regression(
    project: Project, template: tuple[Path, Path], tiny_embedder_path: Path
) -> None:
    # the tuned model as the base and the untrained one as the candidate: general nDCG@10 drops by ~0.14
    text = (project.root / "project.yaml").read_text().replace(str(tiny_embedder_path), str(template[1]))
    (project.root / "project.yaml").write_text(text)
    project = open_project(project.root)
    out = run_eval(project, ["base", str(tiny_embedder_path)]).to_json()
    name = str(tiny_embedder_path)
    general = out["models"][name]["general"]
    assert general["regressing"]
    assert general["drop"] > 0.02
    assert out["models"][name]["verdict"] == "REGRESSION"
    assert out["general"]["models"][name]["regressing"]
    low, high = out["general"]["delta_ci"]
    assert low <= -general["drop"] <= high < 0  # the interval of the change lies below 0
    assert out["general"]["models"][name]["delta_ci"] == [low, high]
    assert any("forgets general queries" in r for r in out["models"][name]["reasons"])
    project.close()


def test_second_evaluation_reuses_every_cached_vector(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_eval(project, ["base", "1"]).to_json()
    encoded: list[int] = []
    original = Encoder._encode_block

    def counting(self: Encoder, texts: list[str], role: Any) -> Any:
        encoded.append(len(texts))
        return original(self, texts, role)

    monkeypatch.setattr(Encoder, "_encode_block", counting)
    second = run_eval(project, ["base", "1"]).to_json()
    assert encoded == []
    for name in ("base", "run 1"):
        assert second["models"][name]["ndcg@10"] == first["models"][name]["ndcg@10"]
    assert second["run_id"] != first["run_id"]


def test_default_models_and_errors(project: Project) -> None:
    assert [c.name for c in candidates(project)] == ["base", "run 1"]
    report = run_eval(project)  # base and the newest trained run
    assert [m.name for m in report.models] == ["base", "run 1"]
    with pytest.raises(EvalError, match="run 9 has no model"):
        run_eval(project, ["base", "9"])
    with pytest.raises(EvalError, match="no dev queries to evaluate on"):
        run_eval(project, split="dev")
    only_base = run_eval(project, ["base"]).to_json()
    assert only_base["verdict"] == {}
    assert "verdict" not in only_base["models"]["base"]


# --- leakage -----------------------------------------------------------------------------------------------


def add_queries(project: Project, tmp: Path, rows: list[dict[str, Any]], tag: str) -> None:
    from engine.ingest import importing

    path = tmp / f"{tag}-extra.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    importing.import_queries(project, path, tag)


def test_leaked_test_queries_and_pairs_fail_the_evaluation_naming_them(project: Project, tmp_path: Path) -> None:
    # train has 'question 0 about subrogation handling' -> d00; these repeat it in other clothes
    add_queries(
        project,
        tmp_path,
        [
            {"_id": "leak-exact", "text": "Question 0 about SUBROGATION handling?", "relevant": ["d05"]},
            {"_id": "leak-words", "text": "handling about subrogation question 0", "relevant": ["d07"]},
            {"_id": "leak-pair", "text": "Question 1 about salvage handling", "relevant": ["d01"]},
        ],
        "test",
    )
    before = runs.run_ids(project.db, "eval")
    with pytest.raises(LeakageError) as caught:
        run_eval(project, ["base"])
    message = str(caught.value)
    assert "3 test queries repeat train queries" in message
    assert "leak-exact 'Question 0 about SUBROGATION handling?' ~ train tr-d00-0" in message
    assert "(same text)" in message
    assert "(same words)" in message
    assert "1 test (query, passage) pairs are training pairs" in message
    assert "leak-pair + d01" in message
    assert "--allow-leakage" in message
    assert runs.run_ids(project.db, "eval") == before  # failed before measuring anything

    out = run_eval(project, ["base"], allow_leakage=True).to_json()
    assert out["leakage"]["queries"] == 3
    assert out["leakage"]["pairs"] == 1
    assert out["leakage"]["allowed"] is True
    assert out["n_queries"] == N_TEST + 3


def test_near_duplicate_test_queries_fail_the_evaluation_naming_both_sides(project: Project, tmp_path: Path) -> None:
    # train has 'question 0 about subrogation handling' (tr-d00-0); a copy with a word added is no exact leak
    add_queries(
        project,
        tmp_path,
        [
            {"_id": "near", "text": "question 0 about subrogation handling, please?", "relevant": ["d05"]},
            {"_id": "other-slot", "text": "question 5 about subrogation handling", "relevant": ["d00"]},
        ],
        "test",
    )
    with pytest.raises(LeakageError) as caught:
        run_eval(project, ["base"])
    message = str(caught.value)
    assert "1 test queries are near-duplicates of train queries" in message
    assert "leakage.near_duplicate_threshold 0.7" in message
    assert (
        "near 'question 0 about subrogation handling, please?' ~ train tr-d00-0 "
        "'question 0 about subrogation handling' (0.83)" in message
    )
    assert "other-slot" not in message  # the same template with another number: a different question
    assert "leakage.near_duplicates: warn" in message

    out = run_eval(project, ["base"], allow_leakage=True).to_json()["leakage"]
    assert (out["queries"], out["pairs"], out["near_duplicate_queries"]) == (0, 0, 1)
    assert out["near_duplicates"] == [
        {
            "test_id": "near",
            "train_id": "tr-d00-0",
            "test_text": "question 0 about subrogation handling, please?",
            "train_text": "question 0 about subrogation handling",
            "similarity": pytest.approx(0.8293, abs=1e-4),
        }
    ]
    # reported only when the project says so
    path = project.root / "project.yaml"
    path.write_text(path.read_text() + "leakage:\n  near_duplicates: warn\n")
    warned = open_project(project.root)
    report = run_eval(warned, ["base"]).to_json()
    assert report["leakage"]["near_duplicates_block"] is False
    assert [d["test_id"] for d in report["leakage"]["near_duplicates"]] == ["near"]
    warned.close()


# --- the command -----------------------------------------------------------------------------------------


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_json_contract_and_reports(project: Project, tmp_path: Path) -> None:
    root = project.root
    result = invoke("eval", root, "--models", "base,1", "--json", "--report", tmp_path / "r.md")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"n_queries", "split", "models", "verdict", "general", "per_query"} <= set(out)
    assert out["n_queries"] == N_TEST
    assert out["split"] == "test"
    for name in ("base", "run 1"):
        for key in EVAL_METRICS:
            assert isinstance(out["models"][name][key], float)
            assert len(out["models"][name][f"{key}_ci"]) == 2
    tuned = out["models"]["run 1"]
    assert tuned["verdict"] in ("WIN", "MARGINAL", "REGRESSION")
    assert set(tuned["per_query"]) == {"improved", "regressed", "unchanged"}
    assert set(out["per_query"]["run 1"]) == {"improved", "regressed", "unchanged"}
    assert "regressing" in tuned["general"]
    low, high = out["general"]["delta_ci"]
    assert low <= tuned["general"]["delta"] <= high
    assert out["general"]["models"]["run 1"]["delta_ci"] == [low, high]
    assert out["leakage"]["near_duplicates"] == []
    markdown = (tmp_path / "r.md").read_text()
    assert markdown.startswith("# Evaluation: base, run 1")
    assert tuned["fingerprint"] in markdown

    result = invoke("eval", root, "--models", "base,run-1", "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert "run 1: " in result.stdout
    assert "queries improved" in result.stdout
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["models"]["run 1"]["fingerprint"] == tuned["fingerprint"]
    assert all(set(q) == {"id", "text", "ranks"} for q in saved["changed_queries"])

    bad = invoke("eval", root, "--models", "base,nowhere", "--json")
    assert bad.exit_code == 2
    assert "neither 'base', a run id, nor a model folder" in json.loads(bad.stdout)["error"]


def test_cli_leakage_exits_2_unless_allowed(project: Project, tmp_path: Path) -> None:
    add_queries(
        project,
        tmp_path,
        [{"_id": "leak", "text": "question 0 about subrogation handling", "relevant": ["d00"]}],
        "test",
    )
    result = invoke("eval", project.root, "--models", "base")
    assert result.exit_code == 2
    assert "leak 'question 0 about subrogation handling' ~ train tr-d00-0" in result.stderr
    allowed = invoke("eval", project.root, "--models", "base", "--allow-leakage", "--json")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["leakage"]["queries"] == 1


def test_evaluation_settings_are_validated_with_their_line() -> None:
    from engine.config import ConfigError, config_from_dict

    config = config_from_dict({"evaluation": {"general_max_drop": 0.05, "metric": "recall@10"}})
    assert config.evaluation.general_max_drop == 0.05
    assert config.evaluation.metric == "recall@10"
    assert config.evaluation.split == "test"
    with pytest.raises(ConfigError, match=r"'evaluation\.metric' must be one of recall@1"):
        config_from_dict({"evaluation": {"metric": "ndcg@5"}})
    with pytest.raises(ConfigError, match=r"'evaluation.general_max_drop' must be in \[0, 1\)"):
        config_from_dict({"evaluation": {"general_max_drop": 1.5}})
    with pytest.raises(ConfigError, match=r"'evaluation\.split' must be one of"):
        config_from_dict({"evaluation": {"split": "train"}})


def test_pipeline_state_follows_training_evaluation_and_the_live_index(project: Project) -> None:
    from engine.index.build import build_index
    from engine.pipeline_state import pipeline_state

    before = pipeline_state(project)
    assert before.train is not None
    assert (before.train.run_id, before.train.status, before.train.model_path) == (1, "finished", "models/run-1")
    assert before.evaluation is None
    assert before.index is None

    out = run_eval(project, ["base", "run-1"]).to_json()
    build_index(project, "run-1")
    after = pipeline_state(project)
    assert after.evaluation is not None
    assert after.evaluation.verdicts == out["verdict"]
    assert after.evaluation.deltas == {"run 1": out["models"]["run 1"]["delta"]}
    assert (after.evaluation.split, after.evaluation.n_queries, after.evaluation.metric) == ("test", N_TEST, "ndcg@10")
    assert after.index is not None
    assert after.index.rows == status_counts(project.db)["chunks"]
    assert after.index.model == "run 1"
