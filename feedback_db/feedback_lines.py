"""Reading one line of ``expert_feedback.jsonl``: JSON, fields, types. No database here.

Accepts what ``feedback_db.export`` writes (TRL conversational preference rows) and TRL's standard
format (``prompt``/``chosen``/``rejected`` as plain strings). Every problem is a ``ValueError``
whose message names the field. A line nested deeper than ``MAX_JSON_DEPTH`` is refused before it
is parsed. Image paths must stay inside the file's folder: absolute paths and ``..`` are refused
from the text alone (``parse_line``), links are resolved before the check (``check_images``),
and a refused path is never looked at, so the message cannot tell whether it exists.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from feedback_db.images import OutsideRoot, resolve_inside
from feedback_db.pairs import parse_label  # noqa: F401 (re-exported: the import reads labels)
from feedback_db.records import PREFERENCES, SEVERITIES, TRUE_LABELS


@dataclass(frozen=True)
class FeedbackLine:
    """One valid preference line."""

    line: int
    case_id: str
    reviewer: str
    rated_at: datetime
    chosen: str
    rejected: str
    true_label: str
    severity: str | None
    margin: float | None
    modality: str | None
    images: tuple[str, ...]
    chosen_source: str | None = None  # "rationale": chosen is the clinician's rewritten answer
    # The rating the line comes from, as our export writes it (None in a foreign TRL file).
    preference: str | None = None
    rationale: str | None = None
    answer_a: str | None = None
    answer_b: str | None = None
    # The case, so an import can create it where the workspace lacks it.
    finding: str | None = None
    treatment: str | None = None
    prompt_text: str | None = None


def _message_text(value: Any, field: str) -> str:
    """The text of a completion: a string, or the last message's text parts."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value or not isinstance(value[-1], dict):
        raise ValueError(f"{field}: expected a string or a list of messages")
    content = value[-1].get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValueError(f"{field}: message content must be a string or a list of parts")
    parts = []
    for part in content:
        if not isinstance(part, dict):
            raise ValueError(f"{field}: content parts must be objects")
        if part.get("type") == "text":
            if not isinstance(part.get("text"), str):
                raise ValueError(f"{field}: a text part has no string 'text'")
            parts.append(part["text"])
    if not parts:
        raise ValueError(f"{field}: no text in the message")
    return "".join(parts)


def _str(data: dict[str, Any], field: str, optional: bool = False) -> str | None:
    value = data.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        kind = (
            "missing"
            if field not in data
            else f"must be a non-empty string, got {json.dumps(value)[:40]}"
        )
        raise ValueError(f"field '{field}' {kind}")
    return value


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``...Z`` or with an offset) as aware UTC. Raises ValueError."""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"field 'rated_at': not an ISO 8601 time: {value!r}") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


MAX_JSON_DEPTH = 64  # our lines are 5 levels deep
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON ``text`` nests ``[``/``{`` deeper than ``limit`` (strings aside).
    Linear and never recursive (the same rule as ``core.manifests.rows.too_deep``)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if m.group() in "[{" else -1
        if depth > limit:
            return True
    return False


def loads_line(raw: str) -> Any:
    """``json.loads`` of one line, refusing nesting beyond ``MAX_JSON_DEPTH`` first.

    Raises:
        ValueError: too deep, or not JSON; the message says which, in words.
    """
    if too_deep(raw):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels; not read")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels; not read") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ValueError(f"invalid JSON ({exc})") from None


def image_path_problem(ref: str) -> str | None:
    """Why ``ref`` cannot be an image beside the file (absolute, or climbing with ``..``), from
    the text alone; None when it may be. Both POSIX and Windows spellings are checked."""
    for pure in (PurePosixPath(ref), PureWindowsPath(ref)):
        if pure.is_absolute() or pure.drive or pure.root:
            return (
                f"field 'images': {ref[:80]!r} is an absolute path; images must be beside the file"
            )
        if ".." in pure.parts:
            return f"field 'images': {ref[:80]!r} leads outside the file's folder; not opened"
    return None


def check_images(folder: Path, images: tuple[str, ...]) -> list[Path]:
    """The real paths of a line's ``images`` inside ``folder`` (links resolved first).

    Raises:
        ValueError: a path leads outside the folder (not looked at), or an image is not there.
    """
    found = []
    for ref in images:
        try:
            real = resolve_inside(folder, ref)
        except OutsideRoot:
            raise ValueError(
                f"field 'images': {ref[:80]!r} leads outside the file's folder; not opened"
            ) from None
        if not real.is_file():
            raise ValueError(f"image not found beside the file: {ref}")
        found.append(real)
    return found


def parse_line(number: int, raw: str) -> FeedbackLine:
    """Validate one line. Raises ValueError (message without the line number)."""
    data = loads_line(raw)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if "completion" in data and "chosen" not in data:
        raise ValueError("an unpaired (KTO) row; only preference pairs can be imported as ratings")
    for field in ("prompt", "chosen", "rejected"):
        if field not in data:
            raise ValueError(f"field '{field}' missing")
    if not isinstance(data["prompt"], str | list):
        raise ValueError("field 'prompt': expected a string or a list of messages")
    chosen = _message_text(data["chosen"], "chosen")
    rejected = _message_text(data["rejected"], "rejected")
    case_id, reviewer, when = _str(data, "case_id"), _str(data, "reviewer"), _str(data, "rated_at")
    assert case_id is not None and reviewer is not None and when is not None
    true_label = data.get("true_label")
    if true_label is None:
        true_label = parse_label(chosen)[0]
        if true_label not in TRUE_LABELS:
            raise ValueError(
                "no 'true_label' and the chosen text starts with neither ERROR nor CORRECT"
            )
    elif true_label not in TRUE_LABELS:
        raise ValueError(
            f"field 'true_label' must be ERROR or CORRECT, got {json.dumps(true_label)[:40]}"
        )
    severity = data.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(
            f"field 'severity' must be one of {', '.join(SEVERITIES)} or null, got {json.dumps(severity)[:40]}"
        )
    margin = data.get("margin")
    if margin is not None and (
        isinstance(margin, bool) or not isinstance(margin, int | float) or not math.isfinite(margin)
    ):
        raise ValueError(f"field 'margin' must be a number or null, got {json.dumps(margin)[:40]}")
    modality = _str(data, "modality", optional=True)
    chosen_source = data.get("chosen_source")
    if chosen_source not in (None, "rationale", "model"):
        raise ValueError(
            f'field \'chosen_source\' must be "rationale", "model" or null, got {json.dumps(chosen_source)[:40]}'
        )
    images = data.get("images")
    if (
        not isinstance(images, list)
        or not images
        or not all(isinstance(i, str) and i for i in images)
    ):
        raise ValueError("field 'images' must be a non-empty list of paths")
    for ref in images:
        problem = image_path_problem(ref)
        if problem:
            raise ValueError(problem)
    preference = data.get("preference")
    if preference is not None and preference not in PREFERENCES:
        raise ValueError(
            f"field 'preference' must be one of {', '.join(PREFERENCES)} or null, got {json.dumps(preference)[:40]}"
        )
    rating_text = {
        name: _str(data, name, optional=True)
        for name in ("rationale", "answer_a", "answer_b", "finding", "treatment")
    }
    if preference is not None and (
        rating_text["answer_a"] is None or rating_text["answer_b"] is None
    ):
        raise ValueError("field 'preference' is given without both 'answer_a' and 'answer_b'")
    prompt = data["prompt"]
    prompt_text = prompt if isinstance(prompt, str) else _message_text(prompt, "prompt")
    return FeedbackLine(
        preference=preference,
        prompt_text=prompt_text,
        **rating_text,
        line=number,
        case_id=case_id,
        reviewer=reviewer.strip(),
        rated_at=parse_time(when),
        chosen=chosen,
        rejected=rejected,
        true_label=true_label,
        severity=severity,
        margin=None if margin is None else float(margin),
        modality=modality,
        images=tuple(images),
        chosen_source=chosen_source,
    )
