"""The case: one image, a stated finding and a proposed treatment, with ground truth where known.

``Case`` is the engine's unit of work. It is a frozen dataclass with no database in sight: the
store (``feedback_db``) keeps its own records and ``app`` converts between the two.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

MODALITIES: tuple[str, ...] = ("xray", "histopathology", "mri", "ultrasound")
# train: what the models were made from; review: new cases clinicians rate; val: every choice
# (checkpoints, settings, the safety gate); test: the reported table only.
SPLITS: tuple[str, ...] = ("train", "review", "val", "test")
SEVERITIES: tuple[str, ...] = ("critical", "high", "moderate")
ERROR_TYPES: tuple[str, ...] = ("none", "treatment_mismatch", "unsupported_by_image")

# Accepted spellings for a modality in a manifest, mapped to the canonical name.
MODALITY_ALIASES: dict[str, str] = {
    "xray": "xray",
    "x-ray": "xray",
    "x ray": "xray",
    "cr": "xray",
    "dx": "xray",
    "radiograph": "xray",
    "histopathology": "histopathology",
    "histology": "histopathology",
    "pathology": "histopathology",
    "sm": "histopathology",
    "mri": "mri",
    "mr": "mri",
    "ultrasound": "ultrasound",
    "us": "ultrasound",
    "sonography": "ultrasound",
}


def new_case_id() -> str:
    """A random case id, never derived from patient data (docs/architecture.md, Cases)."""
    return "case-" + secrets.token_hex(8)


def normalize_modality(value: str) -> str:
    """Return the canonical modality name for ``value``.

    Raises:
        ValueError: the value names no known modality; the message lists the accepted ones.
    """
    key = value.strip().lower()
    if key not in MODALITY_ALIASES:
        raise ValueError(f"unknown modality {value!r}; expected one of {', '.join(MODALITIES)}")
    return MODALITY_ALIASES[key]


@dataclass(frozen=True)
class Case:
    """One case to judge.

    Attributes:
        case_id: random identifier.
        modality: one of ``MODALITIES``.
        image: path of the image, relative to the workspace (or absolute before import).
        finding: the stated clinical finding.
        treatment: the proposed treatment.
        error_type: ground truth, ``"none"`` for a consistent case; ``None`` when unknown.
        severity: for errors, ``critical`` | ``high`` | ``moderate``; ``None`` otherwise.
        cost_impact: cost of acting on the error, in USD, where known.
        split: ``train`` | ``review`` | ``val`` | ``test``, where assigned.
        meta: provenance that display needs (DICOM window, pixel spacing); never patient data.
    """

    case_id: str
    modality: str
    image: str
    finding: str
    treatment: str
    error_type: str | None = None
    severity: str | None = None
    cost_impact: float | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_error(self) -> bool | None:
        """True when the ground truth says the treatment is wrong; None when unknown."""
        if self.error_type is None:
            return None
        return self.error_type != "none"

    @property
    def truth_label(self) -> str | None:
        """``"ERROR"`` or ``"CORRECT"`` from the ground truth; None when unknown."""
        err = self.is_error
        if err is None:
            return None
        return "ERROR" if err else "CORRECT"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
