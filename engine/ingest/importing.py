"""Import entry points shared by the CLI, the TUI and `init --from`: parse, then write in one transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.ingest.batch import file_sha256, parse_beir, parse_docs, parse_pairs, parse_queries
from engine.ingest.readers import InputError, Problem, Problems
from engine.project import Project
from engine.store.import_batch import ImportBatch
from engine.store.imports import Progress, write_batch

SOURCE_KINDS = ("beir", "pairs", "docs", "queries")


def import_beir(project: Project, folder: Path, progress: Progress | None = None) -> dict[str, Any]:
    folder = _existing(folder, want_dir=True)
    return _write(project, parse_beir(folder), _folder_sha(folder), progress)


def import_pairs(
    project: Project, path: Path, split: str | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    path = _existing(path, want_dir=False)
    data = project.config.data
    batch = parse_pairs(path, split=split, test_fraction=data.test_fraction, seed=project.config.seed)
    return _write(project, batch, file_sha256(path), progress)


def import_docs(
    project: Project, folder: Path, chunking: str | None = None, progress: Progress | None = None
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
    return _write(project, parse_docs(folder, name, strategies[name]), _folder_sha(folder), progress)


def import_queries(project: Project, path: Path, tag: str, progress: Progress | None = None) -> dict[str, Any]:
    path = _existing(path, want_dir=False)
    return _write(project, parse_queries(path, tag), file_sha256(path), progress)


def import_sources(
    project: Project, base: Path, sources: list[dict[str, Any]], progress: Progress | None = None
) -> list[dict[str, Any]]:
    """The `data.sources` list of a project.yaml (used by `embtune init --from`)."""
    results = []
    for number, source in enumerate(sources, start=1):
        kind = next((k for k in SOURCE_KINDS if k in source), None)
        if kind is None:
            raise InputError(
                [
                    Problem(
                        base / "project.yaml",
                        0,
                        f"data.sources[{number}]",
                        f"expected one of the keys {', '.join(SOURCE_KINDS)}",
                    )
                ]
            )
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


def _write(project: Project, batch: ImportBatch, sha: str, progress: Progress | None) -> dict[str, Any]:
    result = write_batch(project.db, batch, sha, Problems(), progress)
    return {"kind": batch.kind, "path": str(batch.path), **result}


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
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(file_sha256(path).encode())
    return h.hexdigest()
