"""Streaming pages, exact truth, `embtune index plan` (index types and compressions measured against exact search),
and encoding in several processes, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.index.build import build_index, connect
from engine.index.devices import DevicesError, Targets
from engine.index.stream import pages
from engine.project import Project
from engine.store import indexes
from tests.projects import cli, set_index_config


def vectors_by_id(project: Project, table: str) -> dict[str, np.ndarray]:
    data = connect(project).open_table(table).to_arrow()
    return dict(
        zip(data.column("chunk_id").to_pylist(), data.column("vector").to_numpy(zero_copy_only=False), strict=True)
    )


def test_pages_cover_every_chunk_once_in_bounded_pages(project: Project) -> None:
    seen = [page for page in pages(project.db, 7)]
    assert max(len(p) for p in seen) == 7
    ids = [cid for p in seen for cid in p.ids]
    assert sorted(ids) == sorted(r[0] for r in indexes.index_chunks(project.db))
    assert len(ids) == len(set(ids)) == indexes.count_index_chunks(project.db)


def test_build_across_pages_copies_and_embeds_like_one_page(project: Project) -> None:
    """batch_size 2 → pages of 32 rows for 40 chunks: a rebuild copies unchanged rows and embeds the edited one
    in whichever page it falls, and the vectors equal a one-page build's."""
    whole = build_index(project)
    project = set_index_config(project, batch_size=2)
    paged = build_index(project, "base")
    assert (paged.rows, paged.skipped_unchanged, paged.embedded) == (40, 40, 0)
    a, b = vectors_by_id(project, whole.table), vectors_by_id(project, paged.table)
    assert a.keys() == b.keys()
    assert all(np.allclose(a[k], b[k]) for k in a)


def test_exact_truth_matches_lancedb_flat_search(tmp_path: Path) -> None:
    import lancedb
    import pyarrow as pa

    from engine.index.ann import _ids, exact_top_k

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    data = pa.table(
        {
            "chunk_id": [f"c{i}" for i in range(2000)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 16),
        }
    )
    table = lancedb.connect(str(tmp_path / "lance")).create_table("t", data)
    queries = vectors[:15] + rng.normal(scale=0.3, size=(15, 16)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    assert exact_top_k(table, queries) == [_ids(table, q, None) for q in queries]


@pytest.fixture
def big_project(tmp_path: Path, tiny_embedder_path: Path) -> Project:
    """600 passages (pairs of insurance terms) and 40 queries: enough rows for IVF partitions."""
    from engine.ingest.importing import import_beir
    from engine.project import init_project, open_project
    from tests.projects import TERMS

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    pairs = [(a, b) for a in TERMS for b in TERMS if a != b][::2][:600]
    corpus = [
        {"_id": f"p{i}", "text": f"The {a} clause meets {b}: step {i % 7} of the file."}
        for i, (a, b) in enumerate(pairs)
    ]
    queries = [{"_id": f"q{i}", "text": f"how does {a} relate to {b}"} for i, (a, b) in enumerate(pairs[::15])]
    (beir / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (beir / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    qrels = "".join(f"q{i}\tp{i * 15}\t1\n" for i in range(len(queries)))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    root = tmp_path / "big"
    init_project(root)
    (root / "project.yaml").write_text(f"base_model: {tiny_embedder_path}\nindex:\n  ann_min_rows: 300\n")
    project = open_project(root)
    import_beir(project, beir)
    return project


def test_plan_measures_index_types_and_compressions_against_exact(big_project: Project) -> None:
    from engine.index.plan import plan_index, plan_rows

    first = build_index(big_project)
    assert first.ann["tried"]  # no plan yet: auto tried IVF_FLAT (kept or dropped by its recall)
    plan = plan_index(big_project, kinds=("ivf_flat", "ivf_pq"))
    by_name = {o.name: o for o in plan.options}
    assert {"exact", "ivf_flat", "ivf_pq", "int8+rescore", "binary+rescore"} <= set(by_name)
    assert by_name["exact"].recall_at_10 == 1.0
    assert all(0.0 <= o.recall_at_10 <= 1.0 and o.p50_ms > 0 for o in plan.options)
    dim = plan.dim
    assert by_name["exact"].bytes_per_vector == 4 * dim
    assert (by_name["int8+rescore"].bytes_per_vector, by_name["binary+rescore"].bytes_per_vector) == (dim, dim / 8)
    assert by_name["ivf_pq"].bytes_per_vector == dim / 4 < by_name["ivf_flat"].bytes_per_vector == 4 * dim
    meeting = [o for o in plan.options if o.recall_at_10 >= plan.min_recall]
    assert plan.pick == min(meeting, key=lambda o: (o.bytes_per_vector, o.p50_ms)).name
    assert "plan_scratch" not in " ".join(connect(big_project).list_tables().tables)  # the scratch copy is gone
    rows = plan_rows(big_project)
    assert [r["name"] for r in rows] == [o.name for o in plan.options]
    assert sum(r["picked"] for r in rows) == 1
    if plan.index_pick is not None:  # the next auto build uses the plan's index type
        assert build_index(big_project).ann["kind"] == plan.index_pick


def test_cli_index_plan_json_contract(big_project: Project) -> None:
    build_index(big_project)
    code, out = cli("index", "plan", big_project.root, "--json")
    assert code == 0, out
    plan = json.loads(out)
    assert plan["options"]
    assert all({"name", "recall_at_10", "bytes_per_vector", "p50_ms", "p95_ms"} <= set(o) for o in plan["options"])


def test_plan_without_a_live_index_says_so(project: Project) -> None:
    code, out = cli("index", "plan", project.root, "--json")
    assert code == 2
    assert "no live index" in json.loads(out)["error"]


@pytest.mark.slow  # two spawned processes each import torch and load the model
def test_two_processes_build_the_same_vectors(project: Project, tiny_embedder_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    two = build_index(project, targets=Targets(processes=2))
    assert (two.embedded, two.targets) == (40, {"processes": 2, "devices": []})
    stored = vectors_by_id(project, two.table)
    texts = {r[0]: r[3] for r in indexes.index_chunks(project.db)}
    model = SentenceTransformer(str(tiny_embedder_path), device="cpu")
    ids = sorted(stored)
    expected = model.encode([texts[i] for i in ids], normalize_embeddings=True)
    assert np.allclose(np.stack([stored[i] for i in ids]), expected, atol=1e-5)


def test_targets_are_checked() -> None:
    assert Targets.parse(None, "cuda:0,cuda:1").pool_devices() == ["cuda:0", "cuda:1"]
    assert Targets.parse(2, None).pool_devices() == ["cpu", "cpu"]
    assert Targets.parse(1, None).pool_devices() == []
    with pytest.raises(DevicesError, match="give one"):
        Targets.parse(2, "cuda:0")
    with pytest.raises(DevicesError, match="at least 1"):
        Targets.parse(0, None)
