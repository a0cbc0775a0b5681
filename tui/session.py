"""The open project, shared by the screens' worker threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine.project import Project, open_project

T = TypeVar("T")


class Session:
    """One project and one SQLite connection; the lock lets one worker thread at a time use the connection,
    so a count never lands inside another worker's import transaction."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._lock = threading.Lock()

    @classmethod
    def open(cls, root: Path) -> Session:
        return cls(open_project(root))

    def call(self, func: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run an engine function `func(project, *args, **kwargs)` under the lock (from a worker thread)."""
        with self._lock:
            return func(self.project, *args, **kwargs)

    def close(self) -> None:
        with self._lock:
            self.project.close()
