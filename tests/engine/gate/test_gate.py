"""The gate on a real (tiny) model: arms, verdict, stored results, the embedding cache and the JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.gate.run import GateError, GateReport, run_gate
from engine.models.encoder import Encoder
from engine.store import runs
from tests.projects import make_project
from tests.tinymodels import MAX_LENGTH

CONTRACT_KEYS = {"name", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "recall@5_ci", "wins", "losses"}


def test_without_reranker_the_verdict_is_incomplete_and_says_how_to_fix_it(
    tmp_path: Path, tiny_embedder_path: Path
) -> None:
    # 12 gate queries: below the guide's 30, so the test lowers the bar to reach the other rules
    project = make_project(tmp_path, tiny_embedder_path, gate={"min_queries": 10})
    full = run_gate(project)
    names = [a.name for a in full.arms]
    assert names == ["base", "expansion", "chunking:paragraph", "chunking:fixed128", "chunking:window3", "hybrid"]
    # BM25 fusion finds nearly everything on these lexical queries, but only re-ranking may stop the gate
    assert max(a.metrics["recall@5"] for a in full.arms) > 0.8
    assert (full.verdict, full.rule) == ("INCOMPLETE", "rerank_missing")
    assert "rerank" in full.skipped
    assert "embtune reranker train" in full.skipped["rerank"]
    assert "neither the stop rule" in full.reasons[0]
    assert set(full.intervals) == set(names)
    best = max(full.arms, key=lambda a: a.metrics["recall@5"])
    own, band = best.recall_ci, full.intervals[best.name]  # the band the rules read, simultaneous over 6 arms
    assert band[1] - band[0] > own[1] - own[0]
    for arm in full.arms:  # every fix priced: the guide's hours (or why not) and compute measured here
        assert arm.cost is not None
        assert arm.cost.compute_seconds >= 0
    assert full.arms[0].cost.hours == 0
    assert full.fine_tune_cost is not None
    assert full.fine_tune_cost.compute_seconds > 0


def test_too_few_gate_queries_collect_more_and_say_how_many(tmp_path: Path, tiny_embedder_path: Path) -> None:
    report = run_gate(make_project(tmp_path, tiny_embedder_path), arms={"base"})
    assert (report.n_queries, report.verdict, report.rule) == (12, "COLLECT_MORE", "too_few_queries")
    assert "add 18 more" in report.reasons[0]


def test_arms_measure_what_they_claim(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path)
    arms = {a.name: a for a in run_gate(project, arms={"base", "hybrid"}).arms}
    assert set(arms) == {"base", "hybrid"}
    base, hybrid = arms["base"], arms["hybrid"]
    # every gate query names its document's rare term: BM25 fusion must find what random weights miss
    assert hybrid.metrics["recall@5"] > base.metrics["recall@5"]
    assert hybrid.metrics["recall@10"] == 1.0
    # wins/losses are exactly the per-query recall@5 differences against the base
    wins = sorted(q for q in hybrid.per_query if hybrid.per_query[q]["recall@5"] > base.per_query[q]["recall@5"])
    assert sorted(hybrid.wins) == wins
    assert wins
    low, high = hybrid.recall_ci
    assert low <= hybrid.metrics["recall@5"] <= high
    assert base.wins == []
    for arm in arms.values():
        ranks = [r for r in arm.first_ranks.values() if r is not None]
        assert sum(r <= 5 for r in ranks) / len(arm.first_ranks) == pytest.approx(arm.metrics["recall@5"])


def test_reranker_from_project_yaml_runs_the_rerank_arms(
    tmp_path: Path, tiny_embedder_path: Path, tiny_cross_encoder_path: Path
) -> None:
    project = make_project(tmp_path, tiny_embedder_path, reranker=tiny_cross_encoder_path)
    report = run_gate(project)
    names = [a.name for a in report.arms]
    best_chunking = max((a for a in report.arms if a.name.startswith("chunking:")), key=lambda a: a.metrics["recall@5"])
    assert names[-3:] == ["rerank", "expansion+rerank", f"{best_chunking.name}+rerank"]
    assert all(str(tiny_cross_encoder_path) in (a.reranker or "") for a in report.arms if "rerank" in a.name)
    assert report.verdict in {"STOP", "FINE_TUNE", "GREY", "COLLECT_MORE"}
    assert report.skipped == {}


def test_result_is_stored_and_the_second_run_encodes_nothing(
    tmp_path: Path, tiny_embedder_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path, tiny_embedder_path)
    first = run_gate(project)
    stored_id, stored = runs.latest_result(project.db, "gate")
    assert stored_id == first.run_id
    assert stored == json.loads(json.dumps(first.to_json()))
    rows = runs.query_results(project.db, first.run_id)
    assert len(rows) == len(first.arms) * first.n_queries
    encoded: list[int] = []
    original = Encoder._encode_block
    monkeypatch.setattr(
        Encoder, "_encode_block", lambda self, texts, role: encoded.append(len(texts)) or original(self, texts, role)
    )
    second = run_gate(project)
    assert encoded == []  # corpus, re-chunked corpora, queries, expanded queries and encode rates: all cached

    def measured(report: GateReport) -> list[dict]:  # latencies are re-measured each run; the figures are not
        return [{k: v for k, v in arm.items() if k != "cost"} for arm in report.to_json()["arms"]]

    assert measured(second) == measured(first)


def test_max_seq_length_is_fitted_to_the_corpus(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path)
    settings = run_gate(project, arms={"base"}).settings
    from transformers import AutoTokenizer

    from engine.store.corpus import retrieval_chunks

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_embedder_path))
    longest = max(len(ids) for ids in tokenizer(retrieval_chunks(project.db)[2])["input_ids"])
    # the smallest multiple of 32 that truncates nothing here, well below the model's 256 limit
    assert settings["max_seq_length"] == -(-longest // 32) * 32
    assert settings["max_seq_length"] < 256


def test_no_gate_queries_is_a_clear_error(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path, n_gate=0)
    with pytest.raises(GateError, match=r"no gate queries.*--tag gate"):
        run_gate(project)


def test_trained_reranker_is_picked_up(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path)
    runner = CliRunner()
    result = runner.invoke(main, ["reranker", "train", str(project.root), "--max-steps", "2", "--json"])
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert trained["steps"] == 2
    # fitted to the pairs, not the model's limit: the test corpus's short pairs fit well below it
    assert trained["max_seq_length"] % 32 == 0
    assert trained["max_seq_length"] < MAX_LENGTH
    assert (project.root / trained["model_path"] / "config.json").is_file()
    result = runner.invoke(main, ["gate", str(project.root), "--arms", "base,rerank", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [a["name"] for a in report["arms"]] == ["base", "rerank"]
    assert report["arms"][1]["reranker"] == f"trained in this project (run {trained['run_id']})"
    for arm in report["arms"]:
        assert set(arm) >= CONTRACT_KEYS
        assert len(arm["recall@5_ci"]) == 2
        assert len(arm["recall@5_ci_simultaneous"]) == 2
        assert {"hours", "compute_seconds", "per_query_ms", "gain", "gain_ci"} <= set(arm["cost"])
    assert report["arms"][1]["cost"]["hours"] == 16
    assert report["arms"][1]["cost"]["per_query_ms"] > 0  # re-ranking latency, measured
    # the command contract: re-ranking alone never licenses fine-tuning (expansion and chunking unmeasured)
    assert report["verdict"] in {"STOP", "GREY", "COLLECT_MORE", "INCOMPLETE"}
    assert isinstance(report["verdict"], str)
    assert report["rule"] in {"too_few_queries", "stop", "stop_uncertain", "between", "weak_reranker", "fixes_missing"}
    assert "simultaneous" in report["selection"]["method"]
    assert isinstance(report["reasons"], list)
    assert report["n_queries"] == 12


def test_cli_gate_error_exits_2_with_message(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path, n_gate=0)
    result = CliRunner().invoke(main, ["gate", str(project.root)])
    assert result.exit_code == 2
    assert "no gate queries" in result.stderr


def test_cancelling_stops_the_gate_and_records_the_run_as_cancelled(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path)
    stages: list[str] = []
    with pytest.raises(InterruptedError):
        run_gate(project, lambda stage, done, total: stages.append(stage), cancelled=lambda: len(stages) >= 3)
    (run_id,) = runs.run_ids(project.db, "gate")
    run = runs.get_run(project.db, run_id)
    assert run is not None
    assert run["status"] == "cancelled"
    assert run["finished_at"]
    assert len(stages) == 3  # it stopped at the next check after the request
    assert runs.latest_result(project.db, "gate") is None
    assert runs.query_results(project.db, run_id) == []
    # a cancel request before any work still leaves a recorded, cancelled run
    with pytest.raises(InterruptedError):
        run_gate(project, cancelled=lambda: True)
    assert runs.get_run(project.db, runs.run_ids(project.db, "gate")[-1])["status"] == "cancelled"


def test_stored_result_reads_back_for_display(tmp_path: Path, tiny_embedder_path: Path) -> None:
    from engine.gate.results import expected_documents, latest_verdict, load_gate_result

    project = make_project(tmp_path, tiny_embedder_path, gate={"finetune_recall": 0.6, "stop_recall": 0.9})
    assert load_gate_result(project) is None
    assert latest_verdict(project) is None
    report = run_gate(project, arms={"base", "hybrid"})
    result = load_gate_result(project)
    assert result is not None
    assert (result.run_id, result.verdict, result.k) == (report.run_id, report.verdict, 5)
    assert result.report == json.loads(json.dumps(report.to_json()))
    assert (result.finetune_recall, result.stop_recall) == (0.6, 0.9)
    assert result.finished_at
    assert latest_verdict(project) == (report.run_id, report.verdict)
    assert len(result.queries) == 12
    arms = {a.name: a for a in report.arms}
    for outcome in result.queries:
        assert outcome.ranks == {name: arm.first_ranks[outcome.id] for name, arm in arms.items()}
        assert outcome.expected == (f"d{outcome.id[-2:]}",)  # ga-d07 expects d07
        assert outcome.text.startswith("when do we use ")
        assert outcome.titles[0].lower() in outcome.text
    (doc,) = expected_documents(project, ("d03",))
    assert (doc.id, doc.title) == ("d03", "Adjuster")
    assert doc.text.startswith("The adjuster rule.")
    assert expected_documents(project, ("nope",)) == []


def test_a_candidate_base_model_is_measured_and_priced_like_an_arm(
    tmp_path: Path, tiny_embedder_path: Path, tuned_model: Path
) -> None:
    project = make_project(tmp_path, tiny_embedder_path, gate={"candidates": [str(tuned_model), "no/such-model"]})
    report = run_gate(project, arms={"base", "model"})
    names = [a.name for a in report.arms]
    assert names == ["base", "model:model"]
    assert "could not be loaded" in report.skipped["model:such-model"]
    candidate = report.arms[1]
    assert candidate.metrics["recall@5"] != report.arms[0].metrics["recall@5"]  # another model's own ranking
    assert candidate.cost is not None
    assert candidate.cost.hours is None  # the guide does not price a model switch: said, not invented
    assert candidate.cost.compute_seconds > 0  # re-embedding the corpus with it, at its own measured rate
    assert "re-embedding 40 chunks with it" in candidate.cost.note
    assert tuned_model.name in candidate.description


def test_gate_queries_rejected_in_review_are_named_not_silently_dropped(
    tmp_path: Path, tiny_embedder_path: Path
) -> None:
    from engine.data.review import decide, queue
    from engine.store.review import QueueFilter

    project = make_project(tmp_path, tiny_embedder_path)
    gate_pairs = queue(project, "pair", QueueFilter(split="gate"), limit=2)
    for row in gate_pairs:
        decide(project, "pair", row.id, "reject")
    report = run_gate(project, arms={"base"}).to_json()
    excluded = {q["id"]: q["reason"] for q in report["queries_excluded"]}
    assert report["n_queries"] == 12 - len(excluded)
    assert len(excluded) == 2
    assert all("rejected in review" in why for why in excluded.values())
    assert any("2 gate queries left out" in r for r in report["reasons"])


def test_gate_queries_copied_by_training_queries_are_named(tmp_path: Path, tiny_embedder_path: Path) -> None:
    from engine.ingest import importing

    project = make_project(tmp_path, tiny_embedder_path)
    copy = tmp_path / "copy.jsonl"
    copy.write_text('{"_id": "tr-copy", "text": "when do we use subrogation, please?"}\n')
    importing.import_queries(project, copy, "train")
    report = run_gate(project, arms={"base"}).to_json()
    found = report["leakage"]["near_duplicates"]
    assert [(d["gate_id"], d["train_id"]) for d in found] == [("ga-d00", "tr-copy")]
    assert any("near-duplicates of train queries" in r and "tr-copy" in r for r in report["reasons"])


def test_one_chunking_strategy_can_be_asked_for_by_name(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path)
    report = run_gate(project, arms={"base", "chunking:paragraph"})
    assert [a.name for a in report.arms] == ["base", "chunking:paragraph"]
