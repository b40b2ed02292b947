"""Split a manifest file (CSV, JSON list, JSONL) into raw rows, each with its line number.

Only the file's shape is checked here (encoding, syntax, header, field counts, empty lines,
nesting depth); the values are checked by ``core.manifests.manifest``. A UTF-8 byte-order mark and CRLF
line ends are accepted. Columns that are not case fields are passed on (``core.manifests.manifest`` keeps
them in the case's meta). JSON nested deeper than ``MAX_JSON_DEPTH`` is refused in words before
it is parsed (Python's parser would end in a RecursionError).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLUMNS: tuple[str, ...] = (
    "case_id",
    "modality",
    "image",
    "finding",
    "treatment",
    "error_type",
    "severity",
    "cost_impact",
    "split",
)
REQUIRED: tuple[str, ...] = ("modality", "image", "finding", "treatment")
MAX_JSON_DEPTH = 64  # a case row is 2-3 levels deep; anything near this is not a manifest

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> int | None:
    """The offset of the first ``[`` or ``{`` nested deeper than ``limit`` in the JSON ``text``
    (brackets inside strings do not count), or None. Linear, and never recursive."""
    if text.count("[") + text.count("{") <= limit:
        return None
    stripped = _STRING.sub(lambda m: " " * len(m.group()), text)
    depth = 0
    for m in _BRACKET.finditer(stripped):
        if m.group() in "[{":
            depth += 1
            if depth > limit:
                return m.start()
        else:
            depth -= 1
    return None


def nested_too_deep(limit: int = MAX_JSON_DEPTH) -> str:
    return f"JSON nested deeper than {limit} levels; not read"


def loads(text: str, limit: int = MAX_JSON_DEPTH) -> object:
    """``json.loads`` that refuses nesting deeper than ``limit`` first.

    Raises:
        ValueError: too deep (the message says so), or invalid JSON (``json.JSONDecodeError``).
    """
    if too_deep(text, limit) is not None:
        raise ValueError(nested_too_deep(limit))
    try:
        return json.loads(text)
    except RecursionError:  # a belt to the braces above
        raise ValueError(nested_too_deep(limit)) from None


@dataclass(frozen=True)
class RawRow:
    """One record: its first line, its values (text for CSV, JSON types otherwise), and what is
    already known to be wrong with it. ``typed`` is True for JSON, which may carry ``meta``."""

    line: int
    values: dict[str, Any]
    typed: bool
    problems: tuple[str, ...] = field(default=())


FileErrors = list[tuple[int, str]]


def parse_manifest(
    path: Path, required: tuple[str, ...] = REQUIRED
) -> tuple[list[RawRow], FileErrors]:
    """Rows of the manifest at ``path``, and file-level errors as (line, message).

    The format comes from the suffix (.csv, .json, .jsonl/.ndjson), else from the first
    character ('[' JSON, '{' JSONL, anything else CSV). A CSV header must name every column of
    ``required`` (a folder's sidecar may leave out the modality).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], [(0, f"cannot read the manifest: {exc.strerror or exc}")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [], [(line, f"not UTF-8 text (byte {exc.start}); save the manifest as UTF-8")]
    suffix = path.suffix.lower()
    first = text.lstrip()[:1]
    if suffix == ".csv":
        return _csv(text, required)
    if suffix == ".json" or (suffix not in (".jsonl", ".ndjson") and first == "["):
        return _json_list(text)
    if suffix in (".jsonl", ".ndjson") or first == "{":
        return _jsonl(text)
    return _csv(text, required)


def _trailing_blank_from(lines: list[str]) -> int:
    """Index after the last non-blank line: blank lines at the very end are not rows."""
    end = len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    return end


def _jsonl(text: str) -> tuple[list[RawRow], FileErrors]:
    rows: list[RawRow] = []
    lines = text.splitlines()
    for n, line in enumerate(lines[: _trailing_blank_from(lines)], start=1):
        if not line.strip():
            rows.append(RawRow(n, {}, True, ("empty line",)))
            continue
        try:
            value = loads(line)
        except json.JSONDecodeError as exc:
            rows.append(RawRow(n, {}, True, (f"invalid JSON: {exc.msg} (column {exc.colno})",)))
            continue
        except ValueError as exc:  # too deep, or a number Python will not convert
            rows.append(RawRow(n, {}, True, (str(exc),)))
            continue
        rows.append(_object_row(n, value))
    if not rows:
        return [], [(1, "the manifest has no rows")]
    return rows, []


def _object_row(line: int, value: Any) -> RawRow:
    if not isinstance(value, dict):
        return RawRow(line, {}, True, (f"expected a JSON object, got {type(value).__name__}",))
    return RawRow(line, {str(k).strip(): v for k, v in value.items()}, True)


def _json_list(text: str) -> tuple[list[RawRow], FileErrors]:
    """Objects of a JSON array, each with the line it starts on (so errors can point at it)."""
    decoder = json.JSONDecoder()
    rows: list[RawRow] = []
    # The list itself is one level.
    deep = too_deep(text, MAX_JSON_DEPTH + 1)
    if deep is not None:
        return [], [(_line_at(text, deep), nested_too_deep() + "; no rows were imported")]
    pos = _skip_ws(text, 0)
    if text[pos : pos + 1] != "[":
        return [], [(_line_at(text, pos), "a .json manifest must be a list of objects")]
    pos = _skip_ws(text, pos + 1)
    if text[pos : pos + 1] == "]":
        return [], [(_line_at(text, pos), "the manifest has no rows")]
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            return rows, [
                (
                    exc.lineno,
                    f"invalid JSON: {exc.msg} (column {exc.colno}); rows after it were not read",
                )
            ]
        except (ValueError, RecursionError) as exc:
            why = nested_too_deep() if isinstance(exc, RecursionError) else str(exc)
            return rows, [(_line_at(text, pos), f"{why}; rows after it were not read")]
        rows.append(_object_row(_line_at(text, pos), value))
        pos = _skip_ws(text, end)
        sep = text[pos : pos + 1]
        if sep == "]":
            break
        if sep != ",":
            return rows, [
                (
                    _line_at(text, pos),
                    "invalid JSON: expected ',' or ']'; rows after it were not read",
                )
            ]
        pos = _skip_ws(text, pos + 1)
    return rows, []


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _csv(text: str, required: tuple[str, ...]) -> tuple[list[RawRow], FileErrors]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], [(1, "the manifest is empty")]
    except csv.Error as exc:
        return [], [(1, f"invalid CSV header: {exc}")]
    names = [h.strip().lower() for h in header]
    problems = []
    missing = [c for c in required if c not in names]
    if missing:
        problems.append(f"missing column {', '.join(map(repr, missing))}")
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        problems.append(f"duplicate column {', '.join(map(repr, dupes))}")
    if problems:
        return [], [(1, "; ".join(problems) + "; no rows were imported")]
    rows: list[RawRow] = []
    last_line = reader.line_num
    try:
        for record in reader:
            line = last_line + 1
            last_line = reader.line_num
            if not record or not any(f.strip() for f in record):
                rows.append(RawRow(line, {}, False, ("empty line",)))
            elif len(record) != len(names):
                rows.append(
                    RawRow(line, {}, False, (f"expected {len(names)} fields, found {len(record)}",))
                )
            else:
                rows.append(RawRow(line, dict(zip(names, record, strict=True)), False))
    except csv.Error as exc:
        return rows, [(reader.line_num, f"invalid CSV: {exc}; rows after it were not read")]
    # Blank lines at the very end are an editor's habit, not rows.
    while rows and rows[-1].problems == ("empty line",):
        rows.pop()
    if not rows:
        return [], [(1, "the manifest has no rows")]
    return rows, []
