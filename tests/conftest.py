"""Shared fixtures. Nothing may reach the network, and torch is imported only by fixtures that need it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports huggingface_hub / transformers / tqdm: offline, quiet, no tokenizer threads.
os.environ.update(
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    TOKENIZERS_PARALLELISM="false",
    TQDM_DISABLE="1",
    HF_HUB_DISABLE_PROGRESS_BARS="1",
)


@pytest.fixture(scope="session")
def tiny_embedder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SentenceTransformer folder (64-d, normalized), built once per session (per xdist worker)."""
    from tests.tinymodels import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("tiny") / "embedder")


@pytest.fixture(scope="session")
def tiny_cross_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cross-encoder folder (BERT with one logit), built once per session (per xdist worker)."""
    from tests.tinymodels import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny") / "cross_encoder")


@pytest.fixture(scope="session")
def tuned_model(tmp_path_factory: pytest.TempPathFactory, tiny_embedder_path: Path) -> Path:
    """The tiny embedder with perturbed weights: what a training run leaves, without training."""
    from tests.tinymodels import perturbed_model

    return perturbed_model(tiny_embedder_path, tmp_path_factory.mktemp("tuned") / "model")


@pytest.fixture(scope="session")
def tiny_xlmr_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny bge-m3-shaped model: XLM-RoBERTa, Unigram vocabulary, CLS pooling (tests.tinymodels)."""
    from tests.tinymodels import build_tiny_xlmr_embedder

    return build_tiny_xlmr_embedder(tmp_path_factory.mktemp("tiny") / "bge-m3-tiny")


@pytest.fixture(scope="session")
def tiny_qwen3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3-Embedding-shaped model: decoder, last-token pooling, left padding, EOS, a query instruction."""
    from tests.tinymodels import build_tiny_qwen3_embedder

    return build_tiny_qwen3_embedder(tmp_path_factory.mktemp("tiny") / "Qwen3-Embedding-tiny")
