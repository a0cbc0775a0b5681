"""Line-exact readers for JSONL, TSV and CSV inputs. Every problem names file, line and field."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EmbtuneError

MAX_PROBLEMS = 20
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        what = f" field '{self.field}':" if self.field else ""
        return f"{where}:{what} {self.message}"


class InputError(EmbtuneError):
    """Bad input; nothing was written. Holds every problem found (up to MAX_PROBLEMS)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        more = f" (showing the first {MAX_PROBLEMS})" if len(problems) >= MAX_PROBLEMS else ""
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the input{more}; nothing was imported:\n{lines}")


class Problems:
    """Collects problems while a file is parsed, so one run reports many of them, not just the first."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, path: Path, line: int, field: str | None, message: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(path, line, field, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise InputError(self.items)


def text_lines(path: Path, problems: Problems) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded line) for non-blank lines; bad UTF-8 and a BOM become problems."""
    try:
        data = path.read_bytes()
    except OSError as e:
        problems.add(path, 0, None, f"cannot read: {e.strerror}")
        return
    if data.startswith(BOM):
        problems.add(path, 1, None, "starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM")
        data = data[len(BOM) :]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.add(path, number, None, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})")
            continue
        if line.strip():
            yield number, line.rstrip("\r")


def read_jsonl(path: Path, problems: Problems) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in text_lines(path, problems):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.add(path, number, None, f"invalid JSON: {e.msg} at column {e.colno}")
            continue
        if not isinstance(obj, dict):
            problems.add(path, number, None, f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield number, obj


def string_field(
    obj: dict[str, Any], key: str, path: Path, line: int, problems: Problems, *, required: bool = True
) -> str | None:
    """A string field that must be present and non-empty (ids may be given as numbers in BEIR files)."""
    if key not in obj or obj[key] is None:
        if required:
            problems.add(path, line, key, "missing")
        return None
    value = obj[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        problems.add(path, line, key, f"expected a string, got {type(value).__name__}")
        return None
    if not value.strip():
        if required:
            problems.add(path, line, key, "empty")
        return None
    return value


def string_list(
    obj: dict[str, Any], key: str, path: Path, line: int, problems: Problems, *, required: bool
) -> list[str]:
    value = obj.get(key)
    if value is None or value == []:
        if required:
            problems.add(path, line, key, "missing or empty list")
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.add(path, line, key, "expected a list of non-empty strings")
        return []
    return value


def sniff_delimiter(header: str) -> str:
    """Name the delimiter a header line seems to use, for 'wrong delimiter' messages."""
    counts = {
        "tab": header.count("\t"),
        "comma": header.count(","),
        "semicolon": header.count(";"),
        "pipe": header.count("|"),
    }
    name, count = max(counts.items(), key=lambda kv: kv[1])
    return name if count else "space" if " " in header.strip() else "no"


def read_tsv(path: Path, problems: Problems, columns: int) -> Iterator[tuple[int, list[str]]]:
    """Rows of exactly `columns` tab-separated cells; a header row is the caller's to skip."""
    for number, line in text_lines(path, problems):
        cells = line.split("\t")
        if len(cells) != columns:
            found = sniff_delimiter(line)
            hint = f"; the line looks {found}-separated" if found not in ("tab", "no") else ""
            problems.add(path, number, None, f"expected {columns} tab-separated columns, found {len(cells)}{hint}")
            continue
        yield number, [c.strip() for c in cells]


def read_csv(
    path: Path, problems: Problems, required: tuple[str, ...], optional: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a comma-separated file with a header naming its columns."""
    lines = list(text_lines(path, problems))
    if not lines:
        problems.add(path, 0, None, "empty file")
        return
    header_line, header = lines[0]
    names = next(csv.reader([header]))
    missing = [c for c in required if c not in names]
    if missing:
        found = sniff_delimiter(header)
        hint = f" (the header looks {found}-separated; use commas)" if found not in ("comma", "no") else ""
        problems.add(path, header_line, missing[0], f"header lacks column(s) {', '.join(missing)}{hint}")
        return
    unknown = [c for c in names if c not in required + optional]
    if unknown:
        problems.add(path, header_line, unknown[0], f"unknown column; expected {', '.join(required + optional)}")
        return
    # One record per line keeps line numbers exact; a multi-line quoted cell shows up as a cell-count problem.
    for number, text in lines[1:]:
        row = next(csv.reader([text]))
        if len(row) != len(names):
            problems.add(path, number, None, f"expected {len(names)} comma-separated cells, found {len(row)}")
            continue
        yield number, dict(zip(names, row, strict=True))
