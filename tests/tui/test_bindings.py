"""Every screen of the TUI, found by walking the package (no hand list): each of its own bindings has a description
and an id, and each of its keys shows in the screen's `?` help (generated from the bindings, tui.keys)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import typing
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.screen import Screen

import tui
from engine.project import init_project
from tui.app import EmbtuneApp
from tui.keys import key_groups
from tui.screens.help import help_line
from tui.session import Session

SIZE = (140, 45)
SCALARS: dict[Any, Any] = {str: "x", int: 0, float: 0.0, bool: False}


def tui_screens() -> list[type[Screen[Any]]]:
    """Every Screen (ModalScreen included) defined in a module of the tui package."""
    found = []
    for info in pkgutil.walk_packages(tui.__path__, "tui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Screen) and cls.__module__ == module.__name__:
                found.append(cls)
    return sorted(found, key=lambda cls: cls.__qualname__)


def own_bindings(cls: type[Screen[Any]]) -> list[Binding]:
    """The bindings the screen declares itself (Textual's inherited ones are not embtune's)."""
    return [b for b in cls.__dict__.get("BINDINGS", []) if isinstance(b, Binding)]


def sample(hint: Any, session: Session) -> Any:
    """A value of the type a screen's constructor asks for: the app's session, an empty container or dataclass."""
    if hint is Session:
        return session
    if hint in SCALARS:
        return SCALARS[hint]
    origin = typing.get_origin(hint)
    if origin in (list, tuple, dict, set, frozenset):
        return origin()
    if dataclasses.is_dataclass(hint):
        fields = typing.get_type_hints(hint)
        required = [f for f in dataclasses.fields(hint) if f.default is f.default_factory is dataclasses.MISSING]
        return hint(**{f.name: sample(fields[f.name], session) for f in required})
    raise TypeError(f"no sample value for {hint!r}: teach sample() this type")


def build(cls: type[Screen[Any]], session: Session) -> Screen[Any]:
    hints = typing.get_type_hints(cls.__init__)
    params = inspect.signature(cls.__init__).parameters.values()
    args = {p.name: sample(hints[p.name], session) for p in params if p.name != "self" and p.default is p.empty}
    return cls(**args)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = init_project(tmp_path_factory.mktemp("bindings") / "project")
    project.close()
    return project.root


@pytest.mark.parametrize("cls", tui_screens(), ids=lambda cls: cls.__name__)
async def test_each_binding_has_a_description_an_id_and_its_keys_in_help(cls: type[Screen[Any]], root: Path) -> None:
    bindings = own_bindings(cls)
    assert bindings, f"{cls.__name__} declares no bindings"
    assert [b.key for b in bindings if not b.description] == [], "every binding needs a description"
    assert [b.key for b in bindings if not b.id] == [], "every binding needs an id (keymaps refer to it)"
    app = EmbtuneApp(root)
    async with app.run_test(size=SIZE) as pilot:
        screen = build(cls, app.session)
        await app.push_screen(screen)
        await pilot.pause()
        help_lines = [help_line(c) for group in key_groups(screen) for c in group.commands]
        for binding in bindings:
            for key in binding.key.split(","):
                shown = app.get_key_display(dataclasses.replace(binding, key=key.strip()))
                described = [line for line in help_lines if f" {binding.description}" in line]
                keys = [line.partition(f" {binding.description}")[0].strip().split(", ") for line in described]
                assert any(shown in listed for listed in keys), (
                    f"{cls.__name__}: {key} ({binding.description}) is missing from its help"
                )
