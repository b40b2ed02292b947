"""Which cases the demo benchmark holds: modality, scenario kind, stated and shown finding,
treatment and split, planned before any pixel is drawn.

Three kinds (``Case.error_type``):

- ``none``: the treatment is acceptable for the stated finding, and the image shows it;
- ``treatment_mismatch``: the image shows the stated finding, but the treatment does not fit it
  (a treatment for another finding of the same modality): the error is visible in the text;
- ``unsupported_by_image``: the treatment fits the stated finding, but the image shows another
  finding (with a different visual): the error is visible only in the image.

Errors carry the proposed treatment's severity and cost from the knowledge table. Every stratum
(modality, kind, stated finding) is split train/review/val/test by the configured fractions, with
at least one case in each split once the stratum has four, so every finding of every modality
appears in every split from 201 cases on (with the default mix and splits).

The splits mirror real life (docs/architecture.md): ``train`` is what the demo models are made from before
deployment; ``review`` the new cases clinicians (or the simulated reviewers) rate, which no model
has seen; ``val`` is for every choice (checkpoints, settings, the safety gate); ``test`` is
touched once, for the reported table. Changing the fractions changes only which split a planned
case lands in: the random draws, hence every case and every image of a seed, stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.cases.records import MODALITIES, SPLITS
from core.clinical.knowledge import Finding, KnowledgeTable

KINDS: tuple[str, ...] = ("none", "treatment_mismatch", "unsupported_by_image")
SPLIT_FRACTIONS: tuple[float, float, float, float] = (0.45, 0.25, 0.15, 0.15)
MIN_CASES_ALL_SPLITS = 201  # from here on every finding and kind is in every split (tested)


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


def split_counts(count: int, fractions: tuple[float, ...]) -> list[int]:
    """Per-split counts of a stratum; each split with a positive fraction gets at least one once
    ``count`` reaches the number of such splits (a split with fraction 0 gets none)."""
    parts = allocate(count, fractions)
    if count >= sum(f > 0 for f in fractions):
        for i, p in enumerate(parts):
            if p == 0 and fractions[i] > 0:
                parts[int(np.argmax(parts))] -= 1
                parts[i] = 1
    return parts


def plan_scenarios(
    kt: KnowledgeTable,
    n_cases: int,
    mix: tuple[float, float, float],
    splits: tuple[float, ...],
    rng: np.random.Generator,
) -> list[Scenario]:
    """The planned cases, shuffled. Deterministic for a given ``rng`` state.

    ``splits`` has one fraction per name in ``core.cases.records.SPLITS`` (train, review, val, test).

    Raises:
        ValueError: a modality has fewer than two findings with different visuals, or a finding
            has no acceptable treatment or no unacceptable one.
    """
    if len(splits) != len(SPLITS):
        raise ValueError(
            f"splits needs {len(SPLITS)} fractions ({', '.join(SPLITS)}), got {splits!r}"
        )
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
