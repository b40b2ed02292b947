"""Between the store's records and the engine's objects: the one place ``app`` converts them.

``core`` and ``feedback_db`` never import each other (docs/architecture.md), so ``app`` turns a
``feedback_db.CaseRecord`` into a ``core.cases.records.Case`` and a stored ``Prediction`` into a
``core.clinical.verdicts.Verdict`` (and back, for the verbs that write). Every verb and view uses these.
"""

from __future__ import annotations

from core.cases.records import Case
from core.clinical.verdicts import Label, Verdict
from feedback_db import CaseIn, CaseRecord, Prediction, PredictionIn


def case_from_record(rec: CaseRecord) -> Case:
    """The engine's ``Case`` for a stored case (same fields, ``created_at`` dropped)."""
    return Case(
        case_id=rec.case_id,
        modality=rec.modality,
        image=rec.image,
        finding=rec.finding,
        treatment=rec.treatment,
        error_type=rec.error_type,
        severity=rec.severity,
        cost_impact=rec.cost_impact,
        split=rec.split,
        meta=dict(rec.meta or {}),
    )


def case_in_from_case(case: Case) -> CaseIn:
    """The store's input record for an engine ``Case``.

    Raises:
        ValueError: a field the store refuses; the message names it.
    """
    return CaseIn(
        case_id=case.case_id,
        modality=case.modality,
        image=case.image,
        finding=case.finding,
        treatment=case.treatment,
        error_type=case.error_type,
        severity=case.severity,
        cost_impact=case.cost_impact,
        split=case.split,
        meta=dict(case.meta),
        burned_in=bool(case.meta.get("burned_in")),
    )


def verdict_from_prediction(p: Prediction) -> Verdict:
    """The engine's ``Verdict`` for a stored prediction.

    Raises:
        ValueError: the stored label is not ERROR, CORRECT or UNPARSEABLE (names the prediction).
    """
    try:
        label = Label(p.label)
    except ValueError as exc:
        raise ValueError(
            f"prediction {p.id} (version {p.version}, case {p.case_id}): label {p.label!r} is not "
            f"one of {', '.join(lbl.value for lbl in Label)}"
        ) from exc
    return Verdict(label, p.reason, p.confidence, p.text, p.latency_ms)


def prediction_in_from_verdict(case_id: str, verdict: Verdict) -> PredictionIn:
    """The store's input record for a verdict on ``case_id``."""
    return PredictionIn(
        case_id=case_id,
        label=verdict.label.value,
        reason=verdict.reason,
        text=verdict.text,
        confidence=verdict.confidence,
        latency_ms=verdict.latency_ms,
    )
