"""Home: what the project holds and which pipeline stages it is ready for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Label, Static
from textual.worker import Worker, WorkerState

from engine import overview
from engine.gate.results import latest_verdict
from engine.pipeline_state import PipelineState, pipeline_state
from engine.project import Project
from tui.readiness import Stage, evaluation_stage, gate_verdict, index_stage, readiness, training_stage
from tui.screens.data import DataScreen
from tui.screens.gate.screen import GateScreen
from tui.screens.import_data import ImportScreen, import_summary
from tui.screens.review.screen import ReviewScreen
from tui.session import Session
from tui.widgets.footer import KeyFooter

RECENT_IMPORTS = 8
NARROW = 100  # columns below which the panels stack instead of standing side by side
SPLITS_ALWAYS_SHOWN = ("train", "test", "gate", "general")
SHORT = {"documents": "docs", "negatives": "negs"}


@dataclass(frozen=True)
class HomeData:
    counts: dict[str, Any]
    imports: list[dict[str, Any]]
    gate: tuple[int, str] | None = None  # (run id, verdict) of the last finished gate
    pipeline: PipelineState | None = None  # training, evaluation and index, after the gate


def load_home(project: Project) -> HomeData:
    return HomeData(
        overview.counts(project),
        overview.recent_imports(project, RECENT_IMPORTS),
        latest_verdict(project),
        pipeline_state(project),
    )


def count_lines(counts: dict[str, Any]) -> list[str]:
    """One aligned line per table; pairs and queries followed by their split breakdown."""
    queries = counts["queries"]
    lines = [_count_line(name, counts[name]) for name in ("documents", "chunks", "pairs")]
    lines.append(_splits_line({s: n for s, n in counts["pairs_by_split"].items() if n}))
    lines += [_count_line(name, counts[name]) for name in ("negatives", "runs")]
    lines.append(_count_line("queries", sum(queries.values())))
    lines.append(_splits_line({s: n for s, n in queries.items() if n or s in SPLITS_ALWAYS_SHOWN}))
    return [line for line in lines if line]


def _count_line(name: str, n: int) -> str:
    return f"{name:<10} {n:>10,}"


def _splits_line(by_split: dict[str, int]) -> str:
    return "  " + " · ".join(f"{split} {n:,}" for split, n in by_split.items()) if by_split else ""


class ProjectHeader(Horizontal):
    def __init__(self, project: Project) -> None:
        super().__init__()
        self.project = project

    def compose(self) -> ComposeResult:
        config = self.project.config
        yield Label("embtune", id="brand")
        yield Label(config.name, id="project-name", markup=False)
        yield Label(_short_path(str(self.project.root)), id="project-root", markup=False)
        yield Label(f"base model {config.base_model}", id="base-model", markup=False)
        if self.project.read_only:  # opened read-only (the folder cannot be written): say so before any action fails
            yield Label(f"read-only project: {self.project.root}", id="read-only", markup=False)


class CountsPanel(Static):
    def on_mount(self) -> None:
        self.border_title = "Counts"

    def show(self, counts: dict[str, Any]) -> None:
        self.update("\n".join(count_lines(counts)))
        self.border_subtitle = f"as of {datetime.now():%H:%M:%S}"


class StagesPanel(Vertical):
    def on_mount(self) -> None:
        self.border_title = "Readiness"

    def show(self, stages: list[Stage]) -> None:
        self.remove_children()
        self.mount_all(self._row(stage) for stage in stages)

    @staticmethod
    def _row(stage: Stage) -> Horizontal:
        text = Content.assemble((stage.name, "bold"), f": {stage.detail}")
        if stage.hint:
            text = Content.assemble(text, "\n", (stage.hint, "italic"))
        return Horizontal(
            Label(stage.state.glyph, classes="glyph"),
            Label(text, classes="text"),
            classes=f"stage -{stage.state.value}",
        )


class ImportsTable(DataTable[str]):
    """The latest imports: a list to glance at, so it takes no focus and its keys stay out of the way."""

    can_focus = False

    def on_mount(self) -> None:
        self.border_title = "Recent imports"
        self.add_columns("#", "when", "kind", "added", "path")
        self.show_cursor = False

    def show(self, rows: list[dict[str, Any]]) -> None:
        self.clear()
        for row in rows:
            added = json.loads(row["counts_json"] or "{}")
            summary = " · ".join(f"{n:,} {SHORT.get(t, t)}" for t, n in added.items() if n) or "nothing new"
            when = row["created_at"][:16].replace("T", " ")
            self.add_row(str(row["id"]), when, row["kind"], summary, _short_path(row["path"]))


def _short_path(path: str) -> str:
    """Relative to the working folder when inside it (`embtune open demo/x` shows demo/x), else with ~ for home."""
    cwd, home = str(Path.cwd()), str(Path.home())
    if path.startswith(cwd + "/"):
        return path[len(cwd) + 1 :]
    return "~" + path[len(home) :] if path.startswith(home + "/") else path


class HomeScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Home"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh_counts", "Refresh counts", tooltip="Count the data again", show=False, id="refresh"),
        Binding(
            "i",
            "import_data",
            "Import data",
            tooltip="Add a BEIR folder, pairs, documents or queries",
            id="import",
        ),
        Binding(
            "g",
            "gate",
            "Gate",
            tooltip="Should this project fine-tune? The base model against the cheaper fixes",
            id="gate",
        ),
        Binding(
            "v",
            "review",
            "Review pairs",
            tooltip="Accept, reject or edit pairs; triage mined negatives (tab)",
            id="review",
        ),
        Binding(
            "m",
            "data",
            "Mine & check",
            tooltip="Data checks before training; mine hard negatives",
            id="data",
        ),
        Binding("t", "train", "Train", tooltip="Fine-tune in the background: live loss, cancel, resume", id="train"),
        Binding(
            "e",
            "evaluate",
            "Evaluate",
            tooltip="Base vs trained models: verdicts, per-query diff, general queries",
            id="evaluate",
        ),
        Binding(
            "x", "index", "Index", tooltip="LanceDB tables: re-index with a model, make live, roll back", id="index"
        ),
        Binding("slash", "search", "Search", tooltip="Query the live index; base vs tuned side by side", id="search"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        yield ProjectHeader(self.session.project)
        with VerticalScroll(id="home-body"):  # at 80x24 the live index and recent imports lie below the fold
            with Horizontal(id="panels"):
                yield CountsPanel("counting…", id="counts")
                yield StagesPanel(Label("counting…"), id="stages")
            yield ImportsTable(id="imports")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.action_refresh_counts()

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW, "-narrow")

    def action_refresh_counts(self) -> None:
        self._load()

    def action_import_data(self) -> None:
        self.app.push_screen(ImportScreen(self.session), callback=self._imported)

    def action_gate(self) -> None:
        self.app.push_screen(GateScreen(self.session), callback=lambda _: self.action_refresh_counts())

    def action_data(self) -> None:
        self.app.push_screen(DataScreen(self.session), callback=lambda _: self.action_refresh_counts())

    def action_train(self) -> None:
        from tui.screens.train.screen import TrainScreen

        self.app.push_screen(TrainScreen(self.session), callback=lambda _: self.action_refresh_counts())

    def action_evaluate(self) -> None:
        from tui.screens.evaluate.screen import EvaluateScreen

        self.app.push_screen(EvaluateScreen(self.session), callback=lambda _: self.action_refresh_counts())

    def action_index(self) -> None:
        from tui.screens.index import IndexScreen

        self.app.push_screen(IndexScreen(self.session), callback=lambda _: self.action_refresh_counts())

    def action_search(self) -> None:
        from tui.screens.search import SearchScreen

        self.app.push_screen(SearchScreen(self.session))

    def action_review(self) -> None:
        self.app.push_screen(ReviewScreen(self.session), callback=lambda _: self.action_refresh_counts())

    def _imported(self, result: dict[str, Any] | None) -> None:
        if result is not None:
            self.notify(import_summary(result), title="Import", markup=False, timeout=8)
            self.action_refresh_counts()

    @work(thread=True, exclusive=True, group="counts", exit_on_error=False)
    def _load(self) -> HomeData:
        # After the first frame and off the event loop: counting a big project must not hold up drawing.
        return self.session.call(load_home)

    @on(Worker.StateChanged)
    def _loaded(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "counts":
            return
        if event.state == WorkerState.SUCCESS:
            self.show(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.notify(f"Could not count the project: {event.worker.error}", severity="error", markup=False)

    def show(self, data: HomeData) -> None:
        self.query_one(CountsPanel).show(data.counts)
        stages = [*readiness(data.counts, self.session.project.config.gate), gate_verdict(data.gate)]
        later = data.pipeline
        if later is not None:
            stages += [training_stage(later.train), evaluation_stage(later.evaluation), index_stage(later.index)]
        self.query_one(StagesPanel).show(stages)
        self.query_one(ImportsTable).show(data.imports)
