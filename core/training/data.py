"""Reading the trainers' inputs from files: ``expert_feedback.jsonl`` and case lists.

Core trains from files, never from the database (DESIGN.md): the store exports the clinicians'
ratings as TRL conversational preference pairs, and the held-out cases as a JSONL of ``Case``
dictionaries. This module turns both into plain dataclasses the trainers share.

A pair's prompt is the text of ``core.prompts.case_text``; the case is rebuilt from it and from the
pair's metadata (``case_id``, ``modality``, ``error_type``, ``severity``), with the image path
resolved against the feedback file's folder.

Ground truth for training: the case's own (``error_type``, ``severity``) where the export has it;
otherwise the clinician's ``true_label`` is taken as the truth (``error_type`` ``reviewer_flagged``
or ``none``), so the clinical reward can score answers on clinician-judged cases too.

Which pairs teach SFT (a gold answer): the store's export does not say which chosen texts are the
clinician's own rationale (``feedback_db.pairs``: a rationale replaces the preferred verdict as
``"<true_label> - <rationale>"``), so the rule is: a chosen answer whose label is the clinician's
``true_label`` is gold: either their rewritten rationale or a verdict they confirmed. A row marked
``"chosen_source": "rationale"`` (or ``"rewritten": true``) is counted as rewritten. With
``confirmed=False`` only rows so marked are used.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.cases import Case
from core.prompts import MODALITY_NAMES
from core.verdicts import parse_verdict

REWRITE_SOURCES = frozenset({"rationale", "reviewer", "clinician", "expert"})
_MODALITY_BY_NAME = {v.lower(): k for k, v in MODALITY_NAMES.items()}


class FeedbackFileError(ValueError):
    """A feedback or case file cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class PreferencePair:
    """One rated A/B pair: the case, the preferred answer and the other one.

    Attributes:
        case: the case, rebuilt from the prompt and the metadata (ground truth where exported).
        chosen: the preferred answer text (``ERROR - ...`` / ``CORRECT - ...``).
        rejected: the other answer text.
        margin: how much more the chosen one is preferred, where the clinician said so.
        rewritten: the chosen text is the clinician's own rationale (a gold answer for SFT).
        reviewer: who rated it.
        line: the line number in the file, for messages.
    """

    case: Case
    chosen: str
    rejected: str
    margin: float | None = None
    rewritten: bool = False
    reviewer: str | None = None
    true_label: str | None = None
    line: int = 0


def _message_text(messages: Any) -> str:
    """The text of a conversational message list (or a plain string)."""
    if isinstance(messages, str):
        return messages
    parts: list[str] = []
    for msg in messages or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [str(p.get("text", "")) for p in content if p.get("type") == "text"]
    return "\n".join(p for p in parts if p)


def parse_case_text(text: str) -> dict[str, str]:
    """The modality, finding and treatment fields of a ``case_text`` prompt (the ones present)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "modality":
            out["modality"] = _MODALITY_BY_NAME.get(value.lower(), value.lower())
        elif key == "clinical finding":
            out["finding"] = value
        elif key == "treatment":
            out["treatment"] = value
    return out


def _pair_from_row(row: dict[str, Any], base: Path, where: str, line: int) -> PreferencePair:
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise FeedbackFileError(f"{where}: missing field {key!r}")
    fields = parse_case_text(_message_text(row["prompt"]))
    modality = row.get("modality") or fields.get("modality")
    if not modality or "finding" not in fields or "treatment" not in fields:
        raise FeedbackFileError(f"{where}: the prompt lacks Modality/Clinical Finding/Treatment")
    images = row.get("images") or []
    image = str(base / images[0]) if images else ""
    true_label = str(row["true_label"]).upper() if row.get("true_label") else None
    error_type = row.get("error_type")
    if error_type is None and true_label in ("ERROR", "CORRECT"):
        error_type = "reviewer_flagged" if true_label == "ERROR" else "none"
    case = Case(
        case_id=str(row.get("case_id") or f"line-{line}"),
        modality=str(modality),
        image=image,
        finding=fields["finding"],
        treatment=fields["treatment"],
        error_type=error_type,
        severity=(row.get("severity") or None) if error_type != "none" else None,
        split=row.get("split"),
    )
    source = str(row.get("chosen_source") or "").lower()
    margin = row.get("margin")
    return PreferencePair(
        case=case,
        chosen=_message_text(row["chosen"]).strip(),
        rejected=_message_text(row["rejected"]).strip(),
        margin=None if margin is None else float(margin),
        rewritten=bool(row.get("rewritten")) or source in REWRITE_SOURCES,
        reviewer=row.get("reviewer"),
        true_label=true_label or case.truth_label,
        line=line,
    )


def read_feedback(path: str | Path) -> list[PreferencePair]:
    """All preference pairs of an ``expert_feedback.jsonl`` file, in file order.

    Raises:
        FeedbackFileError: the file cannot be read, or a line is not a usable pair (the message
            names the file and line).
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FeedbackFileError(f"{p}: cannot read: {exc}") from exc
    pairs: list[PreferencePair] = []
    for i, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{p}:{i}"
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FeedbackFileError(f"{where}: not JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise FeedbackFileError(f"{where}: expected an object")
        pairs.append(_pair_from_row(row, p.parent, where, i))
    return pairs


def read_cases(path: str | Path) -> list[Case]:
    """Cases from a JSONL file of ``Case.to_dict()`` objects (the held-out split the app writes).

    Raises:
        FeedbackFileError: unreadable file or a line that is not a case.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FeedbackFileError(f"{p}: cannot read: {exc}") from exc
    out: list[Case] = []
    for i, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            out.append(Case.from_dict(json.loads(text)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise FeedbackFileError(f"{p}:{i}: not a case: {exc}") from exc
    return out


def write_cases(path: str | Path, cases: Iterable[Case]) -> Path:
    """Write cases as JSONL (the inverse of ``read_cases``); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for c in cases:
            fh.write(json.dumps(c.to_dict()) + "\n")
    return p


def write_feedback(path: str | Path, pairs: Iterable[PreferencePair]) -> Path:
    """Write pairs in the export's TRL conversational format (tests, benchmarks, the simulator).

    Image paths are written as given (absolute paths stay absolute).
    """
    from core.prompts import case_text

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            c = pair.case
            row: dict[str, Any] = {
                "prompt": [
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": case_text(c)}],
                    }
                ],
                "chosen": [
                    {"role": "assistant", "content": [{"type": "text", "text": pair.chosen}]}
                ],
                "rejected": [
                    {"role": "assistant", "content": [{"type": "text", "text": pair.rejected}]}
                ],
                "images": [c.image] if c.image else [],
                "case_id": c.case_id,
                "modality": c.modality,
                "error_type": c.error_type,
                "severity": c.severity,
                "true_label": pair.true_label or c.truth_label,
                "reviewer": pair.reviewer,
            }
            if pair.margin is not None:
                row["margin"] = pair.margin
            if pair.rewritten:
                row["chosen_source"] = "rationale"
            fh.write(json.dumps(row) + "\n")
    return p


def split_pairs(
    pairs: Sequence[PreferencePair], eval_fraction: float, seed: int = 0
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Split pairs into train and held-out by case (a case's pairs never straddle the split).

    With fewer than two cases, or ``eval_fraction`` 0, every pair is for training.
    """
    case_ids = sorted({p.case.case_id for p in pairs})
    if eval_fraction <= 0 or len(case_ids) < 2:
        return list(pairs), []
    rng = random.Random(seed)
    rng.shuffle(case_ids)
    n_eval = min(len(case_ids) - 1, max(1, round(len(case_ids) * eval_fraction)))
    held = set(case_ids[:n_eval])
    return [p for p in pairs if p.case.case_id not in held], [
        p for p in pairs if p.case.case_id in held
    ]


def sft_examples(pairs: Sequence[PreferencePair], confirmed: bool = True) -> list[tuple[Case, str]]:
    """(case, gold answer) for SFT, one per (case, text), in file order: chosen answers marked as
    rewritten, and with ``confirmed`` any chosen answer whose label is the clinician's true label
    (or, without one, the case's ground truth)."""
    seen: set[tuple[str, str]] = set()
    out: list[tuple[Case, str]] = []
    for p in pairs:
        ok = p.rewritten
        truth = p.true_label or p.case.truth_label
        if not ok and confirmed and truth is not None:
            ok = parse_verdict(p.chosen)[0].value == truth
        key = (p.case.case_id, p.chosen)
        if ok and key not in seen:
            seen.add(key)
            out.append((p.case, p.chosen))
    return out


def unique_cases(pairs: Sequence[PreferencePair]) -> list[Case]:
    """The distinct cases of ``pairs``, in first-seen order."""
    seen: dict[str, Case] = {}
    for p in pairs:
        seen.setdefault(p.case.case_id, p.case)
    return list(seen.values())
