"""Scoring one set of verdicts against the ground truth. Positive = ERROR.

Definitions (every figure is over the cases that have ground truth; the others are skipped and
counted in ``skipped_no_truth``):

- TP: an error case answered ERROR. FN: an error case answered CORRECT or UNPARSEABLE (a miss).
- TN: a correct case answered CORRECT. FP: a correct case answered ERROR *or UNPARSEABLE*.
  UNPARSEABLE is always wrong (docs/architecture.md): it passes nothing, so it is not a true negative, and it
  costs a clinician's time like a false alarm, so the false positive rate counts it.
- accuracy = (TP + TN) / n; TP rate = TP / errors; TN rate = TN / correct cases;
  FPR = 1 - TN rate = FP / correct cases.
- precision = TP / (TP + false alarms), where false alarms are ERROR verdicts on correct cases only:
  precision is about the verdicts that actually said ERROR, and an unparseable answer said nothing.
- critical misses: error cases of severity critical whose verdict is not ERROR.
- mean reward: ``core.clinical.rewards.clinical_reward``, exactly, averaged.
- latency p50/p95 and mean confidence: over the verdicts that carry them (the heuristic has no
  confidence, so its mean confidence is None).

A zero denominator gives NaN in the Python objects, None in ``to_dict()`` (JSON-safe) and ``n/a``
in the tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.cases.records import MODALITIES, Case
from core.clinical.rewards import clinical_reward
from core.clinical.verdicts import Label, Verdict

NAN = float("nan")


def ratio(num: float, den: float) -> float:
    """``num / den``, NaN when ``den`` is zero."""
    return num / den if den else NAN


def json_number(x: float | None) -> float | None:
    """A float for JSON: None for NaN, infinities and None."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


@dataclass(frozen=True)
class GroupMetrics:
    """The confusion counts of a group of cases (all of them, or one modality) and their rates.

    Attributes:
        tp, fn, tn, fp: as in the module docstring (fp includes unparseable on correct cases).
        false_alarms: ERROR verdicts on correct cases (fp without the unparseable ones).
        unparseable: UNPARSEABLE verdicts, on any case.
        reward_sum: the summed clinical reward.
    """

    tp: int = 0
    fn: int = 0
    tn: int = 0
    fp: int = 0
    false_alarms: int = 0
    unparseable: int = 0
    reward_sum: float = 0.0

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.tn + self.fp

    @property
    def n_errors(self) -> int:
        return self.tp + self.fn

    @property
    def n_correct(self) -> int:
        return self.tn + self.fp

    @property
    def accuracy(self) -> float:
        return ratio(self.tp + self.tn, self.n)

    @property
    def tp_rate(self) -> float:
        return ratio(self.tp, self.n_errors)

    @property
    def tn_rate(self) -> float:
        return ratio(self.tn, self.n_correct)

    @property
    def fpr(self) -> float:
        return ratio(self.fp, self.n_correct)

    @property
    def precision(self) -> float:
        return ratio(self.tp, self.tp + self.false_alarms)

    @property
    def mean_reward(self) -> float:
        return ratio(self.reward_sum, self.n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_errors": self.n_errors,
            "n_correct": self.n_correct,
            "tp": self.tp,
            "fn": self.fn,
            "tn": self.tn,
            "fp": self.fp,
            "false_alarms": self.false_alarms,
            "unparseable": self.unparseable,
            "accuracy": json_number(self.accuracy),
            "tp_rate": json_number(self.tp_rate),
            "tn_rate": json_number(self.tn_rate),
            "fpr": json_number(self.fpr),
            "precision": json_number(self.precision),
            "mean_reward": json_number(self.mean_reward),
        }


@dataclass(frozen=True)
class ErrorTypeMetrics:
    """How many error cases of one type there were and how many were caught."""

    n: int
    caught: int

    @property
    def tp_rate(self) -> float:
        return ratio(self.caught, self.n)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "caught": self.caught, "tp_rate": json_number(self.tp_rate)}


@dataclass(frozen=True)
class EvaluationReport:
    """The metrics of one set of verdicts. Rates are NaN where their denominator is zero.

    Attributes:
        overall: counts and rates over every case with ground truth.
        per_modality: the same per modality, in ``core.cases.records.MODALITIES`` order where present.
        per_error_type: TP rate per error type (``treatment_mismatch``, ``unsupported_by_image``).
        critical_misses: ids of critical error cases whose verdict was not ERROR.
        n_critical: critical error cases.
        skipped_no_truth: cases left out because their ground truth is unknown.
        latency_p50_ms, latency_p95_ms: percentiles of ``Verdict.latency_ms``.
        mean_confidence: mean of ``Verdict.confidence``.
    """

    overall: GroupMetrics
    per_modality: dict[str, GroupMetrics] = field(default_factory=dict)
    per_error_type: dict[str, ErrorTypeMetrics] = field(default_factory=dict)
    critical_misses: tuple[str, ...] = ()
    n_critical: int = 0
    skipped_no_truth: int = 0
    latency_p50_ms: float = NAN
    latency_p95_ms: float = NAN
    mean_confidence: float = NAN

    # The overall figures, read directly off the report.
    @property
    def n(self) -> int:
        return self.overall.n

    @property
    def accuracy(self) -> float:
        return self.overall.accuracy

    @property
    def tp_rate(self) -> float:
        return self.overall.tp_rate

    @property
    def tn_rate(self) -> float:
        return self.overall.tn_rate

    @property
    def fpr(self) -> float:
        return self.overall.fpr

    @property
    def precision(self) -> float:
        return self.overall.precision

    @property
    def unparseable(self) -> int:
        return self.overall.unparseable

    @property
    def mean_reward(self) -> float:
        return self.overall.mean_reward

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: the overall figures at the top, then the breakdowns."""
        out = self.overall.to_dict()
        out.update(
            {
                "critical_misses": len(self.critical_misses),
                "critical_miss_ids": list(self.critical_misses),
                "n_critical": self.n_critical,
                "skipped_no_truth": self.skipped_no_truth,
                "latency_p50_ms": json_number(self.latency_p50_ms),
                "latency_p95_ms": json_number(self.latency_p95_ms),
                "mean_confidence": json_number(self.mean_confidence),
                "per_modality": {m: g.to_dict() for m, g in self.per_modality.items()},
                "per_error_type": {t: e.to_dict() for t, e in self.per_error_type.items()},
            }
        )
        return out


def check_pairs(cases: Sequence[Case], verdicts: Sequence[Verdict], what: str = "verdicts") -> None:
    """Raise ``ValueError`` unless there is exactly one verdict per case."""
    if len(cases) != len(verdicts):
        raise ValueError(f"{len(cases)} cases but {len(verdicts)} {what}; one per case is required")


def outcome(case: Case, verdict: Verdict) -> tuple[bool, bool]:
    """``(is_error, right)`` for a case with ground truth; UNPARSEABLE is never right."""
    is_error = bool(case.is_error)
    right = verdict.label is (Label.ERROR if is_error else Label.CORRECT)
    return is_error, right


def _count(pairs: Sequence[tuple[Case, Verdict]]) -> GroupMetrics:
    tp = fn = tn = fp = alarms = unp = 0
    reward = 0.0
    for case, v in pairs:
        is_error, right = outcome(case, v)
        unp += v.label is Label.UNPARSEABLE
        reward += clinical_reward(v.label, case)
        if is_error:
            tp += right
            fn += not right
        else:
            tn += right
            fp += not right
            alarms += v.label is Label.ERROR
    return GroupMetrics(tp, fn, tn, fp, alarms, unp, reward)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else NAN


def evaluate(cases: Sequence[Case], verdicts: Sequence[Verdict]) -> EvaluationReport:
    """Score ``verdicts[i]`` against the ground truth of ``cases[i]``.

    Raises:
        ValueError: the two sequences differ in length, or a case's severity is not one the
            clinical reward knows (the message names the case).
    """
    check_pairs(cases, verdicts)
    pairs = [(c, v) for c, v in zip(cases, verdicts, strict=True) if c.is_error is not None]
    skipped = len(cases) - len(pairs)
    by_modality: dict[str, list[tuple[Case, Verdict]]] = {}
    by_type: dict[str, list[bool]] = {}
    critical: list[str] = []
    n_critical = 0
    for case, v in pairs:
        by_modality.setdefault(case.modality, []).append((case, v))
        if case.is_error:
            caught = v.label is Label.ERROR
            by_type.setdefault(str(case.error_type), []).append(caught)
            if case.severity == "critical":
                n_critical += 1
                if not caught:
                    critical.append(case.case_id)
    order = [m for m in MODALITIES if m in by_modality] + sorted(
        m for m in by_modality if m not in MODALITIES
    )
    latencies = [v.latency_ms for _, v in pairs if v.latency_ms is not None]
    confidences = [v.confidence for _, v in pairs if v.confidence is not None]
    return EvaluationReport(
        overall=_count(pairs),
        per_modality={m: _count(by_modality[m]) for m in order},
        per_error_type={t: ErrorTypeMetrics(len(f), sum(f)) for t, f in sorted(by_type.items())},
        critical_misses=tuple(critical),
        n_critical=n_critical,
        skipped_no_truth=skipped,
        latency_p50_ms=_percentile(latencies, 50),
        latency_p95_ms=_percentile(latencies, 95),
        mean_confidence=float(np.mean(confidences)) if confidences else NAN,
    )
