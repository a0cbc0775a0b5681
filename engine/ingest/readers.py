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


def _raw_lines(path: Path, problems: Problems) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the newline), read as the file streams (a 1M-row corpus is never held whole);
    a BOM is a problem, then skipped. An unreadable file is one problem and no lines."""
    try:
        handle = path.open("rb")
    except OSError as e:
        problems.add(path, 0, None, f"cannot read: {e.strerror}")
        return
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(BOM):
                problems.add(path, 1, None, "starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM")
                raw = raw[len(BOM) :]
            yield number, raw[:-1] if raw.endswith(b"\n") else raw


def text_lines(path: Path, problems: Problems) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded line) for non-blank lines; bad UTF-8 and a BOM become problems."""
    for number, raw in _raw_lines(path, problems):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.add(path, number, None, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})")
            continue
        if line.strip():
            yield number, line.rstrip("\r")


class _NotJson(ValueError):
    """Raised from json.loads hooks for what Python's json accepts but JSON does not (NaN, duplicate keys)."""


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN/Infinity; they are not JSON, and a NaN score or text would be silently wrong.
    raise _NotJson(f"{name} is not a JSON value")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; the first value would vanish without a word.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _NotJson(f"key '{key}' appears twice in one object")
        obj[key] = value
    return obj


def _json_error(e: json.JSONDecodeError) -> str:
    # Some messages already end in "at" ("Unterminated string starting at"); don't say "at at".
    where = "" if e.msg.endswith(" at") else " at"
    return f"invalid JSON: {e.msg}{where} column {e.colno}"


def parse_json_line(line: str) -> Any:
    """json.loads with the strictness JSON has and Python's json lacks; raises ValueError with the reason."""
    try:
        return json.loads(line, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise ValueError(_json_error(e)) from None
    except _NotJson as e:
        raise ValueError(f"invalid JSON: {e}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None


def lone_surrogate(value: Any) -> str | None:
    """The first string in a parsed JSON value holding a lone surrogate escape ("\\ud800"), described.

    Such a string decodes from valid UTF-8 bytes but cannot be encoded again, so it would fail later, far from
    its file and line (hashing, SQLite, the tokenizer)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"lone surrogate escape \\u{ord(value[e.start]):04x} at character {e.start + 1}"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = lone_surrogate(key) or lone_surrogate(item)
        if found:
            return found
    return None


def read_jsonl(path: Path, problems: Problems) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in text_lines(path, problems):
        try:
            obj = parse_json_line(line)
        except ValueError as e:
            problems.add(path, number, None, str(e))
            continue
        if not isinstance(obj, dict):
            problems.add(path, number, None, f"expected a JSON object, got {type(obj).__name__}")
            continue
        if "\\u" in line and not _surrogate_free(obj, path, number, problems):
            continue
        yield number, obj


def _surrogate_free(obj: dict[str, Any], path: Path, line: int, problems: Problems) -> bool:
    for key, value in obj.items():
        found = lone_surrogate(key) or lone_surrogate(value)
        if found:
            field = key if lone_surrogate(key) is None else None
            problems.add(path, line, field, f"{found}; not valid Unicode text (fix the escape or drop it)")
            return False
    return True


def string_field(
    obj: dict[str, Any],
    key: str,
    path: Path,
    line: int,
    problems: Problems,
    *,
    required: bool = True,
    number_ok: bool = False,
) -> str | None:
    """A string field that must be present and non-empty. Only ids (`number_ok`) may be integers, as some BEIR
    files write them; a number where text belongs is a mistake in the file, not text."""
    if key not in obj or obj[key] is None:
        if required:
            problems.add(path, line, key, "missing")
        return None
    value = obj[key]
    if number_ok and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        problems.add(path, line, key, f"expected a string, got {_json_type(value)}")
        return None
    if not value.strip():
        if required:
            problems.add(path, line, key, "empty")
        return None
    return value


def _json_type(value: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def within_limit(text: str, limit: int, path: Path, line: int, field: str, problems: Problems) -> bool:
    """A passage or query longer than `ingest.max_document_chars` is refused: it is embedded as one piece."""
    if len(text) <= limit:
        return True
    problems.add(
        path,
        line,
        field,
        f"{len(text):,} characters, over ingest.max_document_chars ({limit:,}) in project.yaml; "
        "split it into passages, import it with --docs to chunk it, or raise the limit",
    )
    return False


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
    """Rows of a comma-separated file with a header naming its columns, as RFC 4180 reads them: a quoted cell
    may hold newlines. Each row is numbered by the line it starts on."""
    rows = _csv_rows(path, problems)
    header = next(rows, None)
    if header is None:
        problems.add(path, 0, None, "empty file")
        return
    header_line, names = header
    if not _csv_header_ok(path, problems, header_line, names, required, optional):
        return
    for number, row in rows:
        if len(row) != len(names):
            problems.add(path, number, None, f"expected {len(names)} comma-separated cells, found {len(row)}")
            continue
        yield number, dict(zip(names, row, strict=True))


def _csv_header_ok(
    path: Path, problems: Problems, line: int, names: list[str], required: tuple[str, ...], optional: tuple[str, ...]
) -> bool:
    missing = [c for c in required if c not in names]
    if missing:
        found = sniff_delimiter(",".join(names) if len(names) > 1 else names[0])
        hint = f" (the header looks {found}-separated; use commas)" if found not in ("comma", "no") else ""
        problems.add(path, line, missing[0], f"header lacks column(s) {', '.join(missing)}{hint}")
        return False
    unknown = [c for c in names if c not in required + optional]
    if unknown:
        problems.add(path, line, unknown[0], f"unknown column; expected {', '.join(required + optional)}")
        return False
    return True


def _csv_rows(path: Path, problems: Problems) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) for each non-blank record; a broken quote is one problem naming where it began."""
    reader = csv.reader(_csv_lines(path, problems), strict=True)
    previous = 0
    limit = csv.field_size_limit()
    # The stdlib refuses cells over 128 KiB; long passages are legal here (ingest.max_document_chars rules).
    csv.field_size_limit(1 << 30)
    try:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                problems.add(path, previous + 1, None, f"invalid CSV in the record starting here: {e}")
                return
            start, previous = previous + 1, reader.line_num
            if len(row) > 1 or (row and row[0].strip()):  # blank lines are not records
                yield start, row
    finally:
        csv.field_size_limit(limit)


def _csv_lines(path: Path, problems: Problems) -> Iterator[str]:
    """Every line with its newline (the csv module needs them inside quoted cells); bad UTF-8 becomes a problem
    and an empty line, so line numbers stay exact."""
    for number, raw in _raw_lines(path, problems):
        try:
            yield raw.decode("utf-8") + "\n"
        except UnicodeDecodeError as e:
            problems.add(path, number, None, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})")
            yield "\n"
