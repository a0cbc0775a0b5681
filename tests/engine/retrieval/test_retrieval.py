"""Retrieval pieces: dense search order, BM25, fusion, expansion."""

from __future__ import annotations

import numpy as np

from engine.retrieval.arms import BM25, Expander, dense_search, reciprocal_rank_fusion, to_documents


def test_dense_search_orders_by_cosine_and_breaks_ties_by_index() -> None:
    docs = np.array([[1, 0], [0, 1], [0.6, 0.8], [1, 0]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1]], dtype=np.float32)
    assert dense_search(queries, docs, depth=3) == [[0, 3, 2], [1, 2, 0]]
    assert dense_search(queries, docs, depth=10)[0] == [0, 3, 2, 1]


def test_to_documents_keeps_best_rank_per_document() -> None:
    assert to_documents([3, 0, 1, 2], ["a", "a", "b", "c"]) == ["c", "a", "b"]
    assert to_documents([3, 0, 1, 2], ["a", "a", "b", "c"], depth=2) == ["c", "a"]


def test_bm25_prefers_rare_matching_terms() -> None:
    bm25 = BM25(["the claim was paid", "subrogation recovery from the at-fault carrier", "claim claim claim"])
    assert bm25.search("subrogation claim", 3)[0] == 1
    assert bm25.search("nothing matches", 3) == []


def test_rrf_rewards_agreement() -> None:
    # 2 is second in both lists (2/62) and beats each list's own first (1/61)
    assert reciprocal_rank_fusion([[1, 2, 3], [4, 2, 5]], depth=2) == [2, 1]
    # a symmetric tie goes to the lower id, so results are deterministic
    assert reciprocal_rank_fusion([[7, 9], [9, 7]], depth=2) == [7, 9]


def test_expander_injects_other_forms_once() -> None:
    expander = Expander({"FNOL": ["first notice of loss"], "ALE": ["additional living expense"]})
    assert expander.expand("who takes the FNOL?") == "who takes the FNOL? (first notice of loss)"
    assert expander.expand("First notice of loss deadline") == "First notice of loss deadline (FNOL)"
    # acronyms match case-sensitively; 'ale' is not ALE
    assert expander.expand("a pint of ale") == "a pint of ale"
    assert not expander.matches("nothing here")
