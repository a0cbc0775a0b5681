"""What every bench script shares: an offline, quiet environment and a timestamped log on stderr."""

from __future__ import annotations

import os
import sys
import time

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
