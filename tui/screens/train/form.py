"""`s` on the Train screen: a new run's settings, prefilled from project.yaml, with the pre-flight beside them.

The pre-flight (engine.train.view.preflight: SQL, no torch) is recomputed a moment after the last change; a value the
engine refuses shows its message under the fields and blocks starting. Starting records and launches the run with
these settings (engine.train.view.start) and closes the dialog with its id.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Checkbox, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from engine.train import view as train_view
from engine.train.settings import LOSSES, PRECISIONS
from tui.errors import job_error_text
from tui.screens.train.text import plan_text
from tui.session import Session
from tui.widgets.footer import KeyFooter
from tui.widgets.notice import Notice

DEBOUNCE_SECONDS = 0.3
HELP = "enter or ctrl+s starts · tab moves · esc closes · empty max steps: epochs decide · empty length: fitted"
TEXT_FIELDS = ("base_model", "epochs", "max_steps", "batch_size", "learning_rate", "max_seq_length")
PLACEHOLDERS = {"max_steps": "epochs decide", "max_seq_length": "fitted to the data"}


class TrainForm(ModalScreen[int | None]):
    BINDING_GROUP_TITLE = "New run"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s",
            "start",
            "Start run",
            tooltip="Start a detached run with these settings",
            priority=True,
            id="train-form-start",
        ),
        Binding("escape", "close", "Close", tooltip="Start nothing", id="train-form-close"),
    ]
    DEFAULT_CSS = """
    TrainForm { align: center middle; }
    TrainForm #form { width: 120; max-width: 100%; height: auto; max-height: 100%; border: round $primary;
                      background: $surface; padding: 0 1; }
    TrainForm #form-title { text-style: bold; }
    TrainForm #form-body { height: auto; }
    TrainForm #form-fields { width: 44; height: auto; }
    TrainForm .field { height: 1; }
    TrainForm .field .caption { width: 17; color: $text-muted; }
    TrainForm .field Input, TrainForm .field Select { width: 1fr; }
    TrainForm #form-plan-box { width: 1fr; height: auto; max-height: 14; margin-left: 2; }
    TrainForm #form-plan { width: 1fr; height: auto; color: $text; }
    TrainForm #form-error { height: auto; color: $text-error; }
    TrainForm #form-help { color: $text-muted; height: auto; }
    """

    def __init__(self, session: Session, values: dict[str, Any]) -> None:
        super().__init__()
        self.session = session
        blank = {
            **dict.fromkeys(TEXT_FIELDS, ""),
            "loss": LOSSES[0],
            "precision": PRECISIONS[0],
            "hard_negatives": False,
        }
        self.initial = {**blank, **values}  # engine.train.view.form_values: project.yaml's
        self.valid = False
        self.start_when_valid = False  # enter came before the pre-flight of the last change
        self.pending = False  # a change waits for its pre-flight
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        v = self.initial
        with Vertical(id="form"):
            yield Label("New training run · settings from project.yaml", id="form-title", markup=False)
            with Horizontal(id="form-body"):
                with Vertical(id="form-fields"):
                    for name in TEXT_FIELDS[:5]:
                        yield self._field(name, Input(str(v[name]), id=f"f-{name}", compact=True, **self._hint(name)))
                    yield self._field("loss", Select.from_values(LOSSES, value=v["loss"], id="f-loss", compact=True))
                    yield self._field(
                        "hard_negatives",
                        Checkbox("use mined", bool(v["hard_negatives"]), id="f-hard_negatives", compact=True),
                    )
                    yield self._field(
                        "precision",
                        Select.from_values(PRECISIONS, value=v["precision"], id="f-precision", compact=True),
                    )
                    yield self._field(
                        "max_seq_length",
                        Input(
                            str(v["max_seq_length"]),
                            id="f-max_seq_length",
                            compact=True,
                            **self._hint("max_seq_length"),
                        ),
                    )
                with VerticalScroll(id="form-plan-box"):
                    yield Static("pre-flight…", id="form-plan", markup=False)
            yield Notice(id="form-error")
            yield Label(HELP, id="form-help", markup=False)
        yield KeyFooter()

    @staticmethod
    def _hint(name: str) -> dict[str, str]:
        return {"placeholder": PLACEHOLDERS[name]} if name in PLACEHOLDERS else {}

    @staticmethod
    def _field(name: str, widget: Any) -> Horizontal:
        # a Static, not a Label: dialogs stretch their Labels to the full width (app.tcss) so messages wrap
        caption = Static(train_view.FORM_FIELDS[name], markup=False, classes="caption")
        return Horizontal(caption, widget, classes="field")

    def on_mount(self) -> None:
        self.query_one("#f-epochs", Input).focus()
        self._preflight()

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: self.query_one(f"#f-{name}", Input).value for name in TEXT_FIELDS}
        for name in ("loss", "precision"):
            chosen = self.query_one(f"#f-{name}", Select).value
            out[name] = chosen if isinstance(chosen, str) else ""
        out["hard_negatives"] = self.query_one("#f-hard_negatives", Checkbox).value
        return out

    # --- the pre-flight, a moment after the last change -------------------------------------------------

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self) -> None:
        self.valid = False  # until the new values' pre-flight says otherwise
        self.refresh_bindings()
        if self._timer is not None:
            self._timer.stop()
        self.pending = True
        self._timer = self.set_timer(DEBOUNCE_SECONDS, self._preflight)

    def _preflight(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.pending = False
        self.run_worker(
            partial(self.session.call, train_view.preflight, self.values()),
            thread=True,
            exclusive=True,
            group="form-plan",
            exit_on_error=False,
        )

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker, state = event.worker, event.state
        if state == WorkerState.SUCCESS and worker.group == "form-plan":
            self.valid = True
            self.query_one("#form-plan", Static).update(plan_text(worker.result))
            self.query_one(Notice).say("")
            if self.start_when_valid:
                self.action_start()
        elif state == WorkerState.ERROR and worker.group == "form-plan":
            self.valid = self.start_when_valid = False
            self.query_one("#form-plan", Static).update("no pre-flight until the values are fixed")
            self.query_one(Notice).say(job_error_text(worker.error, "run"), "-error")
        elif state == WorkerState.SUCCESS and worker.group == "form-start":
            self.dismiss(worker.result)
        elif state == WorkerState.ERROR and worker.group == "form-start":
            self.query_one(Notice).say(job_error_text(worker.error, "run"), "-error")
        else:
            return
        self.refresh_bindings()

    # --- keys -------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return True if self.valid else None
        return True

    @on(Input.Submitted)
    def _submitted(self) -> None:
        if self.valid:
            self.action_start()
        elif self.pending:  # a change not checked yet: check it now, then start
            self.start_when_valid = True
            self._preflight()

    def action_start(self) -> None:
        self.start_when_valid = False
        if not self.valid:
            return
        self.run_worker(
            partial(self.session.call, train_view.start, self.values()),
            thread=True,
            exclusive=True,
            group="form-start",
            exit_on_error=False,
        )

    def action_close(self) -> None:
        self.dismiss(None)
