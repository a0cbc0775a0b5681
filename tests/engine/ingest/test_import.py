"""Imports that succeed: what lands in the store, idempotence, and splitting by document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.ingest import importing
from engine.project import Project, init_project
from engine.store.queries import status_counts
from tests.beir_files import beir_files, dump, jsonl, write_tree


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return init_project(tmp_path / "proj")


def rows(project: Project, sql: str) -> list[tuple]:
    return [tuple(r) for r in project.db.execute(sql).fetchall()]


def test_beir_import_stores_documents_chunks_queries_and_pairs(project: Project, tmp_path: Path) -> None:
    files = beir_files(
        **{
            "qrels/test.tsv": b"query-id\tcorpus-id\tscore\nq3\td2\t1\nq3\td1\t0\n",
            "queries.jsonl": jsonl(
                [
                    {"_id": "q1", "text": "who takes the first call"},
                    {"_id": "q2", "text": "fraud referral"},
                    {"_id": "q3", "text": "held out"},
                    {"_id": "q4", "text": "never judged"},
                ]
            ),
        }
    )
    result = importing.import_beir(project, write_tree(tmp_path / "beir", files))
    assert result["added"] == {"documents": 2, "chunks": 2, "queries": 3, "pairs": 3, "negatives": 0}
    assert "1 queries in queries.jsonl have no judgments" in result["notes"][0]
    assert rows(project, "SELECT id, split FROM queries ORDER BY id") == [
        ("q1", "train"),
        ("q2", "train"),
        ("q3", "test"),
    ]
    # score 0 means judged irrelevant in BEIR: no pair
    assert rows(project, "SELECT query_id, chunk_id, split FROM pairs ORDER BY query_id") == [
        ("q1", "d1", "train"),
        ("q2", "d2", "train"),
        ("q3", "d2", "test"),
    ]
    # the title travels with the passage text that gets embedded
    assert rows(project, "SELECT t.text FROM chunks c JOIN texts t ON t.hash = c.text_hash WHERE c.id = 'd1'") == [
        ("FNOL\nFirst notice of loss is taken by the intake team.",)
    ]


def test_reimporting_the_same_input_changes_nothing(project: Project, tmp_path: Path) -> None:
    folder = write_tree(tmp_path / "beir", beir_files())
    importing.import_beir(project, folder)
    before = dump(project)
    again = importing.import_beir(project, folder)
    assert not any(again["added"].values())
    assert dump(project) == before


def pair_lines(n: int) -> list[dict]:
    return [{"query": f"question number {i}", "positive": f"passage about topic {i}"} for i in range(n)]


def test_pairs_without_split_are_split_by_document_seeded(project: Project, tmp_path: Path) -> None:
    lines = pair_lines(200)
    # two queries share a passage: both must land on that passage's side
    lines.append({"query": "another question for topic 7", "positive": "passage about topic 7"})
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(jsonl(lines))
    importing.import_pairs(project, path)
    splits = dict(rows(project, "SELECT split, count(*) FROM pairs GROUP BY split"))
    assert 5 <= splits["test"] <= 40  # test_fraction 0.1 of 200 documents
    per_doc = rows(project, "SELECT chunk_id, count(DISTINCT split) FROM pairs GROUP BY chunk_id HAVING count(*) > 1")
    assert per_doc
    assert all(n == 1 for _, n in per_doc)
    # the same seed gives the same split in another project, whatever the file order
    other = init_project(tmp_path / "other")
    path2 = tmp_path / "reversed.jsonl"
    path2.write_bytes(jsonl(list(reversed(lines))))
    importing.import_pairs(other, path2)
    q = "SELECT q.text, p.split FROM pairs p JOIN queries q ON q.id = p.query_id ORDER BY q.text"
    assert rows(other, q) == rows(project, q)


def test_pairs_split_given_by_source_is_kept_and_forced_split_wins(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl([{"query": "a", "positive": "pa", "split": "test"}, {"query": "b", "positive": "pb"}]))
    importing.import_pairs(project, path)
    assert rows(project, "SELECT q.text, p.split FROM pairs p JOIN queries q ON q.id = p.query_id ORDER BY 1")[0] == (
        "a",
        "test",
    )
    forced = tmp_path / "f.csv"
    forced.write_text("query,positive\nc,pc\n")
    importing.import_pairs(project, forced, split="dev")
    assert rows(project, "SELECT split FROM queries WHERE text = 'c'") == [("dev",)]


def test_csv_and_flag_pairs_with_negatives(project: Project, tmp_path: Path) -> None:
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text('query,positive,negative\n"what, exactly",the answer,"a wrong, but close, answer"\n')
    flag = tmp_path / "flag.jsonl"
    flag.write_bytes(jsonl([{"query": "q2", "pos": ["p1", "p2"], "neg": ["n1", "n2", "n3"], "prompt": "x"}]))
    importing.import_pairs(project, csv_path, split="train")
    importing.import_pairs(project, flag, split="train")
    counts = status_counts(project.db)
    assert (counts["pairs"], counts["negatives"], counts["queries"]["train"]) == (3, 4, 2)
    assert rows(project, "SELECT miner, count(*) FROM negatives GROUP BY miner") == [("import", 4)]


def test_pair_passage_equal_to_a_corpus_passage_points_at_it(project: Project, tmp_path: Path) -> None:
    importing.import_beir(project, write_tree(tmp_path / "beir", beir_files()))
    passage = "FNOL\nFirst notice of loss is taken by the intake team."
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl([{"query": "intake of a new claim", "positive": passage}]))
    importing.import_pairs(project, path)
    assert rows(
        project,
        "SELECT p.chunk_id FROM pairs p JOIN queries q ON q.id = p.query_id WHERE q.text = 'intake of a new claim'",
    ) == [("d1",)]
    assert status_counts(project.db)["documents"] == 2


def test_docs_folder_is_chunked_by_named_strategy(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    body = "# Subrogation\n\nWe recover what we paid.\n\nThe recovery unit files within 30 days.\n"
    write_tree(folder, {"claims/subro.md": body.encode(), "notes.txt": b"One short note."})
    result = importing.import_docs(project, folder, "paragraph")
    assert result["added"]["documents"] == 2
    assert rows(project, "SELECT id, title, chunking FROM documents ORDER BY id") == [
        ("claims/subro.md", "Subrogation", "paragraph"),
        ("notes.txt", "notes", "paragraph"),
    ]
    sql = "SELECT id FROM chunks WHERE doc_id = 'claims/subro.md' ORDER BY position"
    chunk_ids = [r[0] for r in rows(project, sql)]
    assert chunk_ids[0] == "claims/subro.md#paragraph-0"


def test_gate_queries_with_judgments(project: Project, tmp_path: Path) -> None:
    importing.import_beir(project, write_tree(tmp_path / "beir", beir_files()))
    path = tmp_path / "gate.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [{"text": "who reports claims", "relevant": ["d1"]}, {"_id": "g2", "text": "unjudged"}]
        )
        + "\n"
    )
    importing.import_queries(project, path, "gate")
    counts = status_counts(project.db)
    assert counts["queries"]["gate"] == 2
    assert counts["judged_queries"]["gate"] == 1
