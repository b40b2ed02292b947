"""Verdicts: the one-line ``ERROR - ...`` / ``CORRECT - ...`` answer and its parser.

The parser is tolerant of case, surrounding whitespace, markdown emphasis and the dash style, and
strict about everything else: an answer whose first non-empty line does not start with the verdict
word is ``UNPARSEABLE``, which every metric counts as wrong and which is never read as CORRECT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Label(StrEnum):
    ERROR = "ERROR"
    CORRECT = "CORRECT"
    UNPARSEABLE = "UNPARSEABLE"


# First line: optional markdown/quote noise, the verdict word, then a separator and the reason.
_VERDICT_RE = re.compile(
    r"^[\s*_>`#\"']*(?P<word>error|correct)\b[\s*_`\"']*(?:[-\u2013\u2014:]+\s*(?P<reason>.*))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    """A model's answer for one case.

    Attributes:
        label: ERROR, CORRECT or UNPARSEABLE.
        reason: the text after the verdict word (the whole text when unparseable).
        confidence: the model's probability of its verdict word, in [0, 1]; None when the back
            end has no probabilities (the text heuristic).
        text: the raw text the model wrote.
        latency_ms: wall time for this case (a batch's time divided by its size when batched).
    """

    label: Label
    reason: str
    confidence: float | None = None
    text: str = ""
    latency_ms: float | None = None

    @property
    def is_error(self) -> bool | None:
        """True for ERROR, False for CORRECT, None for UNPARSEABLE."""
        if self.label is Label.UNPARSEABLE:
            return None
        return self.label is Label.ERROR

    def format(self) -> str:
        """The canonical one-line form, ``ERROR - reason``."""
        if self.label is Label.UNPARSEABLE:
            return self.text
        return f"{self.label.value} - {self.reason}".rstrip(" -")


def parse_verdict(text: str) -> tuple[Label, str]:
    """Parse a model's answer into its label and reason.

    Only the first non-empty line decides. ``"error - wrong drug"``, ``"**CORRECT**: fine"`` and
    ``" Error — x"`` parse; ``"The answer is ERROR"`` and ``""`` are UNPARSEABLE.
    """
    first = ""
    for line in text.splitlines():
        if line.strip():
            first = line.strip()
            break
    match = _VERDICT_RE.match(first)
    if not match:
        return Label.UNPARSEABLE, text.strip()
    word = match.group("word").upper()
    reason = (match.group("reason") or "").strip().strip("*_`\"' ")
    return Label(word), reason


def make_verdict(
    text: str, confidence: float | None = None, latency_ms: float | None = None
) -> Verdict:
    """Build a ``Verdict`` from raw model text."""
    label, reason = parse_verdict(text)
    if confidence is not None:
        confidence = min(1.0, max(0.0, float(confidence)))
    return Verdict(label, reason, confidence, text, latency_ms)
