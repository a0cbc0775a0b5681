"""export-pairs: the training set as reviewed (labels, edits, false negatives turned into pairs) in st, flag and
csv, through the engine and the command line."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.data.mining import mine_negatives
from engine.data.pair_export import export_pairs
from engine.project import Project
from engine.store.examples import reviewed_examples
from engine.store.negatives import all_negatives
from tests.mining_data import OPEN_WINDOW, with_mining
from tests.projects import make_project

EDITED = "Salvage, rewritten by a reviewer: what is left of the vehicle after a total loss."


def chunk_text(project: Project, chunk_id: str) -> str:
    sql = "SELECT t.text FROM chunks c JOIN texts t ON t.hash = c.text_hash WHERE c.id = ?"
    return str(project.db.execute(sql, [chunk_id]).fetchone()[0])


@pytest.fixture(scope="module")
def reviewed(
    tmp_path_factory: pytest.TempPathFactory, tiny_embedder_path: Path
) -> tuple[Project, dict[str, list[str]]]:
    """A mined project with every kind of review decision set directly in the store (tests only read it)."""
    project = with_mining(
        make_project(tmp_path_factory.mktemp("reviewed"), tiny_embedder_path), **OPEN_WINDOW, rescore="never"
    )
    mine_negatives(project)
    db = project.db
    negs = {
        q: [r["chunk_id"] for r in all_negatives(db) if r["query_id"] == q]
        for q in ("tr-d02-0", "tr-d03-0", "tr-d04-0")
    }
    db.execute("UPDATE pairs SET label = 'rejected' WHERE query_id = 'tr-d00-0'")
    digest = hashlib.sha256(EDITED.encode()).hexdigest()
    db.execute("INSERT INTO texts (hash, text) VALUES (?, ?)", [digest, EDITED])
    db.execute("UPDATE pairs SET label = 'accepted', edited_text_hash = ? WHERE query_id = 'tr-d01-0'", [digest])
    first, second, _ = negs["tr-d02-0"]
    db.execute("UPDATE negatives SET label = 'rejected' WHERE query_id = 'tr-d02-0' AND chunk_id = ?", [first])
    db.execute("UPDATE negatives SET label = 'false_negative' WHERE query_id = 'tr-d02-0' AND chunk_id = ?", [second])
    # what review does with a false negative: it becomes an accepted positive pair of the query
    db.execute(
        "INSERT INTO pairs (query_id, chunk_id, split, source, label) "
        "VALUES ('tr-d02-0', ?, 'train', 'review:false_negative', 'accepted')",
        [second],
    )
    db.execute(
        "UPDATE negatives SET label = 'accepted' WHERE query_id = 'tr-d03-0' AND chunk_id = ?", [negs["tr-d03-0"][-1]]
    )
    # an imported negative that contradicts the judgments (its document is the query's positive) never goes out
    db.execute("INSERT INTO negatives (query_id, chunk_id, miner) VALUES ('tr-d04-0', 'd04', 'import')")
    return project, negs


def test_reviewed_examples_apply_every_decision(reviewed: tuple[Project, dict[str, list[str]]]) -> None:
    project, negs = reviewed
    examples = reviewed_examples(project.db)
    by_query: dict[str, list] = {}
    for e in examples:
        by_query.setdefault(e.query_id, []).append(e)
    assert len(examples) == 80  # 80 pairs - 1 rejected + 1 false negative turned positive
    assert "tr-d00-0" not in by_query
    assert [e.positive for e in by_query["tr-d01-0"]] == [EDITED]
    fn_positive = chunk_text(project, negs["tr-d02-0"][1])
    assert [e.positive for e in by_query["tr-d02-0"]] == [chunk_text(project, "d02"), fn_positive]
    assert by_query["tr-d02-0"][0].negatives == (chunk_text(project, negs["tr-d02-0"][2]),)
    # accepted first, then hardest first
    assert by_query["tr-d03-0"][0].negatives == tuple(
        chunk_text(project, c) for c in [negs["tr-d03-0"][-1], *negs["tr-d03-0"][:-1]]
    )
    assert chunk_text(project, "d04") not in by_query["tr-d04-0"][0].negatives
    assert len(by_query["tr-d04-0"][0].negatives) == 3


def test_st_rows_are_one_per_pair_with_its_best_negative(reviewed: tuple[Project, dict[str, list[str]]]) -> None:
    project, negs = reviewed
    out = io.StringIO()
    counts = export_pairs(project.db, "st", out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert counts["rows"] == len(rows) == 80
    assert {tuple(sorted(r)) for r in rows} <= {("anchor", "negative", "positive"), ("anchor", "positive")}
    assert counts["rows_without_negative"] == sum("negative" not in r for r in rows)
    assert not [r for r in rows if r["anchor"] == "question 0 about subrogation handling"]
    (edited,) = [r for r in rows if r["anchor"] == "question 0 about salvage handling"]
    assert edited["positive"] == EDITED
    deductible = [r for r in rows if r["anchor"] == "question 0 about deductible handling"]
    assert [r["negative"] for r in deductible] == [chunk_text(project, negs["tr-d02-0"][2])] * 2
    assert (
        counts["rejected_pairs"],
        counts["edited_pairs"],
        counts["rejected_negatives"],
        counts["false_negatives"],
    ) == (1, 1, 1, 1)


def test_flag_groups_by_query(reviewed: tuple[Project, dict[str, list[str]]]) -> None:
    project, negs = reviewed
    out = io.StringIO()
    counts = export_pairs(project.db, "flag", out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert counts["rows"] == len(rows) == counts["queries"] == 79
    assert all(set(r) == {"query", "pos", "neg"} for r in rows)
    (row,) = [r for r in rows if r["query"] == "question 0 about deductible handling"]
    assert row["pos"] == [chunk_text(project, "d02"), chunk_text(project, negs["tr-d02-0"][1])]
    assert row["neg"] == [chunk_text(project, negs["tr-d02-0"][2])]
    (row,) = [r for r in rows if r["query"] == "question 0 about adjuster handling"]
    assert len(row["neg"]) == 3
    assert counts["negatives"] == sum(len(r["neg"]) for r in rows)


def test_csv_matches_st_and_quotes_newlines(reviewed: tuple[Project, dict[str, list[str]]]) -> None:
    project, _ = reviewed
    st, as_csv = io.StringIO(), io.StringIO()
    export_pairs(project.db, "st", st)
    export_pairs(project.db, "csv", as_csv)
    records = list(csv.reader(io.StringIO(as_csv.getvalue())))
    assert records[0] == ["query", "positive", "negative"]
    expected = [json.loads(line) for line in st.getvalue().splitlines()]
    assert records[1:] == [[r["anchor"], r["positive"], r.get("negative", "")] for r in expected]
    assert any("\n" in r[1] for r in records[1:])  # BEIR passages are title + newline + text


def test_cli_export_to_file_with_json_summary(reviewed: tuple[Project, dict[str, list[str]]], tmp_path: Path) -> None:
    project, _ = reviewed
    runner = CliRunner()
    target = tmp_path / "out" / "train.jsonl"  # the folder is created
    result = runner.invoke(
        main, ["export-pairs", str(project.root), "--format", "flag", "--out", str(target), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["out"] == str(target)
    assert {
        "format",
        "split",
        "rows",
        "pairs",
        "queries",
        "negatives",
        "rows_without_negative",
        "rejected_pairs",
        "edited_pairs",
        "rejected_negatives",
        "false_negatives",
    } <= set(summary)
    assert len(target.read_text().splitlines()) == summary["rows"] == 79
    assert not list(target.parent.glob("*.partial"))
    result = runner.invoke(main, ["export-pairs", str(project.root), "--format", "st", "--split", "gate"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 12
    assert "12 gate pairs" in result.stderr
    result = runner.invoke(main, ["export-pairs", str(project.root), "--format", "st", "--json"])
    assert result.exit_code == 2
    assert "needs --out" in result.output
