"""The text heuristic on hand-made cases from the shipped knowledge table."""

from __future__ import annotations

from core.cases.records import Case
from core.clinical.knowledge import default_knowledge
from core.clinical.verdicts import Label, parse_verdict
from core.evaluation import evaluate
from core.models.backends import get_backend_class
from core.models.backends.base import Backend
from core.models.backends.heuristic import NO_RULE_REASON, HeuristicBackend


def _case(
    cid: str,
    modality: str,
    finding: str,
    treatment: str,
    error_type: str,
    severity: str | None = None,
) -> Case:
    return Case(
        cid, modality, f"{cid}.png", finding, treatment, error_type=error_type, severity=severity
    )


MISMATCH = _case("m", "xray", "Pneumothorax", "Lobectomy", "treatment_mismatch", "critical")
CONSISTENT = _case("ok", "mri", "Intracranial mass", "Dexamethasone", "none")
# The stated finding and the treatment agree; only the image shows there is no mass.
IMAGE_ONLY = _case(
    "img",
    "ultrasound",
    "Solid hypoechoic mass",
    "Surgical excision of the mass",
    "unsupported_by_image",
    "critical",
)


def test_registered_and_a_backend() -> None:
    assert get_backend_class("heuristic") is HeuristicBackend
    assert issubclass(HeuristicBackend, Backend) and HeuristicBackend.name == "heuristic"


def test_mismatch_caught_with_a_reason_that_names_why() -> None:
    v = HeuristicBackend().predict([MISMATCH])[0]
    assert v.label is Label.ERROR
    assert v.reason == "Lobectomy is not an accepted treatment for Pneumothorax (surgery, critical)"
    assert parse_verdict(v.text) == (Label.ERROR, v.reason)
    assert v.confidence is None and v.latency_ms is not None


def test_consistent_passed_and_lookup_is_case_insensitive() -> None:
    case = _case("ok2", "xray", "  pneumothorax ", "chest TUBE insertion", "none")
    for c in (CONSISTENT, case):
        v = HeuristicBackend().predict([c])[0]
        assert v.label is Label.CORRECT, v.reason
        assert "is an accepted treatment for" in v.reason


def test_image_only_error_is_missed() -> None:
    v = HeuristicBackend().predict([IMAGE_ONLY])[0]
    assert v.label is Label.CORRECT


def test_unknown_finding_no_rule_and_unknown_treatment_flagged() -> None:
    backend = HeuristicBackend()
    v = backend.judge(_case("u", "xray", "Rib fracture", "Lobectomy", "none"))
    assert (v.label, v.reason) == (Label.CORRECT, NO_RULE_REASON)
    # A finding of another modality is not applied across modalities.
    assert (
        backend.judge(_case("u2", "mri", "Pneumothorax", "Lobectomy", "none")).reason
        == NO_RULE_REASON
    )
    v = backend.judge(_case("t", "xray", "Pneumothorax", "Homeopathy", "treatment_mismatch"))
    assert v.label is Label.ERROR
    assert "Homeopathy is not in the knowledge table" in v.reason and "moderate" in v.reason


def test_every_table_pair_is_judged_by_the_table() -> None:
    kt = default_knowledge()
    backend = HeuristicBackend(kt)
    cases, expected = [], []
    for modality, findings in kt.findings.items():
        for f in findings:
            for t in kt.treatments:
                cases.append(_case(f"{modality}-{f.name}-{t}", modality, f.name, t, "none"))
                expected.append(Label.CORRECT if t in f.acceptable else Label.ERROR)
    verdicts = backend.predict(cases, batch_size=16)
    assert [v.label for v in verdicts] == expected


def test_blind_spot_shows_in_the_per_error_type_rate() -> None:
    cases = [MISMATCH, CONSISTENT, IMAGE_ONLY]
    report = evaluate(cases, HeuristicBackend().predict(cases))
    assert report.per_error_type["treatment_mismatch"].tp_rate == 1.0
    assert report.per_error_type["unsupported_by_image"].tp_rate == 0.0
    assert report.critical_misses == ("img",)
    assert report.fpr == 0.0
