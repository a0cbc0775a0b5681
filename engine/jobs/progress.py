"""Progress and cancellation for long engine work (gate, evaluation, mining, indexing).

Work reports `(stage, done, total)`; the caller (a CLI progress bar, a TUI screen's worker) may pass `cancelled`,
polled at every report so the work stops at its next step.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]


def cancellable(progress: Progress | None, cancelled: Callable[[], bool], what: str) -> Progress:
    """A progress callback that raises InterruptedError("<what> cancelled") once `cancelled()` turns true."""

    def report(stage: str, done: int, total: int) -> None:
        if cancelled():
            raise InterruptedError(f"{what} cancelled")
        if progress:
            progress(stage, done, total)

    return report
