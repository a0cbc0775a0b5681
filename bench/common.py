"""What every bench script shares: an offline, quiet environment and a timestamped log on stderr."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# Offline (no hub at run time), and no progress bars or library chatter in the figures' output.
QUIET = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "LANCEDB_LOG": "error",
}


def quiet_environment() -> None:
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)


def log(message: str) -> None:
    """A timestamped line with the load average (figures taken under load are suspect)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)


def read_qrels(path: Path) -> dict[str, list[str]]:
    """A BEIR qrels file as query id -> relevant corpus ids (score > 0; the header line skipped)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] != "query-id" and int(parts[2]) > 0:
            out.setdefault(parts[0], []).append(parts[1])
    return out
