"""`i`: import a BEIR folder, a pairs file, a folder of documents or a queries file (engine.ingest.importing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from engine.config import ConfigError
from engine.ingest.batch import SPLITS
from engine.ingest.readers import InputError
from engine.project import Project, ProjectError
from tui.session import Session
from tui.widgets.footer import KeyFooter

KINDS = {
    "beir": "BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv)",
    "pairs": "Pairs file (JSONL or CSV)",
    "docs": "Folder of .txt / .md documents",
    "queries": "Queries file (JSONL)",
}
FROM_FILE = "file"  # pairs without a chosen split keep the file's, else are split by document


@dataclass(frozen=True)
class ImportRequest:
    kind: str
    path: Path
    option: str | None = None  # pairs: split · docs: chunking strategy · queries: tag


def run_import(project: Project, request: ImportRequest, progress: Any = None) -> dict[str, Any]:
    from engine.ingest import importing  # only when an import runs

    if request.kind == "beir":
        return importing.import_beir(project, request.path, progress)
    if request.kind == "pairs":
        return importing.import_pairs(project, request.path, request.option, progress)
    if request.kind == "docs":
        return importing.import_docs(project, request.path, request.option, progress)
    assert request.option is not None
    return importing.import_queries(project, request.path, request.option, progress)


def import_summary(result: dict[str, Any]) -> str:
    added = {table: n for table, n in result["added"].items() if n}
    text = (
        "Imported " + ", ".join(f"{n:,} {table}" for table, n in added.items())
        if added
        else "Nothing new: everything in this input is already in the project."
    )
    return text + "".join(f"\nnote: {note}" for note in result["notes"])


def error_text(error: BaseException | None) -> str:
    """User errors already read as 'file:line: what is wrong'; anything else also names its type."""
    if isinstance(error, (InputError, ConfigError, ProjectError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def option_choices(kind: str, project: Project) -> tuple[str, list[tuple[str, str]], str | None]:
    """The label, choices and default of the kind's one option (an empty label: the kind has none)."""
    if kind == "pairs":
        splits = [("as in the file, else split by document", FROM_FILE), *[(s, s) for s in SPLITS]]
        return "Split", splits, FROM_FILE
    if kind == "docs":
        chunking = project.config.chunking
        return "Chunking", [(name, name) for name in chunking.strategies], chunking.default
    if kind == "queries":
        return "Tag", [(s, s) for s in SPLITS], "gate"
    return "", [], None


class ImportScreen(ModalScreen[dict[str, Any] | None]):
    BINDING_GROUP_TITLE = "Import"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", tooltip="Close without importing", id="import-close"),
        Binding("ctrl+s", "submit", "Import", tooltip="Import this path", priority=True, id="import-run"),
    ]
    busy: reactive[bool] = reactive(False, bindings=True)

    class Progress(Message):
        def __init__(self, stage: str, done: int, total: int) -> None:
            super().__init__()
            self.stage, self.done, self.total = stage, done, total

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        with Vertical(id="import-form") as form:
            form.border_title = "Import data"
            yield Label("Kind")
            kinds = [(text, kind) for kind, text in KINDS.items()]
            yield Select(kinds, value="beir", allow_blank=False, id="kind")
            yield Label("Path")
            yield Input(placeholder="a folder or file; ~ and paths relative to here work", id="path")
            yield Label("", id="option-label")
            # A Select needs options from the start; on_mount sets those of the chosen kind.
            _, splits, _ = option_choices("pairs", self.session.project)
            yield Select(splits, allow_blank=False, id="option")
            yield Static("", id="import-result", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self._show_option("beir")
        self.query_one("#path", Input).focus()

    @on(Select.Changed, "#kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        self._show_option(str(event.value))
        self._say("")  # an error about the old kind no longer applies

    @on(Input.Changed, "#path")
    def _path_changed(self) -> None:
        if not self.busy:
            self._say("")  # nor one about the old path

    def _show_option(self, kind: str) -> None:
        label, choices, default = option_choices(kind, self.session.project)
        option = self.query_one("#option", Select)
        if choices:
            option.set_options(choices)
            option.value = default
        self.query_one("#option-label", Label).update(label)
        option.display = self.query_one("#option-label").display = bool(choices)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if self.busy and action in ("close", "submit") else True

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#path")
    def _path_submitted(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        request = self._request()
        if request is None:
            return
        self.busy = True
        self._say(f"Importing {request.path} …")
        self._import(request)

    def _request(self) -> ImportRequest | None:
        path = self.query_one("#path", Input).value.strip()
        if not path:
            self._say("Give the path of a folder or file to import.", error=True)
            return None
        kind = str(self.query_one("#kind", Select).value)
        option = self.query_one("#option", Select).value if kind != "beir" else None
        chosen = None if option in (FROM_FILE, Select.NULL, None) else str(option)
        return ImportRequest(kind, Path(path), chosen)

    @work(thread=True, exclusive=True, group="import", exit_on_error=False)
    def _import(self, request: ImportRequest) -> dict[str, Any]:
        def progress(stage: str, done: int, total: int) -> None:
            self.post_message(self.Progress(stage, done, total))  # thread-safe, unlike touching widgets

        return self.session.call(run_import, request, progress)

    def on_import_screen_progress(self, message: Progress) -> None:
        of = f"/{message.total:,}" if message.total else ""  # a streamed corpus has no total until it ends
        self._say(f"{message.stage} {message.done:,}{of}")

    @on(Worker.StateChanged)
    def _finished(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "import" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        self.busy = False
        if event.state == WorkerState.SUCCESS:
            self.dismiss(event.worker.result)
        else:
            self._say(error_text(event.worker.error), error=True)

    def _say(self, text: str, *, error: bool = False) -> None:
        result = self.query_one("#import-result", Static)
        result.update(text)
        result.set_class(error, "-error")
