"""Which cases the demo benchmark holds: modality, scenario kind, stated and shown finding,
treatment and split, planned before any pixel is drawn.

Three kinds (``Case.error_type``):

- ``none``: the treatment is acceptable for the stated finding, and the image shows it;
- ``treatment_mismatch``: the image shows the stated finding, but the treatment does not fit it
  (a treatment for another finding of the same modality): the error is visible in the text;
- ``unsupported_by_image``: the treatment fits the stated finding, but the image shows another
  finding (with a different visual): the error is visible only in the image.

Errors carry the proposed treatment's severity and cost from the knowledge table. Every stratum
(modality, kind, stated finding) is split train/val/test by the configured fractions, with at
least one case in each split once the stratum has three, so every finding of every modality
appears in every split from 140 cases on (with the default mix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.cases import MODALITIES, SPLITS
from core.knowledge import Finding, KnowledgeTable

KINDS: tuple[str, ...] = ("none", "treatment_mismatch", "unsupported_by_image")


@dataclass(frozen=True)
class Scenario:
    """One planned case; ``shown`` is the finding the phantom image will show."""

    modality: str
    kind: str
    stated: Finding
    shown: Finding
    treatment: str
    split: str
    severity: str | None
    cost_impact: float


def allocate(total: int, fractions: tuple[float, ...]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``fractions`` (largest remainder)."""
    weights = np.asarray(fractions, dtype=float)
    exact = total * weights / weights.sum()
    parts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - parts), kind="stable")
    for i in order[: total - int(parts.sum())]:
        parts[i] += 1
    return [int(p) for p in parts]


def split_counts(count: int, fractions: tuple[float, float, float]) -> list[int]:
    """Per-split counts of a stratum; each split gets at least one once ``count`` >= 3."""
    parts = allocate(count, fractions)
    if count >= len(parts):
        for i, p in enumerate(parts):
            if p == 0:
                parts[int(np.argmax(parts))] -= 1
                parts[i] = 1
    return parts


def plan_scenarios(
    kt: KnowledgeTable,
    n_cases: int,
    mix: tuple[float, float, float],
    splits: tuple[float, float, float],
    rng: np.random.Generator,
) -> list[Scenario]:
    """The planned cases, shuffled. Deterministic for a given ``rng`` state.

    Raises:
        ValueError: a modality has fewer than two findings with different visuals, or a finding
            has no acceptable treatment or no unacceptable one.
    """
    out: list[Scenario] = []
    for modality, n_mod in zip(
        MODALITIES, allocate(n_cases, (1.0,) * len(MODALITIES)), strict=True
    ):
        findings = kt.findings_for(modality)
        if len({f.visual for f in findings}) < 2:
            raise ValueError(f"knowledge table: {modality} needs findings with two visuals or more")
        for kind, n_kind in zip(KINDS, allocate(n_mod, mix), strict=True):
            for stated, n_f in zip(findings, allocate(n_kind, (1.0,) * len(findings)), strict=True):
                split_list = [
                    s
                    for s, c in zip(SPLITS, split_counts(n_f, splits), strict=True)
                    for _ in range(c)
                ]
                for split in split_list:
                    out.append(_one(kt, modality, kind, stated, findings, split, rng))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def _one(
    kt: KnowledgeTable,
    modality: str,
    kind: str,
    stated: Finding,
    findings: tuple[Finding, ...],
    split: str,
    rng: np.random.Generator,
) -> Scenario:
    if not stated.acceptable:
        raise ValueError(f"knowledge table: {modality} / {stated.name} has no acceptable treatment")
    shown = stated
    if kind == "treatment_mismatch":
        ok = {a.lower() for a in stated.acceptable}
        pool = sorted({t for f in findings for t in f.acceptable if t.lower() not in ok})
        if not pool:
            pool = sorted(t for t in kt.treatments if t.lower() not in ok)
        if not pool:
            raise ValueError(f"knowledge table: every treatment fits {stated.name}")
        treatment = pool[int(rng.integers(0, len(pool)))]
    else:
        treatment = stated.acceptable[int(rng.integers(0, len(stated.acceptable)))]
        if kind == "unsupported_by_image":
            others = [f for f in findings if f.visual != stated.visual]
            shown = others[int(rng.integers(0, len(others)))]
    if kind == "none":
        return Scenario(modality, kind, stated, shown, treatment, split, None, 0.0)
    return Scenario(
        modality,
        kind,
        stated,
        shown,
        treatment,
        split,
        kt.severity_of(treatment),
        kt.cost_of(treatment),
    )
