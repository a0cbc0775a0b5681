"""Export (from the Index screen, `e`): a model as a sentence-transformers folder with its model card, as
`embtune export DIR RUN DEST` writes it. The dialog shows the card before anything is written, then the result."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static
from textual.worker import Worker, WorkerState

from engine.models.export import card_preview, export_model
from tui.errors import job_error_text
from tui.session import Session
from tui.widgets.footer import KeyFooter


def default_destination(root: Path, model: str) -> str:
    """exports/<model> inside the project: a new folder export may write."""
    name = model.strip().rstrip("/").replace("/", "_") or "model"
    if name.isdigit():
        name = f"run-{name}"
    return str(root / "exports" / name)


def exported_text(result: dict[str, Any]) -> str:
    return (
        f"Exported {result['model']} to {result['dest']} ({len(result['files'])} files); "
        f"load it with SentenceTransformer({result['dest']!r})."
    )


class ExportDialog(ModalScreen[dict[str, Any] | None]):
    BINDING_GROUP_TITLE = "Export"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s", "export", "Export", tooltip="Write the model folder and its card", priority=True, id="export-run"
        ),
        Binding("escape", "close", "Close", tooltip="Close (an export already written stays)", id="export-close"),
    ]
    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    #export { width: 100; max-width: 100%; height: 90%; border: round $accent; background: $surface; padding: 0 1; }
    #export Label { margin-top: 1; color: $text-muted; }
    #export-card { height: 1fr; border: round $primary-muted; padding: 0 1; }
    #export-result { height: auto; margin-top: 1; }
    #export-result.-error { color: $text-error; }
    #export-result.-done { color: $text-success; }
    """
    busy: reactive[bool] = reactive(False, bindings=True)

    def __init__(self, session: Session, model: str) -> None:
        super().__init__()
        self.session = session
        self.model = model
        self.result: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        root = self.session.project.root
        with Vertical(id="export") as box:
            box.border_title = "Export a model"
            yield Label("Model: base, a training run (7 or run-7) or a folder · enter shows its card")
            yield Input(self.model, id="export-model")
            yield Label("Destination: a new or empty folder · ctrl+s exports")
            yield Input(default_destination(root, self.model), id="export-dest")
            with VerticalScroll(id="export-card") as card:
                card.border_title = "Model card (README.md)"
                yield Static("reading…", id="export-card-text", markup=False)
            yield Static("", id="export-result", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#export-dest", Input).focus()
        self._preview(self.model)

    @on(Input.Submitted, "#export-model")
    def _model_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#export-dest", Input).value = default_destination(self.session.project.root, event.value)
        self._preview(event.value.strip())

    @on(Input.Submitted, "#export-dest")
    def _dest_submitted(self) -> None:
        self.action_export()

    @work(thread=True, exclusive=True, group="export-preview", exit_on_error=False)
    def _preview(self, model: str) -> dict[str, Any]:
        return self.session.call(card_preview, model)

    def action_export(self) -> None:
        model = self.query_one("#export-model", Input).value.strip()
        dest = self.query_one("#export-dest", Input).value.strip()
        if not model or not dest:
            self._say("Give a model and a destination folder.", "-error")
            return
        self.busy = True
        self._say(f"Exporting {model} to {dest} …")
        self._export(model, Path(dest))

    @work(thread=True, exclusive=True, group="export-run", exit_on_error=False)
    def _export(self, model: str, dest: Path) -> dict[str, Any]:
        return self.session.call(export_model, model, dest)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        group, state, worker = event.worker.group, event.state, event.worker
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        if group == "export-preview":
            text = worker.result["card"] if state == WorkerState.SUCCESS else job_error_text(worker.error, "export")
            self.query_one("#export-card-text", Static).update(text)
        elif group == "export-run":
            self.busy = False
            if state == WorkerState.SUCCESS:
                self.result = worker.result
                self._say(exported_text(worker.result), "-done")
            else:
                self._say(job_error_text(worker.error, "export"), "-error")

    def _say(self, text: str, kind: str = "") -> None:
        result = self.query_one("#export-result", Static)
        result.update(text)
        for name in ("-error", "-done"):
            result.set_class(kind == name, name)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if self.busy and action in ("export", "close") else True

    def action_close(self) -> None:
        self.dismiss(self.result)
