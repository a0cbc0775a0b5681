"""`x`: the project's LanceDB tables. Build a new one in the background (progress, rate, ETA, cancel), make a
table live, or roll back to the one built before."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Label, ProgressBar
from textual.worker import Worker, WorkerState, get_current_worker

from engine.index.build import list_indexes, make_live, rollback, status_text, suggested_model
from engine.project import open_project
from tui.errors import job_error_text
from tui.job_progress import JobProgress
from tui.notice import Notice
from tui.screens.confirm import ConfirmScreen
from tui.session import Session

FOLLOW_SECONDS = 2.0

EMPTY = (
    "No index yet. Press b to embed the corpus into a LanceDB table; it becomes the live index that search "
    "uses. Each build writes a new table, so the old one stays for rollback."
)


def build_and_list(
    root: Path, model: str, progress: Callable[[str, int, int], None], cancelled: Callable[[], bool]
) -> dict[str, Any]:
    """Build on a connection of its own, so the session's stays free for the screens meanwhile."""
    from engine.index.build import build_index  # numpy, LanceDB and the model libraries load only for a build

    project = open_project(root)
    try:
        return build_index(project, model, progress, cancelled).to_json()
    finally:
        project.close()


def rate_text(done: int, total: int, seconds: float) -> str:
    """'1,024/5,183 · 27.3/s · ETA 2:32' (no rate before the first items)."""
    text = f"{done:,}/{total:,}"
    if done and seconds > 0:
        rate = done / seconds
        left = int((total - done) / rate) if rate else 0
        text += f" · {rate:,.1f}/s · ETA {left // 60}:{left % 60:02d}"
    return text


def error_text(error: BaseException | None) -> str:
    return job_error_text(error, "build")


class BuildDialog(ModalScreen[str | None]):
    """Which model to embed the corpus with: base, a run id, or a model folder."""

    BINDING_GROUP_TITLE = "Build"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", tooltip="Build nothing", id="build-cancel"),
    ]
    DEFAULT_CSS = """
    BuildDialog { align: center middle; }
    #build { width: 70; max-width: 100%; height: auto; border: round $primary; background: $surface; padding: 0 1; }
    #build-help { color: $text-muted; margin-bottom: 1; }
    """

    def __init__(self, suggestion: str) -> None:
        super().__init__()
        self.suggestion = suggestion

    def compose(self) -> ComposeResult:
        with Vertical(id="build"):
            yield Label("Build a new index with model:", markup=False)
            yield Label(
                "base, a training run (7 or run-7) or a model folder · enter builds, esc cancels",
                id="build-help",
                markup=False,
            )
            yield Input(self.suggestion, id="build-model")
        yield Footer()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class IndexTable(DataTable[str]):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("live", "id", "model", "rows", "status", "search", "ANN r@10", "created", "table")

    def show(self, rows: list[dict[str, Any]]) -> None:
        selected = self.cursor_row
        self.clear()
        for r in rows:
            recall = f"{r['ann_recall']:.3f}" if r["ann_recall"] is not None else "–"
            self.add_row(
                "●" if r["live"] else "",
                str(r["id"]),
                r["model"],
                f"{r['rows']:,}",
                status_text(r),
                r["search"],
                recall,
                r["created_at"][:16].replace("T", " "),
                r["table"],
                key=str(r["id"]),
            )
        if rows:
            self.move_cursor(row=min(selected, len(rows) - 1))

    def selected_id(self) -> int | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return int(key) if key is not None else None


class IndexScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Index"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "b",
            "build",
            "Build",
            tooltip="Embed the corpus with a model into a new table, then make it live",
            id="index-build",
        ),
        Binding(
            "c",
            "cancel_build",
            "Cancel",
            tooltip="Stop the running build (asks first; it resumes later)",
            id="index-cancel",
        ),
        Binding(
            "l", "make_live", "Make live", tooltip="Search the selected table from now on (asks first)", id="index-live"
        ),
        Binding(
            "u",
            "rollback",
            "Rollback",
            tooltip="Switch back to the table built before the live one (asks)",
            id="index-rollback",
        ),
        Binding("r", "refresh", "Refresh", tooltip="Read the tables again", id="index-refresh"),
        Binding(
            "escape", "back", "Back", tooltip="Back to home (while a build runs: cancel it first)", id="index-back"
        ),
    ]
    DEFAULT_CSS = """
    #index-title { padding: 0 1; text-style: bold; }
    #index-message { height: auto; padding: 0 1; margin: 1 0 0 0; display: none; }
    #index-message.-error { color: $text-error; border-left: outer $error; }
    #index-message.-note { color: $text; border-left: outer $primary-muted; }
    #index-progress { height: 1; padding: 0 1; margin: 1 0; display: none; }
    #index-stage { width: 1fr; color: $text-muted; }
    #index-bar { width: auto; }
    IndexTable { height: 1fr; }
    """
    running: reactive[bool] = reactive(False, bindings=True)
    tables: reactive[list[dict[str, Any]]] = reactive(list, bindings=True, always_update=True)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._cancel = threading.Event()
        self._stage = ""
        self._stage_started = 0.0
        self._shown = False  # the first listing is drawn even when empty

    def compose(self) -> ComposeResult:
        yield Label("Index · loading…", id="index-title", markup=False)
        yield Notice(id="index-message")
        with Horizontal(id="index-progress"):
            yield Label("", id="index-stage", markup=False)
            yield ProgressBar(id="index-bar", show_eta=False)
        yield IndexTable(id="index-table")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()
        # a build started elsewhere (`embtune index` detached, another TUI) is followed by re-reading the list
        self.set_interval(FOLLOW_SECONDS, self._follow)

    def _follow(self) -> None:
        if not self.running:  # this screen's own build reports through its progress bar
            self.action_refresh()

    # --- the list ---------------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="index-load", exit_on_error=False)
    def _load(self) -> list[dict[str, Any]]:
        return self.session.call(list_indexes)

    def watch_tables(self, rows: list[dict[str, Any]]) -> None:
        self.query_one(IndexTable).show(rows)
        live = next((r for r in rows if r["live"]), None)
        title = (
            f"Index · live: {live['table']} ({live['model']}, {live['rows']:,} rows)"
            if live
            else ("Index · no live index")
        )
        self.query_one("#index-title", Label).update(f"{title} · {len(rows)} table(s)")

    def _say(self, text: str, kind: str = "") -> None:
        self.query_one(Notice).say(text, kind)

    # --- building ---------------------------------------------------------------------------------------

    def action_build(self) -> None:
        if not self.running:
            self._suggest()

    @work(thread=True, exclusive=True, group="index-suggest", exit_on_error=False)
    def _suggest(self) -> str:
        return self.session.call(suggested_model)

    def _start(self, model: str | None) -> None:
        if not model or self.running:
            return
        self._cancel.clear()
        self.running = True
        self._say("")
        self.query_one("#index-progress").display = True
        self.query_one(ProgressBar).update(total=None, progress=0)
        self._show("starting: loading the model…", 0, 0)
        self._run(model)

    @work(thread=True, exclusive=True, group="index-run", exit_on_error=False)
    def _run(self, model: str) -> dict[str, Any]:
        worker = get_current_worker()

        def progress(stage: str, done: int, total: int) -> None:
            self.post_message(JobProgress(stage, done, total))  # thread-safe; touching widgets here is not

        def cancelled() -> bool:
            return self._cancel.is_set() or worker.is_cancelled

        return build_and_list(self.session.project.root, model, progress, cancelled)

    def on_job_progress(self, message: JobProgress) -> None:
        if self.running:
            self._show(message.stage, message.done, message.total)
            self.query_one(ProgressBar).update(total=max(message.total, 1), progress=message.done)

    def _show(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self._stage, self._stage_started = stage, time.monotonic()
        counts = rate_text(done, total, time.monotonic() - self._stage_started) if total > 1 else ""
        self.query_one("#index-stage", Label).update(f"{stage} {counts}".strip())

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        group, state, worker = event.worker.group, event.state, event.worker
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if group == "index-load":
            if state == WorkerState.SUCCESS:
                self._listed(worker.result)
            elif state == WorkerState.ERROR:
                self._say(f"Could not read the tables: {worker.error}", "-error")
        elif group == "index-suggest" and state == WorkerState.SUCCESS:
            self.app.push_screen(BuildDialog(worker.result), callback=self._start)
        elif group == "index-run":
            self._finished(state, worker)
        elif group == "index-switch":
            if state == WorkerState.SUCCESS:
                self.notify(f"Live index: {worker.result['live']} ({worker.result['model']})", title="Index")
            elif state == WorkerState.ERROR:
                self._say(f"Not switched: {worker.error}", "-error")
            self.action_refresh()

    def _listed(self, rows: list[dict[str, Any]]) -> None:
        if rows != self.tables or not self._shown:  # the follow timer re-reads often; redraw only on change
            self.tables, self._shown = rows, True
        if not rows and not self.running:
            self._say(EMPTY, "-note")
        elif self.query_one(Notice).text == EMPTY:  # a build started elsewhere: the empty-state note no longer holds
            self._say("")

    def _finished(self, state: WorkerState, worker: Worker[Any]) -> None:
        self.running = False
        self._stage = ""
        self.query_one("#index-progress").display = False
        if state == WorkerState.SUCCESS:
            r = worker.result
            self._say(
                f"Built {r['table']}: {r['rows']:,} rows, {r['embedded']:,} embedded, "
                f"{r['skipped_unchanged']:,} unchanged copied, {r['resumed']:,} resumed, in {r['seconds']} s; "
                "it is live now.",
                "-note",
            )
        elif isinstance(worker.error, InterruptedError):
            self._say(
                "Build cancelled: the live index is unchanged; building the same model again resumes where it stopped.",
                "-note",
            )
        elif state == WorkerState.ERROR:
            self._say(error_text(worker.error), "-error")
        self.action_refresh()

    def action_cancel_build(self) -> None:
        if self.running:
            self.app.push_screen(
                ConfirmScreen(
                    "Cancel the running build?", "Finished batches are kept: building the same model resumes."
                ),
                callback=self._cancel_confirmed,
            )

    def _cancel_confirmed(self, yes: bool | None) -> None:
        if yes and self.running:
            self._cancel.set()
            self._show("cancelling after this batch…", 0, 0)

    # --- switching --------------------------------------------------------------------------------------

    def action_make_live(self) -> None:
        index_id = self.query_one(IndexTable).selected_id()
        row = next((r for r in self.tables if r["id"] == index_id), None)
        if row is None or row["live"]:
            return
        if row["status"] != "ready":
            self._say(f"{row['table']} is {row['status']}: only a complete table can go live.", "-error")
            return
        self.app.push_screen(
            ConfirmScreen(
                f"Make {row['table']} ({row['model']}) live?",
                "Search uses it from now on; the current table stays for rollback.",
            ),
            callback=lambda yes: self._switch(make_live, row["id"]) if yes else None,
        )

    def action_rollback(self) -> None:
        self.app.push_screen(
            ConfirmScreen("Roll back the live index?", "Search goes back to the table built before the live one."),
            callback=lambda yes: self._switch(rollback) if yes else None,
        )

    @work(thread=True, exclusive=True, group="index-switch", exit_on_error=False)
    def _switch(self, func: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        return self.session.call(func, *args)

    # --- keys -------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "build":
            return None if self.running else True
        if action == "cancel_build":
            return True if self.running else None
        if action == "make_live":
            return True if any(r["status"] == "ready" and not r["live"] for r in self.tables) else None
        if action == "rollback":
            return True if sum(r["status"] == "ready" for r in self.tables) > 1 else None
        return True

    def action_back(self) -> None:
        if self.running:
            self.action_cancel_build()
        else:
            self.dismiss(None)
