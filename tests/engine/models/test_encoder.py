"""Fitting max_seq_length to the corpus: covers its long texts, stays a multiple of 32, samples large corpora."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from engine.models.encoder import fit_max_seq_length


@pytest.fixture(scope="module")
def model(tiny_embedder_path: Path) -> Any:
    from engine.models.resolve import load_embedder

    return load_embedder(str(tiny_embedder_path), device="cpu")


def test_fitted_length_covers_the_corpus_and_is_a_multiple_of_32(model: Any) -> None:
    texts = ["claim " * 40] * 50 + ["short"] * 50
    length = fit_max_seq_length(model, texts, percentile=100)
    longest = max(len(model.tokenizer(t)["input_ids"]) for t in texts)
    assert length % 32 == 0
    assert longest <= length < longest + 32


def test_fitted_length_never_exceeds_the_models_own_limit(model: Any) -> None:
    assert fit_max_seq_length(model, ["claim " * 5000]) == model.max_seq_length


def test_large_corpora_are_sampled_evenly_not_tokenized_whole(model: Any) -> None:
    seen: list[int] = []
    tokenizer = model.tokenizer

    class Counting:
        def __call__(self, texts: list[str], **kwargs: Any) -> Any:
            seen.append(len(texts))
            return tokenizer(texts, **kwargs)

    spy = SimpleNamespace(max_seq_length=model.max_seq_length, tokenizer=Counting())
    fit_max_seq_length(spy, ["deductible"] * 4001, sample=2000)
    assert seen == [1334]  # every 3rd of 4,001 texts: at most 2,000, spread over the whole corpus
