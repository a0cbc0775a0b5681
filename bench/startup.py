"""Startup times a user feels: `embtune --help`, `embtune status DIR` and the TUI's first frame.

    .venv/bin/python bench/startup.py [--runs 5] [--project DIR]

The TUI runs for real (`embtune open DIR`) on a pseudo-terminal of 120x40, timed from process start to the
first frame reaching the terminal (the home screen's panels drawn) and to the counts being shown (loaded in a
worker after the first frame). Without --project it builds one in a temporary folder: from sample_project/
when that exists, else from a small BEIR folder written here.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EMBTUNE = str(BIN / "embtune")
FIRST_FRAME_MARK = b"Readiness"  # a panel title drawn in the first frame
COUNTS_MARK = b" as of "  # the counts panel's subtitle, set once the counts arrive
TIMEOUT_S = 30.0


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def tui_times(root: Path) -> tuple[float, float]:
    """Seconds from spawning `embtune open` to the first frame and to the counts, read off a pty."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none"}
    start = time.perf_counter()
    proc = subprocess.Popen([EMBTUNE, "open", str(root)], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    output, first, counted = b"", None, None
    try:
        while counted is None and time.perf_counter() - start < TIMEOUT_S:
            if select.select([master], [], [], 0.01)[0]:
                output += os.read(master, 1 << 16)
            now = time.perf_counter() - start
            first = first if first is not None or FIRST_FRAME_MARK not in output else now
            counted = now if first is not None and COUNTS_MARK in output else None
        if first is None or counted is None:
            raise RuntimeError(f"no frame within {TIMEOUT_S} s; output ends with {output[-400:]!r}")
        os.write(master, b"\x11")  # ctrl+q
        _drain_until_exit(master, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return first, counted


def _drain_until_exit(master: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.perf_counter() + 10
    while proc.poll() is None and time.perf_counter() < deadline:
        if select.select([master], [], [], 0.05)[0]:
            try:
                os.read(master, 1 << 16)
            except OSError:
                break
    proc.wait(timeout=5)


def make_project(folder: Path) -> Path:
    root = folder / "project"
    sample = ROOT / "sample_project"
    if (sample / "project.yaml").is_file():
        subprocess.run([EMBTUNE, "init", str(root), "--from", str(sample)], check=True, capture_output=True)
        return root
    beir = write_beir(folder / "beir", docs=2000)
    subprocess.run([EMBTUNE, "init", str(root)], check=True, capture_output=True)
    subprocess.run([EMBTUNE, "import", str(root), "--beir", str(beir)], check=True, capture_output=True)
    return root


def write_beir(folder: Path, docs: int) -> Path:
    (folder / "qrels").mkdir(parents=True)
    lines = [json.dumps({"_id": f"d{i}", "title": f"Doc {i}", "text": f"Passage {i} on claims."}) for i in range(docs)]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    queries = [json.dumps({"_id": f"q{i}", "text": f"question {i}"}) for i in range(docs)]
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n")
    for split, ids in (("train", range(0, docs - 80)), ("test", range(docs - 80, docs - 40)),
                       ("gate", range(docs - 40, docs))):  # fmt: skip
        rows = "".join(f"q{i}\td{i}\t1\n" for i in ids)
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def row(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"| {name:<38} | {statistics.median(ms):>8.0f} | {min(ms):>6.0f} | {max(ms):>6.0f} |"


def measure(runs: int, fn: Callable[[], float]) -> list[float]:
    fn()  # warm the file cache; the first run is not counted
    return [fn() for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--project", type=Path, help="an existing project (default: build one in a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.project or make_project(Path(tmp))
        status = json.loads(subprocess.run([EMBTUNE, "status", str(root), "--json"], check=True,
                                           capture_output=True, text=True).stdout)  # fmt: skip
        python = [sys.executable, "-c", "pass"]
        textual = [sys.executable, "-c", "import textual.app"]
        tui = [tui_times(root) for _ in range(args.runs + 1)][1:]
        rows = [
            row("python -c pass (floor)", measure(args.runs, lambda: timed(python))),
            row("python -c 'import textual.app'", measure(args.runs, lambda: timed(textual))),
            row("embtune --help", measure(args.runs, lambda: timed([EMBTUNE, "--help"]))),
            row("embtune status DIR", measure(args.runs, lambda: timed([EMBTUNE, "status", str(root)]))),
            row("TUI first frame (embtune open DIR)", [first for first, _ in tui]),
            row("TUI counts shown", [counted for _, counted in tui]),
        ]
    size = f"{status['documents']:,} documents, {status['chunks']:,} chunks, {status['pairs']:,} pairs"
    print(f"project: {size}; median of {args.runs} runs after one warm-up, wall time from process start")
    print(f"| {'what':<38} | {'median ms':>8} | {'min':>6} | {'max':>6} |")
    print(f"|{'-' * 40}|{'-' * 11}|{'-' * 8}|{'-' * 8}|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
