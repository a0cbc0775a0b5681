"""Retrieval metrics: hand-computed and edge cases, parity with sentence-transformers, bootstrap."""

from __future__ import annotations

import itertools
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.retrieval.metrics import (
    DEFAULT_KS,
    accuracy_at_k,
    average_precision_at_k,
    bootstrap_ci,
    evaluate_run,
    first_relevant_rank,
    mrr_at_k,
    ndcg_at_k,
    paired_bootstrap_p,
    precision_at_k,
    query_metrics,
    recall_at_k,
    wins_losses,
)

# One query for the hand-computed cases: relevant b and d are found at ranks 2 and 4, x is never retrieved.
RANKED = ["a", "b", "c", "d", "e"]
RELEVANT = {"b", "d", "x"}
INV_LOG2_3 = 1 / math.log2(3)  # 0.6309297536
INV_LOG2_5 = 1 / math.log2(5)  # 0.4306765581


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, 0 / 3),  # top-1 = [a]: no hit
        (2, 1 / 3),  # top-2 = [a, b]: 1 of 3 relevant
        (4, 2 / 3),  # top-4 adds d: 2 of 3
        (5, 2 / 3),
        (10, 2 / 3),  # k beyond the list: still 2 of 3 (x is never found)
    ],
)
def test_recall(k: int, expected: float) -> None:
    assert recall_at_k(RANKED, RELEVANT, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, 0 / 1),
        (2, 1 / 2),
        (4, 2 / 4),
        (5, 2 / 5),
        (10, 2 / 10),  # divided by k, not by the 5 retrieved, as sentence-transformers does
    ],
)
def test_precision(k: int, expected: float) -> None:
    assert precision_at_k(RANKED, RELEVANT, k) == pytest.approx(expected)


@pytest.mark.parametrize(("k", "expected"), [(1, 0.0), (2, 1.0), (10, 1.0)])
def test_accuracy(k: int, expected: float) -> None:
    assert accuracy_at_k(RANKED, RELEVANT, k) == expected


@pytest.mark.parametrize(("k", "expected"), [(1, 0.0), (2, 1 / 2), (10, 1 / 2)])
def test_mrr(k: int, expected: float) -> None:
    # first relevant (b) at rank 2 → 1/2, but only when the cut-off reaches rank 2
    assert mrr_at_k(RANKED, RELEVANT, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        # DCG@1 = 0 → 0
        (1, 0.0),
        # DCG@2 = 1/log2(3) = 0.63093; IDCG over min(3, 2) = 2 hits = 1 + 1/log2(3) = 1.63093 → 0.38685
        (2, INV_LOG2_3 / (1 + INV_LOG2_3)),
        # DCG@5 = 1/log2(3) + 1/log2(5) = 1.06161; IDCG over 3 hits = 1 + 0.63093 + 1/log2(4) = 2.13093
        # → 0.49819
        (5, (INV_LOG2_3 + INV_LOG2_5) / (1 + INV_LOG2_3 + 0.5)),
        (10, (INV_LOG2_3 + INV_LOG2_5) / (1 + INV_LOG2_3 + 0.5)),  # no further hits, IDCG still over 3
    ],
)
def test_ndcg(k: int, expected: float) -> None:
    assert ndcg_at_k(RANKED, RELEVANT, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, 0.0),  # nothing relevant in the top 1
        (2, (1 / 2) / 2),  # precision at b's rank = 1/2; divided by min(k=2, 3 relevant) = 2 → 0.25
        (4, (1 / 2 + 2 / 4) / 3),  # precisions 1/2 (b) and 2/4 (d); over min(4, 3) = 3 → 0.3333
        (100, (1 / 2 + 2 / 4) / 3),
    ],
)
def test_average_precision(k: int, expected: float) -> None:
    assert average_precision_at_k(RANKED, RELEVANT, k) == pytest.approx(expected)


def test_first_relevant_rank() -> None:
    assert first_relevant_rank(RANKED, RELEVANT) == 2
    assert first_relevant_rank(["d", "a"], RELEVANT) == 1
    assert first_relevant_rank(RANKED, {"e"}) == 5  # whole list, no cut-off
    assert first_relevant_rank(RANKED, {"z"}) is None
    assert first_relevant_rank([], {"z"}) is None


def test_perfect_ranking_scores_one() -> None:
    ranked, relevant = ["b", "d", "x", "a"], {"b", "d", "x"}
    for k in (3, 10):
        assert recall_at_k(ranked, relevant, k) == 1.0
        assert ndcg_at_k(ranked, relevant, k) == pytest.approx(1.0)
        assert average_precision_at_k(ranked, relevant, k) == pytest.approx(1.0)
    # 2 of 3 relevant fit in the top 2, but the ideal top 2 holds only 2: nDCG and AP are 1, recall is not
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(2 / 3)
    assert ndcg_at_k(ranked, relevant, 2) == pytest.approx(1.0)
    assert average_precision_at_k(ranked, relevant, 2) == pytest.approx(1.0)  # (1/1 + 2/2) / min(2, 3)


@pytest.mark.parametrize("ranked", [["a", "c", "e"], []])
def test_nothing_relevant_retrieved_scores_zero(ranked: list[str]) -> None:
    metrics = query_metrics(ranked, {"z"})
    assert set(metrics.values()) == {0.0}
    assert first_relevant_rank(ranked, {"z"}) is None


def test_repeated_ids_count_once_at_their_first_rank() -> None:
    ranked, relevant = ["b", "b", "a", "d"], {"b", "d"}
    # deduplicated: [b, a, d]
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 2)  # top-2 = [b, a], not [b, b] counted twice
    assert precision_at_k(ranked, relevant, 3) == pytest.approx(2 / 3)  # top-3 = [b, a, d]
    assert average_precision_at_k(ranked, relevant, 10) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert first_relevant_rank(["a", "a", "b"], relevant) == 2
    assert recall_at_k(["b", "b", "b"], relevant, 10) == pytest.approx(1 / 2)  # never above 1 either


def test_relevant_may_be_any_iterable() -> None:
    assert recall_at_k(RANKED, ["b", "d", "x"], 5) == recall_at_k(RANKED, RELEVANT, 5)
    assert ndcg_at_k(RANKED, (d for d in "bdx"), 5) == ndcg_at_k(RANKED, RELEVANT, 5)


@pytest.mark.parametrize("metric", [recall_at_k, ndcg_at_k, average_precision_at_k])
def test_metrics_dividing_by_relevant_refuse_an_empty_set(metric: Any) -> None:
    with pytest.raises(ValueError, match="no relevant"):
        metric(RANKED, set(), 5)


@pytest.mark.parametrize(
    "metric", [recall_at_k, precision_at_k, accuracy_at_k, mrr_at_k, ndcg_at_k, average_precision_at_k]
)
def test_k_below_one_is_refused(metric: Any) -> None:
    with pytest.raises(ValueError, match="k must be"):
        metric(RANKED, RELEVANT, 0)


def test_evaluate_run_means_per_query_and_skips() -> None:
    run = {
        "q1": ["a", "b", "c"],  # relevant {b}: first hit at rank 2
        "q2": ["x", "y"],  # relevant {x, z}: x at rank 1, z never
        "q3": ["a"],  # empty qrels → skipped
        "extra": ["a"],  # not in qrels → ignored
    }
    qrels: dict[str, set[str]] = {"q1": {"b"}, "q2": {"x", "z"}, "q3": set(), "q4": {"a"}}  # q4 not in run
    means, per_query = evaluate_run(run, qrels)

    assert list(per_query) == ["q1", "q2", "q4"]
    expected_keys = {f"{m}@{k}" for m in ("recall", "precision", "accuracy") for k in DEFAULT_KS}
    assert set(means) == expected_keys | {"mrr@10", "ndcg@10", "map@100"}
    assert set(per_query["q4"].values()) == {0.0}  # absent from the run: retrieved nothing

    # recall@1: q1 0, q2 1/2, q4 0 → 1/6; recall@5: q1 1, q2 1/2, q4 0 → 1/2
    assert means["recall@1"] == pytest.approx(1 / 6)
    assert means["recall@5"] == pytest.approx(1 / 2)
    # mrr@10: q1 1/2, q2 1, q4 0 → 1/2
    assert means["mrr@10"] == pytest.approx(1 / 2)
    # accuracy@1: only q2 → 1/3
    assert means["accuracy@1"] == pytest.approx(1 / 3)
    # precision@3: q1 1/3, q2 1/3 (one hit, k=3), q4 0 → 2/9
    assert means["precision@3"] == pytest.approx(2 / 9)
    # ndcg@10: q1 (1/log2 3)/1 = 0.63093; q2 1 / (1 + 1/log2 3) = 0.61315; q4 0
    assert per_query["q1"]["ndcg@10"] == pytest.approx(INV_LOG2_3)
    assert per_query["q2"]["ndcg@10"] == pytest.approx(1 / (1 + INV_LOG2_3))
    assert means["ndcg@10"] == pytest.approx((INV_LOG2_3 + 1 / (1 + INV_LOG2_3)) / 3)
    # map@100: q1 (1/2)/1; q2 (1/1)/2; q4 0 → 1/3
    assert means["map@100"] == pytest.approx(1 / 3)


def test_evaluate_run_custom_cutoffs() -> None:
    means, per_query = evaluate_run({"q": ["a", "b"]}, {"q": {"b"}}, ks=(2,), mrr_k=1, ndcg_k=2, map_k=1)
    assert set(means) == {"recall@2", "precision@2", "accuracy@2", "mrr@1", "ndcg@2", "map@1"}
    assert per_query["q"]["mrr@1"] == 0.0
    assert per_query["q"]["ndcg@2"] == pytest.approx(INV_LOG2_3)


def test_evaluate_run_needs_a_query_with_relevant_documents() -> None:
    with pytest.raises(ValueError, match="no query"):
        evaluate_run({"q": ["a"]}, {"q": set()})


# ---------------------------------------------------------------- bootstrap and paired tests


def _bernoulli(n: int, p: float = 0.6, seed: int = 1) -> list[float]:
    return np.random.default_rng(seed).binomial(1, p, size=n).astype(float).tolist()


def test_bootstrap_ci_is_deterministic_for_a_seed() -> None:
    values = _bernoulli(50)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_queries() -> None:
    small, large = _bernoulli(30), _bernoulli(3000)
    low_s, high_s = bootstrap_ci(small, n_samples=2000)
    low_l, high_l = bootstrap_ci(large, n_samples=2000)
    assert low_s <= np.mean(small) <= high_s
    assert low_l <= np.mean(large) <= high_l
    assert high_l - low_l < (high_s - low_s) / 3  # width shrinks like 1/sqrt(n): 10x fewer → ~1/10 width
    assert 0.0 <= low_s < high_s <= 1.0


def test_bootstrap_ci_edge_cases() -> None:
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    low90, high90 = bootstrap_ci(_bernoulli(40), confidence=0.9)
    low99, high99 = bootstrap_ci(_bernoulli(40), confidence=0.99)
    assert low99 <= low90 < high90 <= high99
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 0.0], confidence=1.0)


def test_paired_bootstrap_p() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, size=40)
    better = np.clip(base + 0.3 + rng.normal(0, 0.05, size=40), 0, 2)
    noisy = base + rng.normal(0, 0.2, size=40)
    assert paired_bootstrap_p(base, base, n_samples=500) == 1.0  # no difference at all
    assert paired_bootstrap_p(better, base, n_samples=2000) < 0.01
    assert paired_bootstrap_p(noisy, base, n_samples=2000, seed=1) > 0.05
    # deterministic for a seed, and symmetric in a and b
    assert paired_bootstrap_p(noisy, base, 1000, seed=5) == paired_bootstrap_p(noisy, base, 1000, seed=5)
    assert paired_bootstrap_p(noisy, base, 1000, seed=5) == paired_bootstrap_p(base, noisy, 1000, seed=5)
    with pytest.raises(ValueError, match="pair up"):
        paired_bootstrap_p([1.0, 0.0], [1.0])


def test_wins_losses() -> None:
    base = {"q1": 0.5, "q2": 1.0, "q3": 0.0, "q4": 0.25}
    other = {"q1": 1.0, "q2": 0.5, "q3": 1e-15, "q4": 0.25, "q5": 1.0}
    # q1 up, q2 down, q3 within eps, q4 equal; q5 is not in base
    assert wins_losses(base, other) == (["q1"], ["q2"])
    assert wins_losses(base, other, eps=0.6) == ([], [])
    # swapped: lists follow the first mapping's order, which now includes q5 (1.0 → 0.0, a loss)
    assert wins_losses(other, base | {"q5": 0.0}) == (["q2"], ["q1", "q5"])


# ---------------------------------------------------------------- parity with sentence-transformers

TOPICS = {
    "claims": ["claim", "adjuster", "payout", "deductible", "settlement"],
    "weather": ["storm", "rainfall", "forecast", "humidity", "thunder"],
    "cooking": ["recipe", "oven", "garlic", "simmer", "butter"],
    "astronomy": ["planet", "telescope", "orbit", "comet", "nebula"],
    "gardening": ["soil", "compost", "tomato", "seedling", "pruning"],
    "finance": ["interest", "mortgage", "bond", "dividend", "inflation"],
    "music": ["guitar", "melody", "chord", "tempo", "orchestra"],
    "medicine": ["vaccine", "dosage", "symptom", "clinic", "fever"],
    "travel": ["passport", "airport", "luggage", "hotel", "itinerary"],
    "sports": ["goalkeeper", "marathon", "referee", "stadium", "tournament"],
    "computing": ["compiler", "kernel", "database", "network", "cache"],
    "history": ["empire", "treaty", "dynasty", "revolution", "archive"],
}
FILLERS = ["notes on", "a guide to", "questions about", "the basics of", "advanced"]


def _parity_data() -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """60 documents (12 topics x 5), 15 queries with 1-3 relevant documents each, all texts distinct."""
    rnd = random.Random(7)
    corpus, by_topic = {}, {}
    for t, (topic, words) in enumerate(TOPICS.items()):
        by_topic[topic] = []
        for i in range(5):
            doc_id = f"d{t * 5 + i:02d}"
            picked = rnd.sample(words, 3)
            corpus[doc_id] = f"{FILLERS[i]} {topic}: {' '.join(picked)} and {words[i]} number {t * 5 + i}"
            by_topic[topic].append(doc_id)
    queries, qrels = {}, {}
    for n in range(15):
        topic = list(TOPICS)[n % len(TOPICS)]
        words = TOPICS[topic]
        queries[f"q{n:02d}"] = f"what about {words[n % 5]} {words[(n + 2) % 5]} in {topic} #{n}"
        qrels[f"q{n:02d}"] = set(rnd.sample(by_topic[topic], 1 + n % 3))
    return corpus, queries, qrels


def _build_tiny_embedder(folder: Path, texts: list[str]) -> Path:
    """2-layer BERT (hidden 64, random weights), WordPiece vocabulary of ``texts``, mean pooling; offline."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    # The WordPiece trainer breaks count ties in hash order, so its vocabulary changes from run to run; a
    # vocabulary of every whole word plus single characters, in sorted order, keeps the model reproducible.
    words = {w for text in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))}
    chars = {c for w in words for c in w}
    vocab = [*specials, *sorted(words | chars | {f"##{c}" for c in chars})]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    bert_dir = folder / "bert"
    fast.save_pretrained(bert_dir)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=fast.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(bert_dir)
    model = SentenceTransformer(modules=[Transformer(str(bert_dir)), Pooling(64, "mean")], device="cpu")
    model.save(str(folder / "st"))
    return folder / "st"


@pytest.fixture(scope="module")
def embedder_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared ``tiny_embedder_path`` from conftest when there is one, else a tiny model built here."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return Path(request.getfixturevalue("tiny_embedder_path"))
    except pytest.FixtureLookupError:
        corpus, queries, _ = _parity_data()
        return _build_tiny_embedder(tmp_path_factory.mktemp("tiny_st"), [*corpus.values(), *queries.values()])


def _st_evaluator(queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, set[str]]) -> Any:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    return InformationRetrievalEvaluator(queries, corpus, qrels, name="val", show_progress_bar=False)


def _rank(query_vecs: np.ndarray, doc_vecs: np.ndarray, doc_ids: list[str]) -> list[list[tuple[str, float]]]:
    """Cosine ranking as (id, score), ties broken by ascending document id (sentence-transformers' order)."""
    q = query_vecs / np.linalg.norm(query_vecs, axis=1, keepdims=True)
    d = doc_vecs / np.linalg.norm(doc_vecs, axis=1, keepdims=True)
    return [sorted(zip(doc_ids, row.tolist(), strict=True), key=lambda pair: (-pair[1], pair[0])) for row in q @ d.T]


def _ambiguous(ranked: list[tuple[str, float]], relevant: set[str]) -> bool:
    """Whether float32 rounding (torch's versus numpy's) could reorder a relevant and an irrelevant document
    that sit next to each other; swaps within either group change no metric."""
    return any(
        (doc_a in relevant) != (doc_b in relevant) and score_a - score_b <= 1e-5
        for (doc_a, score_a), (doc_b, score_b) in itertools.pairwise(ranked)
    )


PARITY_KEYS = [
    *(f"{m}@{k}" for m in ("recall", "precision", "accuracy") for k in (1, 3, 5, 10)),
    "mrr@10",
    "ndcg@10",
    "map@100",
]


def test_parity_with_information_retrieval_evaluator(embedder_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    corpus, queries, qrels = _parity_data()
    model = SentenceTransformer(str(embedder_path), device="cpu")
    query_vecs = model.encode_query(list(queries.values()), batch_size=32, convert_to_numpy=True)
    doc_vecs = model.encode_document(list(corpus.values()), batch_size=32, convert_to_numpy=True)
    rankings = _rank(query_vecs.astype(np.float64), doc_vecs.astype(np.float64), list(corpus))

    # A random-weight model packs cosines close together: leave out the rare query with a near tie at a
    # relevant/irrelevant boundary, from both sides, rather than compare orders that rounding decides.
    run = {
        qid: [doc for doc, _ in ranked]
        for qid, ranked in zip(queries, rankings, strict=True)
        if not _ambiguous(ranked, qrels[qid])
    }
    assert len(run) >= 10
    kept_queries = {qid: queries[qid] for qid in run}
    st_metrics = _st_evaluator(kept_queries, corpus, {qid: qrels[qid] for qid in run})(model)
    means, _ = evaluate_run(run, {qid: qrels[qid] for qid in run}, ks=(1, 3, 5, 10))

    for key in PARITY_KEYS:
        assert means[key] == pytest.approx(st_metrics[f"val_cosine_{key}"], abs=1e-6), key
    # the data exercise the metrics: neither all hits nor all misses
    assert 0.0 < means["recall@10"] < 1.0


def test_parity_on_random_rankings() -> None:
    """Same queries_result_list through ST's compute_metrics and through evaluate_run, with repeats of k."""
    rnd = random.Random(11)
    doc_ids = [f"d{i:03d}" for i in range(150)]
    queries = {f"q{n}": f"query {n}" for n in range(40)}
    qrels = {q: set(rnd.sample(doc_ids, rnd.randint(1, 12))) for q in queries}
    evaluator = _st_evaluator(queries, dict.fromkeys(doc_ids, "text"), qrels)
    run, result_lists = {}, []
    for q in queries:
        ranked = rnd.sample(doc_ids, rnd.choice([3, 40, 120]))  # shorter and longer than the cut-offs
        run[q] = ranked
        result_lists.append([{"corpus_id": d, "score": 1.0 - i / 1000} for i, d in enumerate(ranked)])
    st_scores = evaluator.compute_metrics(result_lists)
    means, _ = evaluate_run(run, qrels, ks=(1, 3, 5, 10))
    for key in PARITY_KEYS:
        name, k = key.split("@")
        assert means[key] == pytest.approx(st_scores[f"{name}@k"][int(k)], abs=1e-12), key


def test_simultaneous_intervals_are_wider_than_one_arms_and_cover_the_picked_arm() -> None:
    """Nine arms with the same true recall 0.6 on 40 queries: the best-looking one's own interval misses 0.6 far
    more often than 5%; the simultaneous band keeps the picked arm's coverage at ≥ 95%."""
    from engine.retrieval.metrics import bootstrap_ci, simultaneous_cis

    rng = np.random.default_rng(7)
    own_misses = band_misses = 0
    trials = 200
    for trial in range(trials):
        arms = {f"arm{i}": (rng.random(40) < 0.6).astype(float) for i in range(9)}
        best = max(arms, key=lambda name: arms[name].mean())
        own = bootstrap_ci(arms[best], n_samples=300, seed=trial)
        band = simultaneous_cis(arms, n_samples=300, seed=trial)[best]
        assert band[1] - band[0] > own[1] - own[0]  # the selected arm's interval is wider than a single arm's
        own_misses += not own[0] <= 0.6 <= own[1]
        band_misses += not band[0] <= 0.6 <= band[1]
    assert band_misses / trials <= 0.05
    assert own_misses / trials > 0.1  # the winner's curse the band corrects


def test_simultaneous_intervals_of_one_arm_match_a_symmetric_bootstrap() -> None:
    from engine.retrieval.metrics import simultaneous_cis

    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    low, high = simultaneous_cis({"only": values}, n_samples=2000)["only"]
    assert low < 0.625 < high
    assert high - 0.625 == pytest.approx(0.625 - low)
    with pytest.raises(ValueError, match="confidence"):
        simultaneous_cis({"only": values}, confidence=1.5)


def test_simultaneous_intervals_stay_within_the_bounds_a_mean_can_take() -> None:
    from engine.retrieval.metrics import simultaneous_cis

    arms = {"easy": [1.0] * 9 + [0.0], "hard": [0.0] * 9 + [1.0]}
    open_band = simultaneous_cis(arms, n_samples=2000)
    assert open_band["easy"][1] > 1.0  # the common width overshoots both ends
    assert open_band["hard"][0] < 0.0
    band = simultaneous_cis(arms, n_samples=2000, bounds=(0.0, 1.0))
    assert band["easy"] == (open_band["easy"][0], 1.0)
    assert band["hard"] == (0.0, open_band["hard"][1])
