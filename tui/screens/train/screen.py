"""`t`: training. Every training run in a table, the selected one's curves, progress and log; `s` opens a new run's
settings with its pre-flight, `o` overlays another run's curves, `c` cancels (confirm), `r` resumes a run that left a
checkpoint. Runs are detached processes: this screen only watches the store, so it follows runs started anywhere
(`embtune train` in another shell, another TUI) within a poll or two.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Label, RichLog, Static
from textual.worker import Worker, WorkerState

from engine.project import Project
from engine.train import view as train_view
from tui.errors import job_error_text
from tui.screens.confirm import ConfirmScreen
from tui.screens.train.form import TrainForm
from tui.screens.train.text import evals_text, evals_title, status_line, title
from tui.screens.train.widgets import RunsTable
from tui.session import Session
from tui.widgets.footer import KeyFooter
from tui.widgets.notice import Notice
from tui.widgets.train_chart import Curves, TrainChart, eval_label

POLL_SECONDS = 0.5  # one activity read per tick: a run started elsewhere shows within about a second
TALL = 36  # screen rows from which the loss plot gets its full height
EMPTY = (
    "No training run yet. Press s to choose its settings (prefilled from project.yaml) beside the pre-flight "
    "(training rows, hard negatives, steps, evaluations) and start one. Runs are detached: they keep going if you "
    "quit embtune or lose SSH."
)


def cancel_run(project: Project, run_id: int) -> str:
    from engine.jobs.launcher import cancel

    return cancel(project, run_id)


def resume_run(project: Project, run_id: int) -> int:
    from engine.train.run import resume_training

    return resume_training(project, run_id)


class TrainScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Train"
    AUTO_FOCUS = "#train-runs"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-narrow"), (110, "-wide")]
    DEFAULT_CSS = """
    TrainScreen #train-title { text-style: bold; padding: 0 1; }
    TrainScreen #train-status { padding: 0 1; color: $text-muted; height: auto; }
    TrainScreen #train-message { padding: 0 1; height: auto; }
    TrainScreen #train-message.-error { color: $text-error; }
    TrainScreen #train-message.-note { color: $text; }
    TrainScreen #train-chart { padding: 0 1; border: round $primary 50%; }
    TrainScreen #train-bottom { height: 1fr; }
    TrainScreen #train-runs { width: 70; height: 1fr; border: round $primary 50%; }
    TrainScreen #train-side { width: 1fr; }
    TrainScreen.-narrow #train-runs { width: 1fr; }
    TrainScreen #train-evals { height: auto; max-height: 15; border: round $primary 50%; padding: 0 1; }
    TrainScreen #train-log { height: 1fr; border: round $primary 50%; }
    TrainScreen.-narrow #train-side { display: none; }
    TrainScreen.-narrow.-log #train-side { display: block; width: 1fr; }
    TrainScreen.-narrow.-log #train-runs { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "s",
            "start",
            "New run",
            tooltip="A new run's settings (from project.yaml) beside its pre-flight, then start it",
            id="train-start",
        ),
        Binding(
            "o",
            "overlay",
            "Overlay",
            tooltip="Draw the highlighted run's curves over the selected one's (o on it again: clear)",
            id="train-overlay",
        ),
        Binding(
            "c",
            "cancel",
            "Cancel",
            tooltip="Stop the selected run at its next step or phase, saving a checkpoint (asks first)",
            id="train-cancel",
        ),
        Binding(
            "r",
            "resume",
            "Resume",
            tooltip="Continue the selected run from its last checkpoint as a child run",
            id="train-resume",
        ),
        Binding(
            "l",
            "worker_log",
            "Worker log",
            tooltip="Show the selected run's worker log (warnings, tracebacks)",
            id="train-worker-log",
        ),
        Binding("escape", "back", "Back", tooltip="Back to home; a running run keeps going", id="train-back"),
    ]
    run: reactive[dict[str, Any] | None] = reactive(None, bindings=True, always_update=True, init=False)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.run_id: int | None = None  # the selected run (enter), drawn in full
        self.overlay_id: int | None = None
        self.rows: list[dict[str, Any]] = []
        self.seen: set[int] | None = None  # run ids listed so far (None: not listed yet)
        self.token: tuple[Any, ...] | None = None  # the store's activity when last read
        self.cancel_asked: set[int] = set()  # cancels confirmed here: "cancelling…" before the store says so
        self.last_step = -1
        self.last_event = 0
        self.progress: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Label("Train · loading…", id="train-title", markup=False)
        yield Label("", id="train-status", markup=False)
        yield Notice(id="train-message")
        yield TrainChart(id="train-chart")
        with Horizontal(id="train-bottom"):
            yield RunsTable(id="train-runs")
            with Vertical(id="train-side"):
                yield Static("", id="train-evals", markup=False)
                yield RichLog(id="train-log", markup=False, wrap=True, max_lines=2000)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#train-chart").border_title = "loss · learning rate · eval"
        self.query_one("#train-runs").border_title = "runs · enter shows · o overlays"
        self.query_one("#train-evals").border_title = "evaluations"
        self.query_one("#train-log").border_title = "log"
        self._pick()
        self.set_interval(POLL_SECONDS, self._tick)

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(TrainChart).set_rows(8 if event.size.height >= TALL else 4)

    # --- following every run, and the selected one ------------------------------------------------------

    @work(thread=True, exclusive=True, group="train-pick", exit_on_error=False)
    def _pick(self) -> int | None:
        return self.session.call(train_view.pick_run)

    def _tick(self) -> None:
        if not any(w.node is self and w.group in ("train-watch", "train-load") and w.is_running for w in self.workers):
            self._watch(self.run_id, max(-1, self.last_step - 1), self.last_event, self.token)

    @work(thread=True, group="train-watch", exit_on_error=False)
    def _watch(
        self, run_id: int | None, after_step: int, after_event: int, token: tuple[Any, ...] | None
    ) -> tuple[int | None, train_view.Watch]:
        return run_id, self.session.call(train_view.watch, run_id, after_step, after_event, token)

    def _watched(self, run_id: int | None, found: train_view.Watch) -> None:
        if run_id != self.run_id:  # selected another run meanwhile: its own load covers it; read again next tick
            self.token = None
            return
        self.token = found.token
        if found.rows is not None:
            self._listed(found.rows)  # may select a new run: then the update below is the old one's
        if found.update is not None and run_id == self.run_id:
            self.show(found.update)

    def _listed(self, rows: list[dict[str, Any]]) -> None:
        ids = {r["id"] for r in rows}
        new = ids - self.seen if self.seen is not None else set()
        self.seen, self.rows = ids, rows
        if new:  # started elsewhere (or by s): follow it
            self.attach(max(new))
        elif self.run_id is None and rows and self.query_one(Notice).text == EMPTY:
            self.attach(rows[0]["id"])
        self._draw_table()
        if self.run is not None:
            self._explain(self.run)  # whether r can resume it is known from the listing
        self.refresh_bindings()
        if self.overlay_id is not None and self._row(self.overlay_id, {}).get("status") in train_view.ACTIVE:
            self._load_overlay(self.overlay_id)  # a live run overlaid keeps growing

    def _draw_table(self) -> None:
        self.query_one(RunsTable).show(self.rows, self.run_id, self.overlay_id)

    def _row(self, run_id: int | None, default: Any = None) -> Any:
        return next((r for r in self.rows if r["id"] == run_id), default)

    def attach(self, run_id: int | None) -> None:
        """Show `run_id` in full: its curves, evaluations, log and status."""
        self.run_id, self.last_step, self.last_event, self.progress = run_id, -1, 0, {}
        row = self._row(run_id)
        self.query_one(TrainChart).reset(run_id, train_view.eval_role(row["run"]) if row else "select")
        self.query_one("#train-log", RichLog).clear()
        self.query_one("#train-evals", Static).update("")
        if self.overlay_id == run_id:
            self._set_overlay(None)
        if run_id is None:
            self.query_one("#train-title", Label).update("Train · no runs yet")
            self.query_one("#train-status", Label).update("")
            self._say(EMPTY, "-note")
            self.run = None
            return
        self._say("")
        table = self.query_one(RunsTable)
        self._draw_table()
        table.move_to(run_id)
        self._load(run_id)

    @work(thread=True, exclusive=True, group="train-load", exit_on_error=False)
    def _load(self, run_id: int) -> tuple[int, train_view.TrainUpdate]:
        return run_id, self.session.call(train_view.poll, run_id)

    def show(self, update: train_view.TrainUpdate) -> None:
        run = update.run
        if run is None:
            return
        chart = self.query_one(TrainChart)
        chart.set_role(train_view.eval_role(run))
        if update.metrics:
            self.last_step = max(self.last_step, max(step for _, _, step, _ in update.metrics))
            chart.add(update.metrics)
        seen = self.last_event  # two reads may overlap (a load and a watch tick): each event is shown once
        for event in update.events:
            if event["id"] <= seen:
                continue
            self.last_event = max(self.last_event, event["id"])
            if event["kind"] in ("progress", "train_begin", "phase"):
                self.progress = {**self.progress, **event["payload"]}
            elif event["kind"] == "preflight":
                self.progress["preflight"] = event["payload"]
        log = self.query_one("#train-log", RichLog)
        for event_id, line in update.log:
            if event_id > seen:
                log.write(line)
        chart.max_steps = train_view.max_steps(run)
        self.run = run

    def watch_run(self, run: dict[str, Any] | None) -> None:
        if run is None:
            return
        role = train_view.eval_role(run)
        self._header()
        chart = self.query_one(TrainChart)
        chart.border_title = f"loss · learning rate · {eval_label(role)}" if role else "loss · learning rate"
        evals = self.query_one("#train-evals", Static)
        evals.border_title = evals_title(run, role)
        points = chart.points("eval")
        evals.update(evals_text(points, role) if points else "no evaluation yet")
        self._explain(run)

    def _header(self) -> None:
        run = self.run
        if run is None:
            return
        cancelling = self._cancelling(run)
        self.query_one("#train-title", Label).update(title(run, cancelling))
        self.query_one("#train-status", Label).update(status_line(run, self.progress, cancelling))

    def _cancelling(self, run: dict[str, Any]) -> bool:
        return run["status"] in train_view.ACTIVE and (run["id"] in self.cancel_asked or train_view.cancelling(run))

    def _explain(self, run: dict[str, Any]) -> None:
        """The notice for a stopped run: why it stopped, and whether r can resume it."""
        if run["status"] not in train_view.STOPPED:
            if self.query_one(Notice).text.startswith(f"Run {run['id']} "):
                self._say("")
            return
        row = self._row(run["id"])
        blocker = row["resume_blocker"] if row else "it is not listed yet"
        why = f": {run['error']}" if run["error"] else ""
        then = (
            "Press r to resume it from its last checkpoint, or l for the worker log."
            if blocker is None
            else f"It cannot be resumed ({blocker}): press s to start a new run, or l for the worker log."
        )
        self._say(
            f"Run {run['id']} {run['status']}{why}. {then}", "-error" if run["status"] != "cancelled" else "-note"
        )

    def _say(self, text: str, kind: str = "") -> None:
        self.query_one(Notice).say(text, kind)

    # --- selection and overlay --------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#train-runs")
    def _selected(self, event: DataTable.RowSelected) -> None:
        run_id = int(event.row_key.value) if event.row_key.value is not None else None
        if run_id is not None and run_id != self.run_id:
            self.attach(run_id)

    def action_overlay(self) -> None:
        highlighted = self.query_one(RunsTable).cursor_id()
        if highlighted is None or highlighted in (self.run_id, self.overlay_id):
            self._set_overlay(None)
        else:
            self._set_overlay(highlighted)
            self._load_overlay(highlighted)

    def _set_overlay(self, run_id: int | None) -> None:
        self.overlay_id = run_id
        if run_id is None:
            self.query_one(TrainChart).set_overlay(None)
        self._draw_table()

    @work(thread=True, exclusive=True, group="train-overlay", exit_on_error=False)
    def _load_overlay(self, run_id: int) -> tuple[int, train_view.TrainUpdate]:
        return run_id, self.session.call(train_view.poll, run_id)

    def _overlaid(self, run_id: int, update: train_view.TrainUpdate) -> None:
        if run_id != self.overlay_id or update.run is None:
            return
        curves = Curves(run_id, train_view.eval_role(update.run))
        curves.add(update.metrics)
        self.query_one(TrainChart).set_overlay(curves)

    # --- workers ending ---------------------------------------------------------------------------------

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        group, state = event.worker.group, event.state
        if state == WorkerState.ERROR:
            self._say(job_error_text(event.worker.error, _JOBS.get(group, "screen")), "-error")
            return
        if state != WorkerState.SUCCESS:
            return
        result = event.worker.result
        if group == "train-pick":
            self.attach(result)
        elif group == "train-watch":
            self._watched(*result)
        elif group == "train-load":
            run_id, update = result
            if run_id == self.run_id:
                self.show(update)
        elif group == "train-overlay":
            self._overlaid(*result)
        elif group == "train-values":
            self.app.push_screen(TrainForm(self.session, result), callback=self._started)
        elif group == "train-resume":
            self.notify(f"Run {result} started in the background: it resumes run {self.run_id}", title="Train")
            self.token = None  # list at once: the new run is followed when it shows
        elif group == "train-cancel":
            self.notify(f"Run {self.run_id}: {result}; it stops at its next step or phase", title="Train")
            self.token = None
        elif group == "train-worker-log":
            log = self.query_one("#train-log", RichLog)
            log.write("── worker log ──")
            for line in result:
                log.write(line)

    # --- actions ----------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.run is not None and self.run["status"] in train_view.ACTIVE

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return None if any(r["status"] in train_view.ACTIVE for r in self.rows) else True
        if action == "cancel":
            return True if self.active and self.run and not self._cancelling(self.run) else None
        if action == "resume":
            row = self._row(self.run_id)
            return True if row is not None and row["resume_blocker"] is None else None
        if action in ("worker_log", "overlay"):
            return True if self.run is not None else None
        return True

    def action_start(self) -> None:
        self._values()

    @work(thread=True, exclusive=True, group="train-values", exit_on_error=False)
    def _values(self) -> dict[str, Any]:
        return self.session.call(train_view.form_values)

    def _started(self, run_id: int | None) -> None:
        if run_id is not None:
            self.notify(f"Run {run_id} started in the background", title="Train")
            self.token = None  # list at once: the new run is followed when it shows

    def action_cancel(self) -> None:
        if not self.active or self.run_id is None:
            return
        self.app.push_screen(
            ConfirmScreen(
                f"Cancel run {self.run_id}?",
                "It stops at its next training step (saving a checkpoint) or after its current phase; r resumes "
                "from a checkpoint if one was saved.",
            ),
            callback=self._cancel_confirmed,
        )

    def _cancel_confirmed(self, yes: bool | None) -> None:
        if yes and self.run_id is not None:
            self.cancel_asked.add(self.run_id)
            self._header()  # "cancelling…" now: the worker may take a few seconds to honour it
            self.refresh_bindings()
            self._draw_table_cancelling(self.run_id)
            self._cancel(self.run_id)

    def _draw_table_cancelling(self, run_id: int) -> None:
        self.rows = [{**r, "cancelling": True} if r["id"] == run_id else r for r in self.rows]
        self._draw_table()

    @work(thread=True, exclusive=True, group="train-cancel", exit_on_error=False)
    def _cancel(self, run_id: int) -> str:
        return self.session.call(cancel_run, run_id)

    def action_resume(self) -> None:
        if self.run_id is not None and self.check_action("resume", ()):
            self._resume(self.run_id)

    @work(thread=True, exclusive=True, group="train-resume", exit_on_error=False)
    def _resume(self, run_id: int) -> int:
        return self.session.call(resume_run, run_id)

    def action_worker_log(self) -> None:
        if self.has_class("-narrow"):
            self.toggle_class("-log")  # no room beside the table: the log takes its place until l again
            if not self.has_class("-log"):
                return
        if self.run_id is not None:
            self._worker_log(self.run_id)

    @work(thread=True, exclusive=True, group="train-worker-log", exit_on_error=False)
    def _worker_log(self, run_id: int) -> list[str]:
        return self.session.call(train_view.worker_log, run_id)

    def action_back(self) -> None:
        self.dismiss(None)


_JOBS = {  # worker group → what failed, for the notice
    "train-cancel": "cancel",
    "train-resume": "resume",
    "train-values": "new run",
    "train-worker-log": "worker log",
}
