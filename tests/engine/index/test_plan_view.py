"""The plan as a screen reads it (engine.index.plan.plan_view): stored through store_plan, read back with the
options marked picked / meeting min_recall, and a one-line verdict that says what the pick saves against exact."""

from __future__ import annotations

from pathlib import Path

from engine.index.plan import IndexPlan, Option, plan_view, store_plan, verdict
from engine.project import init_project


def option(name: str, family: str, recall: float, size: float, p50: float = 1.0) -> Option:
    return Option(name, family, recall, size, p50, p50 * 1.5)


def plan(options: list[Option], pick: str | None, index_pick: str | None, min_recall: float = 0.95) -> IndexPlan:
    return IndexPlan("chunks_x_1", 1000, 64, 40, min_recall, options, pick, index_pick)


EXACT = option("exact", "exact", 1.0, 256.0, 2.0)


def test_verdict_names_the_pick_and_its_share_of_the_bytes() -> None:
    chosen = plan([EXACT, option("ivf_pq", "index", 0.962, 16.0, 0.5)], "ivf_pq", "ivf_pq").to_json()
    assert verdict(chosen) == (
        "IVF_PQ meets recall@10 0.95 (0.962) at 1/16 the bytes of exact float32 (p50 0.50 ms vs 2.00 ms)."
    )
    near = plan([EXACT, option("ivf_hnsw_sq", "index", 0.97, 192.0)], "ivf_hnsw_sq", "ivf_hnsw_sq").to_json()
    assert "at 75% of the bytes" in verdict(near)


def test_verdict_says_when_builds_use_another_index_or_none() -> None:
    options = [EXACT, option("ivf_flat", "index", 0.99, 256.0, 0.5), option("int8+rescore", "compression", 0.99, 64)]
    text = verdict(plan(options, "int8+rescore", "ivf_flat").to_json())
    assert text.startswith("int8+rescore meets recall@10 0.95 (0.990) at 1/4 the bytes")
    assert text.endswith("; index builds (index.type: auto) use IVF_FLAT.")
    low = [EXACT, option("ivf_rq", "index", 0.91, 16.0), option("binary+rescore", "compression", 0.87, 8.0)]
    text = verdict(plan(low, "exact", None).to_json())
    assert text.startswith("Only exact search meets recall@10 0.95 (closest: IVF_RQ at 0.910)")
    assert "no index type met it" in text


def test_plan_view_reads_back_the_newest_stored_plan(tmp_path: Path) -> None:
    project = init_project(tmp_path / "project")
    try:
        assert plan_view(project) is None
        store_plan(project, plan([EXACT, option("ivf_pq", "index", 0.9, 16.0)], "exact", None))
        newest = plan([EXACT, option("ivf_pq", "index", 0.96, 16.0)], "ivf_pq", "ivf_pq")
        run_id = store_plan(project, newest)
        view = plan_view(project)
    finally:
        project.close()
    assert view is not None
    assert view["run_id"] == run_id
    assert view["measured_at"]
    assert [(o["name"], o["picked"], o["meets"]) for o in view["options"]] == [
        ("exact", False, True),
        ("ivf_pq", True, True),
    ]
    assert view["verdict"] == verdict(newest.to_json())


def test_matryoshka_sizes_come_from_the_run_that_trained_them(tmp_path: Path) -> None:
    from engine.index.plan import matryoshka_dims
    from engine.store import runs

    project = init_project(tmp_path / "p")
    try:
        trained = runs.create_run(
            project.db, "train", {"settings": {"loss": "matryoshka", "matryoshka_dims": [64, 32]}}
        )
        default = runs.create_run(project.db, "train", {"settings": {"loss": "matryoshka", "matryoshka_dims": None}})
        plain = runs.create_run(project.db, "train", {"settings": {"loss": "mnrl"}})
        dims = {run: matryoshka_dims(project, {"config": {"model_run": run}}, 64) for run in (trained, default, plain)}
        assert dims == {trained: [32], default: [32, 16, 8], plain: []}
    finally:
        project.close()


def test_a_card_claims_matryoshka_only_outside_the_reading_list_every_card_carries(tmp_path: Path) -> None:
    from engine.index.plan import matryoshka_dims

    link = "- [Introduction to Matryoshka Embedding Models](https://huggingface.co/blog/matryoshka): variable-size\n"
    cards = {
        "plain": "# A model\n## Additional Resources\n" + link,  # what sentence-transformers 6 writes for any model
        "mrl": "# A model\nTrained with MatryoshkaLoss on 64, 32 and 16 dimensions.\n" + link,
        "qwen": "# Qwen3-Embedding\n- **MRL Support**: user-defined output dimensions\n",
    }
    project = init_project(tmp_path / "p")
    try:
        dims = {}
        for name, card in cards.items():
            (tmp_path / name).mkdir()
            (tmp_path / name / "config.json").write_text("{}")  # a model folder as resolve_model knows one
            (tmp_path / name / "README.md").write_text(card)
            dims[name] = matryoshka_dims(project, {"config": {"spec": str(tmp_path / name)}}, 64)
        assert dims == {"plain": [], "mrl": [32, 16], "qwen": [32, 16]}
    finally:
        project.close()
