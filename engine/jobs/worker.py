"""The detached training worker: `python -m engine.jobs.worker ROOT RUN_ID` (started by engine.jobs.launcher.launch).

It beats a heartbeat from a thread of its own (a long step or evaluation never looks dead), runs the training,
and records any failure on the run. Under torchrun/accelerate only rank 0 writes to the store.
"""

from __future__ import annotations

import os

# Before the model libraries load: offline, no progress bars in the log, no tokenizer threads.
for _key, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("TQDM_DISABLE", "1"),
    ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
    ("TRANSFORMERS_VERBOSITY", "warning"),
):
    os.environ.setdefault(_key, _value)

import sys  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

HEARTBEAT_SECONDS = 5.0


def _beat(root: Path, run_id: int, stop: threading.Event) -> None:
    from engine.store import DB_NAME, open_db
    from engine.store import training as store

    db = open_db(root / DB_NAME, migrate=False)  # a connection of its own: never inside the trainer's writes
    try:
        while not stop.wait(HEARTBEAT_SECONDS):
            store.heartbeat(db, run_id)
    finally:
        db.close()


def main(argv: list[str]) -> int:
    from engine.project import open_project
    from engine.train.run import execute

    root, run_id = Path(argv[0]).resolve(), int(argv[1])
    is_main = int(os.environ.get("RANK", "0")) == 0
    project = open_project(root)
    stop = threading.Event()
    if is_main:
        threading.Thread(target=_beat, args=(root, run_id, stop), daemon=True, name="heartbeat").start()
    print(f"embtune worker pid {os.getpid()} run {run_id} in {root}", flush=True)
    try:
        result = execute(project, run_id, is_main=is_main, echo=True)
        print(f"run {run_id}: {result.get('status')} {result}", flush=True)
        return 0
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        stop.set()
        project.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
