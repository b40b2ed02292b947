"""Comparing two model versions' verdicts on the same cases (docs/architecture.md, step 7: Compare).

``compare`` scores both sets with ``evaluate``, puts paired-bootstrap 95% intervals on accuracy,
TP rate, TN rate, FPR and mean reward for A, B and B - A, runs the exact McNemar test on the paired
right/wrong outcomes, and lists the cases whose verdict labels differ (the GUI opens them in the
viewer). The intervals and McNemar use the cases with ground truth; the disagreement list covers
every case, since a disagreement is worth a clinician's look whether or not the truth is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.cases.records import Case
from core.clinical.rewards import clinical_reward
from core.clinical.verdicts import Verdict
from core.evaluation.metrics import EvaluationReport, check_pairs, evaluate, outcome
from core.evaluation.paired import Interval, McNemar, mcnemar_exact, paired_bootstrap


@dataclass(frozen=True)
class Disagreement:
    """A case on which the two versions' verdict labels differ. ``truth`` is None when unknown."""

    case_id: str
    modality: str
    truth: str | None
    label_a: str
    label_b: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "modality": self.modality,
            "truth": self.truth,
            "label_a": self.label_a,
            "label_b": self.label_b,
        }


@dataclass(frozen=True)
class ComparisonReport:
    """Two versions on the same cases.

    Attributes:
        name_a, name_b: the versions' names (for tables, plots and JSON).
        a, b: each version's ``EvaluationReport``.
        intervals: ``{metric: {"a": Interval, "b": Interval, "diff": Interval}}`` for the metrics
            in ``core.evaluation.paired.METRICS``; ``diff`` is B - A.
        mcnemar: the exact McNemar test on the paired outcomes.
        disagreements: the cases where the labels differ, in input order.
        n_boot, seed, level: the bootstrap's settings.
    """

    name_a: str
    name_b: str
    a: EvaluationReport
    b: EvaluationReport
    intervals: dict[str, dict[str, Interval]]
    mcnemar: McNemar
    disagreements: tuple[Disagreement, ...] = ()
    n_boot: int = 2000
    seed: int = 0
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN becomes None)."""
        return {
            "a": {"name": self.name_a, **self.a.to_dict()},
            "b": {"name": self.name_b, **self.b.to_dict()},
            "intervals": {
                m: {who: iv.to_dict() for who, iv in by.items()} for m, by in self.intervals.items()
            },
            "mcnemar": self.mcnemar.to_dict(),
            "disagreements": [d.to_dict() for d in self.disagreements],
            "bootstrap": {"n_boot": self.n_boot, "seed": self.seed, "level": self.level},
        }


def compare(
    cases: Sequence[Case],
    verdicts_a: Sequence[Verdict],
    verdicts_b: Sequence[Verdict],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    name_a: str = "A",
    name_b: str = "B",
) -> ComparisonReport:
    """Compare two sets of verdicts, ``verdicts_a[i]`` and ``verdicts_b[i]`` both on ``cases[i]``.

    Raises:
        ValueError: a verdict list differs in length from ``cases``; a bad ``n_boot`` or ``level``;
            a case whose severity the clinical reward does not know.
    """
    check_pairs(cases, verdicts_a, "verdicts for A")
    check_pairs(cases, verdicts_b, "verdicts for B")
    report_a = evaluate(cases, verdicts_a)
    report_b = evaluate(cases, verdicts_b)
    is_error: list[bool] = []
    right_a: list[bool] = []
    right_b: list[bool] = []
    reward_a: list[float] = []
    reward_b: list[float] = []
    disagreements: list[Disagreement] = []
    for case, va, vb in zip(cases, verdicts_a, verdicts_b, strict=True):
        if va.label is not vb.label:
            disagreements.append(
                Disagreement(
                    case.case_id, case.modality, case.truth_label, va.label.value, vb.label.value
                )
            )
        if case.is_error is None:
            continue
        err, ra = outcome(case, va)
        _, rb = outcome(case, vb)
        is_error.append(err)
        right_a.append(ra)
        right_b.append(rb)
        reward_a.append(clinical_reward(va.label, case))
        reward_b.append(clinical_reward(vb.label, case))
    ra_arr, rb_arr = np.array(right_a, dtype=bool), np.array(right_b, dtype=bool)
    intervals = paired_bootstrap(
        np.array(is_error, dtype=bool),
        ra_arr,
        rb_arr,
        np.array(reward_a, dtype=np.float64),
        np.array(reward_b, dtype=np.float64),
        n_boot=n_boot,
        seed=seed,
        level=level,
    )
    test = mcnemar_exact(int(np.sum(ra_arr & ~rb_arr)), int(np.sum(~ra_arr & rb_arr)))
    return ComparisonReport(
        name_a,
        name_b,
        report_a,
        report_b,
        intervals,
        test,
        tuple(disagreements),
        n_boot,
        seed,
        level,
    )
