"""The review screen at 100,000 pairs: time to open, and keypress → next item rendered.

    .venv/bin/python bench/review.py [--pairs 100000] [--presses 300] [--project DIR] [--json FILE]

Builds a project in a temporary folder (or reuses --project): a synthetic BEIR folder of `--pairs` queries, one
judged passage each over pairs/5 documents of ~60 words, imported with engine.ingest.importing.import_beir, plus as
many mined negatives (scored, 2% unscored) written with plain SQL as a miner would.

Then, in one process, the TUI runs headless under Pilot at 120x40 and every frame the app composes is
timestamped (App._display is called once the compositor has rendered the changed lines, so a frame there is the
moment the terminal would be written). Keys are sent straight to the driver, without Pilot's idle waits, and the
clock runs from sending a key to the first frame showing the expected item in the detail pane:

- open: `v` on the home screen → the review screen showing its first pair (targets: < 1 s);
- accept/reject: `a` and `x` alternately → the next pair shown, each one a real write (target: median < 30 ms);
- move: `j` → the next pair shown (no write);
- triage: `tab` → the negatives queue showing its closest-scored negative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from engine.ingest import importing  # noqa: E402
from engine.project import init_project, open_project  # noqa: E402
from engine.store import negatives as store_negatives  # noqa: E402
from engine.store import review as store_review  # noqa: E402
from tui.app import EmbtuneApp  # noqa: E402
from tui.screens.review import ReviewScreen  # noqa: E402

SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pu", "ga", "he")
ENDINGS = ("ram", "lin", "dor", "pex", "tus", "mol", "vin", "sar", "kel", "bot", "fen", "gur")
WORDS = [a + b for a in SYLLABLES for b in ENDINGS]
TIMEOUT_S = 10.0


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_beir(folder: Path, pairs: int) -> Path:
    rng = random.Random(7)
    docs = max(pairs // 5, 1)
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as f:
        for i in range(docs):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": _sentence(rng, 60)}) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for i in range(pairs):
            f.write(json.dumps({"_id": f"q{i}", "text": _sentence(rng, 8)}) + "\n")
    rows = "".join(f"q{i}\td{i % docs}\t1\n" for i in range(pairs))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def build_project(folder: Path, pairs: int) -> Path:
    started = time.perf_counter()
    project = init_project(folder / "project")
    importing.import_beir(project, write_beir(folder / "beir", pairs))
    rng = random.Random(11)
    docs = max(pairs // 5, 1)
    negatives = []
    for i in range(pairs):
        positive = rng.random()
        score = None if i % 50 == 0 else positive - rng.random() * 0.5
        chunk, positive_score = f"d{(i + 7) % docs}", None if score is None else positive
        negatives.append(store_negatives.NegativeRow(f"q{i}", chunk, score, positive_score, "bench", "{}"))
    store_negatives.insert_negatives(project.db, negatives)
    project.close()
    print(f"built {pairs:,} pairs and {pairs:,} negatives in {time.perf_counter() - started:.1f} s", flush=True)
    return project.root


class Frames:
    """Timestamps every composed frame with the id of the item the review screen shows at that moment."""

    def __init__(self, app: EmbtuneApp) -> None:
        self.app = app
        self.last: tuple[float, tuple[str, int] | None] = (0.0, None)
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is not None:
                self.last = (time.perf_counter(), self.shown())

        app._display = display  # type: ignore[method-assign]

    def shown(self) -> tuple[str, int] | None:
        screen = self.app.screen
        item = getattr(screen, "item", None) if isinstance(screen, ReviewScreen) else None
        return (item.target, item.id) if item is not None else None

    async def press(self, key: str, expect: tuple[str, int]) -> float:
        """Seconds from sending `key` to the first frame showing `expect`."""
        char = key if len(key) == 1 else None
        started = time.perf_counter()
        self.app._driver.send_message(events.Key(key, char))  # type: ignore[union-attr]
        while time.perf_counter() - started < TIMEOUT_S:
            at, shown = self.last
            if at > started and shown == expect:
                return at - started
            await asyncio.sleep(0.0002)
        raise TimeoutError(f"{key!r}: {expect} never shown; showing {self.shown()}")


def _stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {"n": len(ms), "median_ms": statistics.median(ms), "p95_ms": ms[int(0.95 * (len(ms) - 1))],
            "max_ms": ms[-1]}  # fmt: skip


def _first_in_queue(project: Any, target: store_review.Target) -> int:
    """The id the review screen opens on: the first row of the unfiltered queue."""
    return int(store_review.queue_rows(project.db, target, store_review.QueueFilter(), limit=1)[0][0])


async def measure(root: Path, presses: int) -> dict[str, Any]:
    app = EmbtuneApp(root)
    results: dict[str, Any] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        frames = Frames(app)
        project = open_project(root)
        first = _first_in_queue(project, "pair")
        results["open_s"] = await frames.press("v", ("pair", first))
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        await pilot.pause()
        decide: list[float] = []
        for i in range(presses):
            queue = screen.queue
            expect = ("pair", queue.rows[queue.cursor + 1].id)
            decide.append(await frames.press("a" if i % 2 == 0 else "x", expect))
            await asyncio.sleep(0.005)  # a human's fastest is ~100 ms between keys; leave the loop a breath
        move: list[float] = []
        for _ in range(presses):
            queue = screen.queue
            move.append(await frames.press("j", ("pair", queue.rows[queue.cursor + 1].id)))
            await asyncio.sleep(0.005)
        results["accept_reject"] = _stats(decide)
        results["move"] = _stats(move)
        closest = _first_in_queue(project, "negative")  # the smallest margin: triage order
        results["triage_open_s"] = await frames.press("tab", ("negative", closest))
        results["events_written"] = len(store_review.events(project.db))
        project.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--presses", type=int, default=300)
    parser.add_argument("--project", type=Path, help="an existing project to measure (default: build one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.project or build_project(Path(tmp), args.pairs)
        results = asyncio.run(measure(root, args.presses))
    counts = f"{args.pairs:,} pairs" if args.project is None else str(args.project)
    print(f"review screen, {counts}, 120x40 headless, {args.presses} presses per row")
    print(f"| {'what':<34} | {'median ms':>9} | {'p95 ms':>7} | {'max ms':>7} |")
    print(f"|{'-' * 36}|{'-' * 11}|{'-' * 9}|{'-' * 9}|")
    print(f"| {'open (v → first pair shown)':<34} | {results['open_s'] * 1000:>9.0f} | {'':>7} | {'':>7} |")
    for name, key in (("a / x → next pair (a write each)", "accept_reject"), ("j → next pair", "move")):
        s = results[key]
        print(f"| {name:<34} | {s['median_ms']:>9.1f} | {s['p95_ms']:>7.1f} | {s['max_ms']:>7.1f} |")
    print(f"| {'tab → triage queue shown':<34} | {results['triage_open_s'] * 1000:>9.0f} | {'':>7} | {'':>7} |")
    print(f"events written: {results['events_written']:,}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
