"""The TUI's CPU while it sits idle on each screen: the goal is under 2% of one core.

    .venv/bin/python bench/tui_idle.py [--project DIR] [--seconds 5] [--size 120x40]

The app runs headless (Textual's `run_test`) in this process; after a screen opens and its loads finish, the
process's CPU time (every thread: the event loop, timers, workers) is read over `--seconds` of wall time with no
input. Without --project it uses a small project built here (a BEIR folder, no model needed). A screen that polls
the store too often, or a timer that redraws for nothing, shows up here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, quiet_environment

SCREENS = {"home": [], "gate": ["g"], "data": ["m"], "review": ["v"], "train": ["t"], "evaluate": ["e"],
           "index": ["x"], "search": ["slash"]}  # fmt: skip


def small_project(folder: Path) -> Path:
    from engine.ingest import importing
    from engine.project import init_project
    from tests.projects import write_beir

    project = init_project(folder / "project")
    importing.import_beir(project, write_beir(folder / "beir"))
    project.close()
    return project.root


async def idle_cpu(root: Path, keys: list[str], seconds: float, size: tuple[int, int]) -> float:
    """Percent of one core the app used over `seconds` of idle time on the screen `keys` open."""
    from tui.app import EmbtuneApp

    app = EmbtuneApp(root)
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        for key in keys:
            await pilot.press(key)
            await app.workers.wait_for_complete()
        await asyncio.sleep(3.0)  # first loads, first timers, layout settling: not idle yet
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        return 100 * (time.process_time() - cpu) / (time.monotonic() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", default="120x40")
    args = parser.parse_args()
    quiet_environment()
    size = tuple(int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.project or small_project(Path(tmp))
        figures = {}
        for name, keys in SCREENS.items():
            figures[name] = round(asyncio.run(idle_cpu(root, keys, args.seconds, size)), 2)  # type: ignore[arg-type]
            log(f"{name}: {figures[name]:.2f}% of a core idle")
    print(json.dumps({"idle_cpu_percent": figures, "seconds": args.seconds, "goal_percent": 2.0}, indent=2))


if __name__ == "__main__":
    main()
