"""Import entry points shared by the CLI, the TUI and `init --from`: parse (a BEIR corpus as it streams), then
write in one short transaction."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import EmbtuneError
from engine.ingest.batch import file_sha256, parse_beir, parse_docs, parse_pairs, parse_queries
from engine.ingest.readers import InputError, Problem, Problems
from engine.project import Project
from engine.store.import_batch import ImportBatch
from engine.store.imports import Progress, is_disk_full, write_batch, write_streamed
from engine.store.staging import Staging

SOURCE_KINDS = ("beir", "pairs", "docs", "queries")


class DiskFullError(EmbtuneError):
    """The disk (or the database's size limit) ran out mid-import; SQLite rolled everything back."""


def import_beir(
    project: Project, folder: Path, progress: Progress | None = None, *, strict: bool = False
) -> dict[str, Any]:
    folder = _existing(folder, want_dir=True)
    problems = Problems()

    def fill(staging: Staging) -> list[str]:
        return parse_beir(folder, staging, problems, max_chars=_max_chars(project))

    origins = {"documents": folder / "corpus.jsonl", "queries": folder / "queries.jsonl"}
    with _disk_full_is_named(folder, project):
        result = write_streamed(project.db, "beir", folder, _folder_sha(folder), fill, origins, problems, progress)
    # A BEIR folder has no optional files to skip, so --strict has nothing to refuse.
    return {"kind": "beir", "path": str(folder), **result, "skipped_count": 0, "skipped": []}


def import_pairs(
    project: Project,
    path: Path,
    split: str | None = None,
    progress: Progress | None = None,
    *,
    strict: bool = False,
) -> dict[str, Any]:
    path = _existing(path, want_dir=False)
    data = project.config.data
    batch = parse_pairs(
        path, split=split, test_fraction=data.test_fraction, seed=project.config.seed, max_chars=_max_chars(project)
    )
    return _write(project, batch, file_sha256(path), progress, strict)


def import_docs(
    project: Project,
    folder: Path,
    chunking: str | None = None,
    progress: Progress | None = None,
    *,
    strict: bool = False,
) -> dict[str, Any]:
    folder = _existing(folder, want_dir=True)
    name = chunking or project.config.chunking.default
    strategies = project.config.chunking.strategies
    if name not in strategies:
        known = ", ".join(strategies)
        raise InputError(
            [
                Problem(
                    project.root / "project.yaml",
                    0,
                    "chunking",
                    f"no strategy named '{name}' in chunking.strategies ({known})",
                )
            ]
        )
    batch = parse_docs(folder, name, strategies[name], max_chars=_max_chars(project))
    return _write(project, batch, _folder_sha(folder), progress, strict)


def import_queries(
    project: Project, path: Path, tag: str, progress: Progress | None = None, *, strict: bool = False
) -> dict[str, Any]:
    path = _existing(path, want_dir=False)
    batch = parse_queries(path, tag, max_chars=_max_chars(project))
    return _write(project, batch, file_sha256(path), progress, strict)


def import_sources(
    project: Project, base: Path, sources: list[dict[str, Any]], progress: Progress | None = None
) -> list[dict[str, Any]]:
    """The `data.sources` list of a project.yaml (used by `embtune init --from`)."""
    from engine.config import source_problem

    results = []
    for number, source in enumerate(sources, start=1):
        # load_config already checked a project.yaml's list; a list built in code gets the same named error.
        problem = source_problem(source)
        if problem is not None:
            field, message = f"data.sources[{number}]{problem[0]}", problem[1]
            raise InputError([Problem(base / "project.yaml", 0, field, message)])
        kind = next(k for k in SOURCE_KINDS if k in source)
        path = base / source[kind]
        if kind == "beir":
            results.append(import_beir(project, path, progress))
        elif kind == "pairs":
            results.append(import_pairs(project, path, source.get("split"), progress))
        elif kind == "docs":
            results.append(import_docs(project, path, source.get("chunking"), progress))
        else:
            results.append(import_queries(project, path, source.get("tag", "test"), progress))
    return results


def _max_chars(project: Project) -> int:
    return project.config.ingest.max_document_chars


def _write(
    project: Project, batch: ImportBatch, sha: str, progress: Progress | None, strict: bool = False
) -> dict[str, Any]:
    if strict and batch.skipped:
        raise InputError([_strict_problem(skip) for skip in batch.skipped])
    with _disk_full_is_named(batch.path, project):
        result = write_batch(project.db, batch, sha, Problems(), progress)
    return {
        "kind": batch.kind,
        "path": str(batch.path),
        **result,
        "skipped_count": len(batch.skipped),
        "skipped": batch.skipped,
    }


@contextlib.contextmanager
def _disk_full_is_named(path: Path, project: Project) -> Iterator[None]:
    try:
        yield
    except Exception as e:
        if not is_disk_full(e):
            raise
        # SQLite has already rolled the transaction back; the store is as it was before the import.
        raise DiskFullError(
            f"disk full while importing {path} ({project.root / 'project.db'}: database or disk is full); "
            "nothing was imported. Free some space and run the import again."
        ) from None


def skipped_lines(skipped: list[dict[str, Any]], show: int = 10) -> list[str]:
    """The summary's lines for what an import left out: a count, the first `show` named, then how many more."""
    if not skipped:
        return []
    lines = [f"skipped {len(skipped):,} file(s) or row(s) (--strict makes this an error):"]
    for skip in skipped[:show]:
        where = f"{skip['path']}:{skip['line']}" if skip.get("line") else skip["path"]
        lines.append(f"  {where}: {skip['reason']}")
    if len(skipped) > show:
        lines.append(f"  ... and {len(skipped) - show:,} more (all of them in --json)")
    return lines


def _strict_problem(skip: dict[str, Any]) -> Problem:
    return Problem(Path(skip["path"]), skip.get("line", 0), None, f"skipped: {skip['reason']} (--strict)")


def _existing(path: Path, *, want_dir: bool) -> Path:
    path = Path(path).expanduser().resolve()
    ok = path.is_dir() if want_dir else path.is_file()
    if not ok:
        what = "folder" if want_dir else "file"
        raise InputError([Problem(path, 0, None, f"no such {what}")])
    return path


def _folder_sha(folder: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            digest = file_sha256(path)
        except OSError:
            continue  # an unreadable file was skipped (and named) by the parser, or is no input at all
        h.update(path.relative_to(folder).as_posix().encode("utf-8", "surrogateescape"))
        h.update(digest.encode())
    return h.hexdigest()
