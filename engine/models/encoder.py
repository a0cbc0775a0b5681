"""Encoding with a persistent cache and a max sequence length fitted to the data.

Vectors are L2-normalised float32 and cached in the store by (encoding fingerprint, max_seq_length, text key), so a
second gate or eval run on an unchanged corpus encodes nothing. The encoding fingerprint is the model's mixed with
its query/document prompts (engine.models.prompts), so a prompt change never reuses vectors, and with the encode
backend (engine.models.backends) unless it is torch. Blocks are committed as they finish: a killed run keeps what it
encoded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from engine.models.prompts import Prompts
from engine.store._sqlite_utils import Database
from engine.store.embeddings import cached_vectors, store_vectors
from engine.store.schema import text_hash

Role = Literal["query", "document"]
Progress = Callable[[int, int], None]
BLOCK = 256


def cache_key(text: str, role: Role) -> str:
    # Queries and documents may get different prompts (e5, bge, Qwen3), so their vectors differ for equal text.
    digest = text_hash(text)
    return digest if role == "document" else f"q:{digest}"


def fit_max_seq_length(
    model: Any, texts: Sequence[str], *, percentile: float = 99.0, multiple: int = 32, sample: int = 2000
) -> int:
    """The smallest multiple of 32 covering `percentile` of the texts' token lengths, capped by the model.

    A blind 256/512 either truncates long passages or pads short ones: attention cost grows with the square of
    the length, so fitting it is often a 2-4x speed-up on short-passage corpora at no quality cost.
    """
    cap = int(model.max_seq_length or 512)
    if not texts:
        return cap
    # An even sample of at most `sample` texts: the 99th percentile is stable long before the whole corpus, and
    # the fit runs on every open.
    step = max(1, math.ceil(len(texts) / sample))
    picked = list(texts[::step])
    # verbose=False: longer-than-model texts are expected here (that is what is being measured), not a warning.
    ids = model.tokenizer(picked, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    longest = float(np.percentile([len(x) for x in ids], percentile))
    return int(min(cap, max(multiple, math.ceil(longest / multiple) * multiple)))


@dataclass
class Encoder:
    """A loaded SentenceTransformer with its encoding fingerprint, a fitted length, its prompts and the cache."""

    model: Any
    fingerprint: str  # the model's fingerprint mixed with the prompts (Prompts.fingerprint)
    max_seq_length: int
    db: Database | None = None
    batch_size: int = 32
    prompts: Prompts = field(default_factory=Prompts)
    backend: str = "torch"  # the runtime of the transformer's forward pass (engine.models.backends.BACKENDS)

    def encode(
        self,
        texts: Sequence[str],
        role: Role,
        progress: Progress | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        keys = [cache_key(t, role) for t in texts]
        found = cached_vectors(self.db, self.fingerprint, self.max_seq_length, keys) if self.db else {}
        todo = _missing(texts, keys, found)
        total, done = len(todo), 0
        if progress:
            progress(0, total)
        for start in range(0, total, BLOCK):
            if cancelled and cancelled():
                raise InterruptedError("encoding cancelled")
            block = todo[start : start + BLOCK]
            vectors = self._encode_block([t for _, t in block], role)
            fresh = list(zip((k for k, _ in block), vectors, strict=True))
            found.update(fresh)
            if self.db is not None:
                store_vectors(self.db, self.fingerprint, self.max_seq_length, fresh)
            done += len(block)
            if progress:
                progress(done, total)
        dim = self.dimension if not found else next(iter(found.values())).shape[0]
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, dim), dtype=np.float32)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def seconds_per_text(self, texts: Sequence[str], role: Role, sample: int = 64) -> float:
        """Encoding time per text on this machine, uncached (the gate prices re-embedding with it)."""
        picked = list(texts[:sample])
        if not picked:
            return 0.0
        self._encode_block(picked[:2], role)  # warm-up: first-call allocations are not the rate
        started = time.perf_counter()
        self._encode_block(picked, role)
        return (time.perf_counter() - started) / len(picked)

    def _encode_block(self, texts: list[str], role: Role) -> np.ndarray:
        self.model.max_seq_length = self.max_seq_length
        encode = self.model.encode_query if role == "query" else self.model.encode_document
        vectors = encode(
            texts,
            prompt=self.prompts.for_role(role),  # explicit, even "": the resolved prompt, never a library default
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _missing(texts: Sequence[str], keys: list[str], found: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """Unique uncached texts, longest first: similar lengths batch together with little padding."""
    todo: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in found and key not in todo:
            todo[key] = text
    return sorted(todo.items(), key=lambda kv: -len(kv[1]))


def open_encoder(
    spec: str,
    *,
    base_dir: Any = None,
    db: Database | None = None,
    fit_texts: Sequence[str] = (),
    device: str = "auto",
    trust_remote_code: bool = False,
    batch_size: int = 32,
    prompts: Mapping[str, str] | None = None,
    backend: str = "torch",
) -> Encoder:
    """Load a model offline, fingerprint it, resolve its prompts (`prompts`: project.yaml's) and fit its
    max_seq_length to `fit_texts` (the corpus). `backend` (models.encode_backend) other than torch runs the
    transformer exported to ONNX on the CPU, cached under `base_dir` (engine.models.backends)."""
    from engine.models.backends import apply_backend, backend_fingerprint, cache_root, require
    from engine.models.prompts import resolve_prompts, warn_if_missing
    from engine.models.resolve import load_embedder, model_fingerprint, resolve_model

    resolved = resolve_model(spec, base_dir)
    chosen_backend = encode_backend(backend, device)
    require(chosen_backend)  # before the model loads: a missing runtime is named at once
    on = device if chosen_backend == "torch" else "cpu"
    model = load_embedder(str(resolved.path), device=on, trust_remote_code=trust_remote_code)
    model_key = model_fingerprint(resolved.path)
    apply_backend(model, chosen_backend, cache_root(base_dir) / model_key)
    chosen = resolve_prompts(prompts, resolved.path)
    warn_if_missing(spec, resolved.path, chosen)
    # measured with the document prompt: it is part of every passage the model sees
    length = fit_max_seq_length(model, [chosen.document + t for t in fit_texts] if chosen.document else fit_texts)
    key = backend_fingerprint(chosen.fingerprint(model_key), chosen_backend)
    return Encoder(model, key, length, db, batch_size, chosen, chosen_backend)


def encoding_key(
    spec: str, base_dir: Any, prompts: Mapping[str, str] | None, backend: str = "torch", device: str = "auto"
) -> tuple[str, Prompts]:
    """The (fingerprint, prompts) `open_encoder(spec, prompts=…, backend=…)` would use, without loading the model:
    index tables are keyed by that fingerprint, and search encodes its queries with those prompts."""
    from engine.models.backends import backend_fingerprint
    from engine.models.prompts import resolve_prompts
    from engine.models.resolve import model_fingerprint, resolve_model

    path = resolve_model(spec, base_dir).path
    chosen = resolve_prompts(prompts, path)
    return backend_fingerprint(chosen.fingerprint(model_fingerprint(path)), encode_backend(backend, device)), chosen


def encode_backend(setting: str, device: str = "auto") -> str:
    """models.encode_backend resolved for `device` (only `auto` depends on it, so only then is torch asked)."""
    from engine.models.backends import resolve_backend
    from engine.models.resolve import pick_device

    return resolve_backend(setting, pick_device(device) if setting == "auto" else "cpu")
