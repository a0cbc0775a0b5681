"""Where a build encodes: this process (default), N CPU processes, or several devices (`cuda:0,cuda:1`).

Several targets use sentence-transformers' multi-process pool: each target process loads the model once and the
pool splits every batch between them. The rows are committed to LanceDB as in a single-process build
(engine.index.stream.Committer), so a pooled build resumes like one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import EmbtuneError


class DevicesError(EmbtuneError):
    """--processes / --devices that cannot be used."""


@dataclass(frozen=True)
class Targets:
    processes: int | None = None
    devices: tuple[str, ...] = ()

    @classmethod
    def parse(cls, processes: int | None, devices: str | None) -> Targets:
        if processes is not None and devices:
            raise DevicesError("--processes and --devices: give one (N CPU processes, or a list of devices)")
        if processes is not None and processes < 1:
            raise DevicesError(f"--processes must be at least 1, got {processes}")
        names = tuple(d.strip() for d in (devices or "").split(",") if d.strip())
        if devices is not None and not names:
            raise DevicesError(f"--devices: no device named in {devices!r} (e.g. cuda:0,cuda:1)")
        return cls(processes, names)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Targets:
        data = data or {}
        return cls(data.get("processes"), tuple(data.get("devices") or ()))

    def to_json(self) -> dict[str, Any]:
        return {"processes": self.processes, "devices": list(self.devices)}

    def pool_devices(self) -> list[str]:
        """The pool's target list; empty when encoding stays in this process."""
        if self.devices:
            return list(self.devices) if len(self.devices) > 1 else []
        return ["cpu"] * self.processes if self.processes and self.processes > 1 else []

    def single_device(self) -> str:
        """The device of a one-target build ("auto" unless one device is named)."""
        return self.devices[0] if len(self.devices) == 1 else "cpu" if self.processes else "auto"


class PooledEncoder:
    """Encodes documents like engine.models.encoder.Encoder, spread over a multi-process pool when there is one.
    Use as a context manager: the pool's processes stop on exit."""

    def __init__(self, encoder: Any, targets: Targets) -> None:
        self.encoder = encoder
        self.targets = targets
        self.pool: Any = None

    def __enter__(self) -> PooledEncoder:
        devices = self.targets.pool_devices()
        if devices:
            self._check(devices)
            self.encoder.model.max_seq_length = self.encoder.max_seq_length  # the workers get a copy of the model
            self.pool = self.encoder.model.start_multi_process_pool(target_devices=devices)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.encoder.model.stop_multi_process_pool(self.pool)
            self.pool = None

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.pool is None:
            return self.encoder.encode(texts, "document")
        vectors = self.encoder.model.encode_document(
            texts,
            prompt=self.encoder.prompts.document,  # the resolved prompt, as Encoder.encode would pass it
            pool=self.pool,
            batch_size=self.encoder.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
            chunk_size=max(1, -(-len(texts) // len(self.pool["processes"]))),  # one share per process
        )
        return np.asarray(vectors, dtype=np.float32)

    @staticmethod
    def _check(devices: list[str]) -> None:
        cuda = [d for d in devices if d.startswith("cuda")]
        if not cuda:
            return
        import torch

        have = torch.cuda.device_count()
        missing = [d for d in cuda if (int(d.split(":")[1]) if ":" in d else 0) >= have]
        if missing:
            raise DevicesError(f"--devices: {', '.join(missing)} not available (this machine has {have} CUDA devices)")
