"""The clinical knowledge table: findings per modality, acceptable treatments, their class and cost.

The table is data (``resources/knowledge.json``), not code, so a clinical lead can edit it. Each
treatment has a class (surgery, chemotherapy, procedure, imaging, medication, observation), a cost
in USD and the severity an error with it carries: critical for surgery and chemotherapy, high for
expensive procedures, moderate otherwise (the original plan).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import resources
from core.cases.records import MODALITIES, SEVERITIES

TREATMENT_CLASSES = ("surgery", "chemotherapy", "procedure", "imaging", "medication", "observation")


class KnowledgeError(ValueError):
    """The knowledge table file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Treatment:
    name: str
    klass: str
    cost_usd: float
    severity: str


@dataclass(frozen=True)
class Finding:
    name: str
    modality: str
    acceptable: tuple[str, ...]
    visual: str
    normal: bool
    clip_text: str


@dataclass(frozen=True)
class KnowledgeTable:
    treatments: dict[str, Treatment]
    findings: dict[str, tuple[Finding, ...]]  # by modality
    source: str = ""

    def findings_for(self, modality: str) -> tuple[Finding, ...]:
        return self.findings[modality]

    def finding(self, modality: str, name: str) -> Finding | None:
        """The finding of ``modality`` whose name matches ``name`` (case-insensitive)."""
        key = _norm(name)
        for f in self.findings.get(modality, ()):
            if _norm(f.name) == key:
                return f
        return None

    def treatment(self, name: str) -> Treatment | None:
        key = _norm(name)
        for t in self.treatments.values():
            if _norm(t.name) == key:
                return t
        return None

    def is_acceptable(self, modality: str, finding: str, treatment: str) -> bool | None:
        """Whether ``treatment`` is acceptable for ``finding``; None when the finding is unknown."""
        f = self.finding(modality, finding)
        if f is None:
            return None
        return _norm(treatment) in {_norm(a) for a in f.acceptable}

    def severity_of(self, treatment: str) -> str:
        """Severity of an error made with ``treatment``; moderate for unknown treatments."""
        t = self.treatment(treatment)
        return t.severity if t else "moderate"

    def cost_of(self, treatment: str) -> float:
        t = self.treatment(treatment)
        return t.cost_usd if t else 0.0


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def load_knowledge(path: str | Path | None = None) -> KnowledgeTable:
    """Load and validate a knowledge table (the shipped one when ``path`` is None).

    Raises:
        KnowledgeError: naming the file and the offending field.
    """
    p = Path(path) if path is not None else resources.path("knowledge.json")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise KnowledgeError(f"{p}: cannot read the knowledge table: {exc}") from exc
    return _parse(doc, str(p))


@lru_cache(maxsize=1)
def default_knowledge() -> KnowledgeTable:
    """The shipped table, loaded once."""
    return load_knowledge()


def _parse(doc: dict, src: str) -> KnowledgeTable:
    treatments: dict[str, Treatment] = {}
    for name, t in doc.get("treatments", {}).items():
        where = f"{src}: treatments.{name}"
        if t.get("class") not in TREATMENT_CLASSES:
            raise KnowledgeError(
                f"{where}.class: {t.get('class')!r} is not one of {TREATMENT_CLASSES}"
            )
        if t.get("severity") not in SEVERITIES:
            raise KnowledgeError(
                f"{where}.severity: {t.get('severity')!r} is not one of {SEVERITIES}"
            )
        try:
            cost = float(t["cost_usd"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KnowledgeError(f"{where}.cost_usd: a number is required") from exc
        treatments[name] = Treatment(name, t["class"], cost, t["severity"])
    findings: dict[str, tuple[Finding, ...]] = {}
    for modality, m in doc.get("modalities", {}).items():
        if modality not in MODALITIES:
            raise KnowledgeError(f"{src}: modalities.{modality}: unknown modality")
        out = []
        for fname, f in m.get("findings", {}).items():
            where = f"{src}: modalities.{modality}.findings.{fname}"
            for a in f.get("acceptable", []):
                if a not in treatments:
                    raise KnowledgeError(f"{where}.acceptable: {a!r} is not in treatments")
            out.append(
                Finding(
                    fname,
                    modality,
                    tuple(f.get("acceptable", [])),
                    str(f.get("visual", "")),
                    bool(f.get("normal", False)),
                    str(f.get("clip_text", fname)),
                )
            )
        findings[modality] = tuple(out)
    missing = [m for m in MODALITIES if m not in findings]
    if missing:
        raise KnowledgeError(f"{src}: modalities: missing {', '.join(missing)}")
    return KnowledgeTable(treatments, findings, src)
