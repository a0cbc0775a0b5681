"""Hard-negative mining on real tiny models: what is stored, what is never stored, re-runs, the cross-encoder
check, the JSON contract and the `mining:` section of project.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.config import ConfigError, load_config
from engine.data.mining import MiningError, mine_negatives
from engine.ingest import importing
from engine.models.encoder import Encoder
from engine.project import Project, init_project, open_project
from engine.store import runs
from engine.store.negatives import all_negatives, mining_pairs
from tests.mining_data import OPEN_WINDOW, with_mining
from tests.projects import TERMS, make_project

CONTRACT_KEYS = {
    "run_id",
    "pairs",
    "queries",
    "negatives_added",
    "negatives_selected",
    "skipped_false_negative",
    "excluded_relevant_document",
    "excluded_reviewed",
    "short",
    "miner",
    "settings",
    "embedding_cache",
    "seconds",
}


def relevant_docs(project: Project) -> dict[str, set[str]]:
    rows = project.db.execute(
        "SELECT p.query_id, c.doc_id FROM pairs p JOIN chunks c ON c.id = p.chunk_id WHERE p.label != 'rejected'"
    )
    out: dict[str, set[str]] = {}
    for qid, doc in rows:
        out.setdefault(qid, set()).add(doc)
    return out


def test_mining_stores_scored_negatives_with_their_settings(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = with_mining(make_project(tmp_path, tiny_embedder_path), **OPEN_WINDOW, rescore="never")
    summary = mine_negatives(project)
    assert set(summary) == CONTRACT_KEYS
    assert (summary["pairs"], summary["queries"]) == (80, 80)
    stored = all_negatives(project.db)
    assert summary["negatives_added"] == summary["negatives_selected"] == len(stored) > 0
    assert summary["short"] == sum(
        1 for q in {p.query_id for p in mining_pairs(project.db)} if sum(r["query_id"] == q for r in stored) < 3
    )
    relevant = relevant_docs(project)
    rows = project.db.execute("SELECT miner, settings_json, score, positive_score FROM negatives").fetchall()
    for row in stored:
        assert row["doc_id"] not in relevant[row["query_id"]]
        assert row["miner"] == summary["miner"] == f"mine_hard_negatives:{summary['settings']['model_fingerprint']}"
    for _, settings_json, score, positive_score in rows:
        settings = json.loads(settings_json)
        assert settings == summary["settings"]
        assert {
            "range_min",
            "range_max",
            "relative_margin",
            "absolute_margin",
            "num_negatives",
            "sampling",
            "max_seq_length",
            "seed",
            "cross_encoder",
        } <= set(settings)
        assert -1.0 <= score <= 1.0
        assert positive_score is not None
    per_query: dict[str, int] = {}
    for row in stored:
        per_query[row["query_id"]] = per_query.get(row["query_id"], 0) + 1
    assert max(per_query.values()) == 3
    run_id, result = runs.latest_result(project.db, "mine")
    assert run_id == summary["run_id"]
    assert result == json.loads(json.dumps(summary))


def test_top_sampling_keeps_the_best_of_the_rank_window(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = with_mining(
        make_project(tmp_path, tiny_embedder_path), range_min=2, range_max=20, relative_margin=None, rescore="never"
    )
    mine_negatives(project)
    from engine.models.encoder import open_encoder
    from engine.store.corpus import retrieval_chunks

    ids, docs, texts = retrieval_chunks(project.db)
    encoder = open_encoder(str(tiny_embedder_path), db=project.db, fit_texts=texts)
    vectors = encoder.encode(texts, "document")  # from the cache mining filled
    stored = all_negatives(project.db)
    relevant = relevant_docs(project)
    for pair in mining_pairs(project.db)[:10]:
        scores = vectors @ encoder.encode([pair.query], "query")[0]
        ranked = [ids[i] for i in scores.argsort()[::-1] if docs[i] not in relevant[pair.query_id]]
        mined = [r["chunk_id"] for r in stored if r["query_id"] == pair.query_id]
        assert mined == ranked[2:5]  # ranks 0 and 1 (after the positive) are skipped, the next three kept


def test_rerun_with_the_same_settings_adds_nothing_and_encodes_nothing(
    tmp_path: Path, tiny_embedder_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = with_mining(make_project(tmp_path, tiny_embedder_path), **OPEN_WINDOW, sampling="random", rescore="never")
    first = mine_negatives(project)
    before = all_negatives(project.db)
    encoded: list[int] = []
    original = Encoder._encode_block
    monkeypatch.setattr(
        Encoder, "_encode_block", lambda self, texts, role: encoded.append(len(texts)) or original(self, texts, role)
    )
    second = mine_negatives(project)
    assert encoded == []  # corpus and queries came from the embedding cache
    assert second["embedding_cache"] is True  # ... and the library read them instead of encoding again
    assert second["negatives_added"] == 0
    assert second["negatives_selected"] == first["negatives_selected"]  # seeded sampling picks the same ones
    assert all_negatives(project.db) == before
    assert len(runs.run_ids(project.db, "mine")) == 2


def test_without_the_cache_handover_the_library_encodes_the_texts_itself(
    tmp_path: Path, tiny_embedder_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = with_mining(make_project(tmp_path / "a", tiny_embedder_path), **OPEN_WINDOW, rescore="never")
    expected = mine_negatives(handed)
    assert expected["embedding_cache"] is True
    # as if sentence-transformers renamed its cache files: it finds none of ours and embeds the keys itself
    monkeypatch.setattr("engine.data.mining._write_library_cache", lambda *args: set())
    fallback = with_mining(make_project(tmp_path / "b", tiny_embedder_path), **OPEN_WINDOW, rescore="never")
    summary = mine_negatives(fallback)
    assert summary["embedding_cache"] is False
    assert summary["negatives_added"] == expected["negatives_added"]
    assert [(r["query_id"], r["chunk_id"]) for r in all_negatives(fallback.db)] == [
        (r["query_id"], r["chunk_id"]) for r in all_negatives(handed.db)
    ]


def write_docs_project(tmp_path: Path, embedder: Path, n_docs: int = 12) -> Project:
    """Documents of three short paragraphs, each paragraph its own chunk, all three about one rare term; train
    queries judge the document (so the pair points at its first chunk)."""
    root = tmp_path / "docs_project"
    init_project(root).close()
    (root / "project.yaml").write_text(
        f"name: docs\nbase_model: {embedder}\nchunking:\n  default: para\n  strategies:\n"
        "    para: {kind: paragraph, max_words: 8}\n"
        "mining:\n  range_min: 0\n  range_max: 30\n  relative_margin: null\n  rescore: never\n"
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    queries = []
    for i, term in enumerate(TERMS[:n_docs]):
        (docs / f"d{i:02d}.txt").write_text(
            f"The {term} rule applies at stage {i}.\n\nHandlers check {term} "
            f"before paying.\n\nAsk the lead about {term} exceptions.\n"
        )
        queries.append({"_id": f"tr-{i:02d}", "text": f"how is {term} handled", "relevant": [f"d{i:02d}.txt"]})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    project = open_project(root)
    importing.import_docs(project, docs, "para")
    importing.import_queries(project, tmp_path / "train.jsonl", "train")
    return project


def test_no_chunk_of_a_relevant_document_is_ever_a_negative(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = write_docs_project(tmp_path, tiny_embedder_path)
    assert project.db.execute("SELECT count(*) FROM chunks").fetchone()[0] == 36
    db = project.db
    # a judgment in another split and a negative review marked false count as relevant too; a rejected pair not
    db.execute("INSERT INTO pairs (query_id, chunk_id, split, source) VALUES ('tr-00', 'd01.txt#para-0', 'test', 't')")
    db.execute(
        "INSERT INTO negatives (query_id, chunk_id, miner, label) "
        "VALUES ('tr-02', 'd03.txt#para-1', 'other', 'false_negative')"
    )
    summary = mine_negatives(project)
    # the library removes only the positive chunk; its two siblings rank near the top and are taken out here
    assert summary["excluded_relevant_document"] > 0
    stored = [r for r in all_negatives(db) if r["miner"] != "other"]
    assert stored
    relevant = relevant_docs(project)
    for row in stored:
        assert row["doc_id"] not in relevant[row["query_id"]]
    assert not [r for r in stored if r["query_id"] == "tr-00" and r["doc_id"] in {"d00.txt", "d01.txt"}]
    assert not [r for r in stored if r["query_id"] == "tr-02" and r["doc_id"] in {"d02.txt", "d03.txt"}]


def test_chunks_rejected_in_review_or_stored_by_another_miner_are_skipped(
    tmp_path: Path, tiny_embedder_path: Path
) -> None:
    project = with_mining(make_project(tmp_path, tiny_embedder_path), **OPEN_WINDOW, rescore="never")
    first = mine_negatives(project)
    query = "tr-d05-0"
    n1, n2, n3 = [r["chunk_id"] for r in all_negatives(project.db) if r["query_id"] == query]
    project.db.execute("UPDATE negatives SET label = 'rejected' WHERE query_id = ? AND chunk_id = ?", [query, n1])
    project.db.execute("UPDATE negatives SET miner = 'import' WHERE query_id = ? AND chunk_id = ?", [query, n2])
    second = mine_negatives(project)
    assert second["excluded_reviewed"] == 2
    assert second["negatives_added"] == 2  # both places go to the next candidates, for this query only
    ours = [r for r in all_negatives(project.db) if r["query_id"] == query and r["miner"] == first["miner"]]
    assert {r["chunk_id"]: r["label"] for r in ours}[n1] == "rejected"
    usable = [r["chunk_id"] for r in ours if r["label"] == "unlabeled"]
    assert len(usable) == 3
    assert n3 in usable
    assert n2 not in usable


def project_with_copies(tmp_path: Path, embedder: Path, reranker: Path | None, rescore: str) -> Project:
    """A project where every document has a copy that differs only by one doubled space: the same tokens, so the
    embedder and the cross-encoder score the copy exactly like the positive. It is a false negative by any
    reading, yet nothing in the judgments says so."""
    project = make_project(tmp_path, embedder, reranker=reranker, n_docs=12)
    beir = tmp_path / "copies"
    (beir / "qrels").mkdir(parents=True)
    rows = [json.loads(line) for line in (tmp_path / "beir" / "corpus.jsonl").read_text().splitlines()]
    (beir / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"copy-{r['_id']}", "title": r["title"], "text": r["text"].replace(" ", "  ", 1)}) + "\n"
            for r in rows
        )
    )
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "g-copy", "text": "an unrelated general query"}) + "\n")
    (beir / "qrels" / "general.tsv").write_text("query-id\tcorpus-id\tscore\ng-copy\tcopy-d00\t1\n")
    importing.import_beir(project, beir)
    return with_mining(project, **OPEN_WINDOW, rescore=rescore)


def own_copies(project: Project) -> list[dict[str, object]]:
    return [r for r in all_negatives(project.db) if r["doc_id"] == "copy-" + str(r["query_id"]).split("-")[1]]


def test_cross_encoder_drops_candidates_scored_as_high_as_the_positive(
    tmp_path: Path, tiny_embedder_path: Path, tiny_cross_encoder_path: Path
) -> None:
    plain = project_with_copies(tmp_path / "a", tiny_embedder_path, None, "never")
    summary = mine_negatives(plain)
    # without the check (and with no margin) a query's copy ties with its positive: kept when it is in the top 3
    assert summary["skipped_false_negative"] == 0
    copies = len(own_copies(plain))
    assert copies > 4

    checked = project_with_copies(tmp_path / "b", tiny_embedder_path, tiny_cross_encoder_path, "auto")
    summary = mine_negatives(checked)
    assert summary["settings"]["cross_encoder"]["origin"] == "project.yaml reranker"
    assert own_copies(checked) == []
    # the walk reaches at least the first three candidates, so every copy stored above was seen and dropped
    assert summary["skipped_false_negative"] >= copies
    stored = all_negatives(checked.db)
    assert summary["negatives_added"] == len(stored) == summary["negatives_selected"]
    # and no stored negative scores at least as high as its query's weakest positive on the cross-encoder
    from engine.models.resolve import load_cross_encoder
    from engine.store.corpus import retrieval_chunks

    model = load_cross_encoder(str(tiny_cross_encoder_path))
    ids, _, texts = retrieval_chunks(checked.db)
    text_of = dict(zip(ids, texts, strict=True))
    pairs = mining_pairs(checked.db)
    query_text = {p.query_id: p.query for p in pairs}
    floor: dict[str, float] = {}
    for p, score in zip(pairs, model.predict([(p.query, p.passage) for p in pairs]), strict=True):
        floor[p.query_id] = min(floor.get(p.query_id, float("inf")), float(score))
    scores = model.predict([(query_text[r["query_id"]], text_of[r["chunk_id"]]) for r in stored])
    assert all(float(s) < floor[r["query_id"]] for r, s in zip(stored, scores, strict=True))


def test_trained_reranker_is_used_when_yaml_names_none(
    tmp_path: Path, tiny_embedder_path: Path, tiny_cross_encoder_path: Path
) -> None:
    project = with_mining(make_project(tmp_path, tiny_embedder_path, n_docs=8), **OPEN_WINDOW)
    # stands in for `embtune reranker train` (tested in test_gate): a finished reranker run with a model
    run_id = runs.create_run(project.db, "reranker", {})
    runs.finish_model_run(project.db, run_id, str(tiny_cross_encoder_path), {})
    summary = mine_negatives(project)
    assert summary["settings"]["cross_encoder"]["origin"] == f"trained in this project (run {run_id})"
    assert summary["settings"]["cross_encoder"]["fingerprint"]


def test_rescore_always_without_a_cross_encoder_is_a_clear_error(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = with_mining(make_project(tmp_path, tiny_embedder_path), rescore="always")
    with pytest.raises(MiningError, match="no cross-encoder is available"):
        mine_negatives(project)
    result = CliRunner().invoke(main, ["mine", str(project.root), "--json"])
    assert result.exit_code == 2
    assert "no cross-encoder" in json.loads(result.stdout)["error"]


def test_cancel_records_a_cancelled_run_and_stores_nothing(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = with_mining(make_project(tmp_path, tiny_embedder_path), **OPEN_WINDOW, rescore="never")
    stages: list[str] = []

    def cancelled() -> bool:
        return "mine" in stages

    with pytest.raises(InterruptedError):
        mine_negatives(project, lambda stage, done, total: stages.append(stage), cancelled)
    (run_id,) = runs.run_ids(project.db, "mine")
    assert runs.get_run(project.db, run_id)["status"] == "cancelled"
    assert all_negatives(project.db) == []


def test_cli_mine_json_contract_and_text(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = with_mining(make_project(tmp_path, tiny_embedder_path), **OPEN_WINDOW, rescore="never")
    runner = CliRunner()
    result = runner.invoke(main, ["mine", str(project.root), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) == CONTRACT_KEYS
    assert summary["negatives_added"] > 0
    assert summary["settings"]["num_negatives"] == 3
    result = runner.invoke(main, ["mine", str(project.root)])
    assert result.exit_code == 0, result.output
    assert "added      0 new negatives" in result.stdout
    assert "ranks 0-20, no margin, top 3" in result.stdout


def test_no_train_pairs_is_a_clear_error(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path, train_per_doc=0)
    result = CliRunner().invoke(main, ["mine", str(project.root)])
    assert result.exit_code == 2
    assert "no train pairs" in result.stderr


def test_mining_defaults_follow_nv_retriever(tmp_path: Path) -> None:
    (tmp_path / "project.yaml").write_text("name: x\n")
    mining = load_config(tmp_path / "project.yaml").mining
    assert (mining.range_min, mining.range_max, mining.relative_margin, mining.absolute_margin) == (10, 50, 0.05, None)
    assert (mining.num_negatives, mining.sampling, mining.rescore) == (3, "top", "auto")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mining:\n  range_min: ten\n", r"project\.yaml:2: 'mining\.range_min' must be an integer, got 'ten'"),
        ("mining:\n  relative_margin: lots\n", r"project\.yaml:2: 'mining\.relative_margin' must be a number"),
        # a bare off is YAML 1.1's false; a text setting reads it as the word, then checks the word
        (
            "mining:\n  rescore: off\n",
            r"project\.yaml:2: 'mining\.rescore' must be one of auto, always, never, got 'off'",
        ),
        ("mining:\n  rescore: sometimes\n", r"project\.yaml:2: 'mining\.rescore' must be one of auto, always"),
        ("mining:\n  sampling: best\n", r"project\.yaml:2: 'mining\.sampling' must be one of top, random"),
        (
            "mining:\n  range_min: 10\n  range_max: 11\n",
            r"project\.yaml:3: 'mining\.range_max' \(11\) must leave at least mining\.num_negatives \(3\)",
        ),
        ("mining:\n  relative_margin: 1.5\n", r"project\.yaml:2: 'mining\.relative_margin' must be in \[0, 1\)"),
        ("mining:\n  num_negatives: 0\n", r"project\.yaml:2: 'mining\.num_negatives' must be a positive integer"),
        ("mining:\n  margin: 0.1\n", r"project\.yaml:2: unknown key 'mining\.margin'"),
    ],
)
def test_bad_mining_config_names_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "project.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "project.yaml")
