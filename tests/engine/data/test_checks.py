"""Data checks: duplicates, leakage and near-duplicate leakage (errors unless allowed), in-batch repeats, document
overlap, pair counts, negatives; exit codes and the JSON contract."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.data.checks import _batch_share, _leakage, normalise, run_checks, token_set
from engine.project import Project, open_project
from engine.store.db import write
from tests.projects import make_project

CODES = ["duplicate_queries", "leakage", "near_duplicates", "in_batch_duplicates", "document_overlap", "pair_count"]
CODES += ["negatives"]


@pytest.fixture
def project(tmp_path: Path, tiny_embedder_path: Path) -> Project:
    return make_project(tmp_path, tiny_embedder_path)


def add_query(project: Project, qid: str, text: str, split: str, doc: str | None = None) -> None:
    with write(project.db):
        project.db.execute("INSERT INTO queries (id, text, split, source) VALUES (?, ?, ?, 'test')", [qid, text, split])
        if doc:
            project.db.execute(
                "INSERT INTO pairs (query_id, chunk_id, split, source) VALUES (?, ?, ?, 'test')", [qid, doc, split]
            )


def findings(project: Project, **kwargs: bool) -> dict[str, dict]:
    return {f["code"]: f for f in run_checks(project, **kwargs).to_json()["findings"]}


def test_clean_project_passes_with_warnings_where_due(project: Project) -> None:
    report = run_checks(project)
    data = report.to_json()
    assert [f["code"] for f in data["findings"]] == CODES
    assert all(set(f) == {"code", "severity", "title", "message", "count", "details"} for f in data["findings"])
    found = {f["code"]: f for f in data["findings"]}
    assert found["leakage"]["severity"] == "ok"
    assert (found["near_duplicates"]["severity"], found["near_duplicates"]["count"]) == ("ok", 0)
    assert found["duplicate_queries"]["severity"] == "ok"
    # 80 train pairs: below the guide's 1,000
    assert (found["pair_count"]["severity"], found["pair_count"]["count"]) == ("warn", 80)
    assert "1,000" in found["pair_count"]["message"]
    # every document is the positive of two train queries: in a batch of 32 of 80 rows a repeat is near certain
    batch = found["in_batch_duplicates"]
    assert (batch["severity"], batch["count"]) == ("warn", 40)
    assert batch["details"]["batches_with_repeat"] > 0.5
    assert batch["details"]["top_passages"][0]["queries"] == 2
    assert "NO_DUPLICATES" in batch["message"]
    # the 12 gate queries ask about documents that train queries also point at
    assert found["document_overlap"]["count"] == 12
    assert found["document_overlap"]["severity"] == "ok"
    assert found["negatives"]["severity"] == "warn"
    assert "embtune mine" in found["negatives"]["message"]
    assert (data["severity"], data["ok"], report.exit_code) == ("warn", True, 0)


def test_leakage_is_an_error_unless_allowed(project: Project) -> None:
    add_query(project, "leak-exact", "When do we use SUBROGATION?", "train", "d00")  # gate: when do we use subrogation
    add_query(project, "leak-words", "use salvage: when do we", "train", "d01")  # same words, other order
    add_query(project, "near", "when do we use salvage rules", "train", "d01")  # an extra word: not a leak
    report = run_checks(project)
    leak = {f.code: f for f in report.findings}["leakage"]
    assert (leak.severity, leak.count) == ("error", 2)
    assert leak.details["by_split"] == {"gate": 2}
    assert {(e["train"], e["eval"], e["match"]) for e in leak.details["examples"]} == {
        ("leak-exact", "ga-d00", "same text"),
        ("leak-words", "ga-d01", "same words"),
    }
    assert report.exit_code == 1
    allowed = run_checks(project, allow_leakage=True)
    assert {f.code: f for f in allowed.findings}["leakage"].severity == "warn"
    assert allowed.exit_code == 0


def test_near_duplicate_leakage_names_both_queries_and_the_threshold(project: Project) -> None:
    # the sample project's pair, literally: Jaccard 0.86 on words, so neither the same text nor the same words
    add_query(project, "te-a015", "forgot to put the storm event code on a claim, does it matter?", "test", "d02")
    add_query(project, "tr-b057-3", "forgot to put the storm code on a claim does it matter", "train", "d03")
    # one template, another slot: two questions, not a leak
    add_query(project, "te-flood", "what is the deductible for flood claims", "test", "d04")
    add_query(project, "tr-hail", "what is the deductible for hail claims", "train", "d05")
    # an exact leak is reported once, as leakage, not again as a near-duplicate
    add_query(project, "leak-exact", "When do we use SUBROGATION?", "train", "d00")
    report = run_checks(project)
    near = {f.code: f for f in report.findings}["near_duplicates"]
    assert (near.severity, near.count) == ("error", 1)
    assert near.details["by_split"] == {"test": 1}
    assert near.details["threshold"] == 0.7
    assert near.details["examples"] == [
        {
            "eval_id": "te-a015",
            "split": "test",
            "train_id": "tr-b057-3",
            "eval_text": "forgot to put the storm event code on a claim, does it matter?",
            "train_text": "forgot to put the storm code on a claim does it matter",
            "similarity": pytest.approx(0.8352, abs=1e-4),
        }
    ]
    assert "te-a015 'forgot to put the storm event code on a claim, does it matter?' ~ train tr-b057-3" in near.message
    assert "leakage.near_duplicate_threshold 0.7" in near.message
    assert report.exit_code == 1
    assert {f.code: f for f in run_checks(project, allow_leakage=True).findings}["near_duplicates"].severity == "warn"
    path = project.root / "project.yaml"
    original = path.read_text()
    for settings, expected in (("near_duplicates: warn", ("warn", 1)), ("near_duplicate_threshold: 0.9", ("ok", 0))):
        path.write_text(original + f"leakage:\n  {settings}\n")
        relaxed = open_project(project.root)
        found = {f.code: f for f in run_checks(relaxed).findings}["near_duplicates"]
        assert (found.severity, found.count) == expected  # warn: reported only; 0.9: above the pair's 0.84
        relaxed.close()


def test_duplicate_queries_are_reported(project: Project) -> None:
    add_query(project, "ga-again", "When do we use salvage?!", "gate", "d01")
    found = findings(project)
    dup = found["duplicate_queries"]
    assert (dup["severity"], dup["count"], dup["details"]["extra_ids"]) == ("warn", 1, 1)
    assert dup["details"]["examples"][0]["ids"] == ["ga-again", "ga-d01"]
    assert found["leakage"]["severity"] == "ok"  # gate against gate is no leak


def test_negatives_count_once_mined(project: Project) -> None:
    with write(project.db):
        project.db.execute("INSERT INTO negatives (query_id, chunk_id, miner) VALUES ('tr-d00-0', 'd05', 'test')")
        project.db.execute(
            "INSERT INTO negatives (query_id, chunk_id, miner, label) VALUES ('tr-d00-1', 'd05', 'test', 'rejected')"
        )
    found = findings(project)["negatives"]
    assert (found["severity"], found["count"]) == ("ok", 1)
    assert "1 of 80 train queries" in found["message"]


def test_cli_exit_codes_and_json(project: Project) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["check", str(project.root), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["severity"] == "warn"
    add_query(project, "leak", "when do we use subrogation", "train", "d00")
    result = runner.invoke(main, ["check", str(project.root)])
    assert result.exit_code == 1
    assert "ERROR Train/eval leakage: 1 train queries repeat evaluation queries (gate 1)" in result.stdout
    result = runner.invoke(main, ["check", str(project.root), "--json", "--allow-leakage"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["ok"], data["severity"]) == (True, "warn")


def test_normalisation() -> None:
    assert normalise("  What's the DEDUCTIBLE?? ") == "what s the deductible"
    assert normalise("Ｃｌａｉｍ_no.5") == "claim no 5"
    assert token_set(normalise("the claim, the CLAIM and the form")) == "and claim form the"


def test_checks_scale_to_100k_queries() -> None:
    queries = [(f"t{i}", f"question {i} about policy {i % 97}", "train") for i in range(90_000)]
    queries += [(f"e{i}", f"about policy {i % 97} question {i}", "test") for i in range(0, 20_000, 2)]
    started = time.perf_counter()
    leak = _leakage(queries, allow=False)
    share = _batch_share([(f"q{i}", f"p{i % 50_000}") for i in range(100_000)], 32, 0)
    assert time.perf_counter() - started < 10
    assert leak.count == 10_000  # every even train query below 20,000 has a reordered twin in test
    assert 0 < share < 1
