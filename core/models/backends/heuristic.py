"""The text heuristic: the plan's 79% baseline. It reads the finding and the treatment, never the image.

For each case it looks the stated finding up in the knowledge table (``resources/knowledge.json``)
for the case's modality and answers:

- ``ERROR - <treatment> is not an accepted treatment for <finding> (<class>, <severity>)`` when the
  treatment is not one of the finding's acceptable treatments (a treatment the table does not know
  at all is reported as such, with the severity the table gives unknown treatments, moderate);
- ``CORRECT - <treatment> is an accepted treatment for <finding>`` when it is;
- ``CORRECT - finding not in the knowledge table; no rule applies`` when the finding is unknown.
  A text rule has nothing to flag there, and raising a false alarm on every unfamiliar finding
  would make the baseline worse than saying nothing; the reason says plainly that no rule was
  applied, so a reviewer can tell it from a checked CORRECT.

It cannot see an error that is visible only in the image (a stated finding the image does not
show): on those cases it always answers CORRECT. That blind spot is the point of the baseline, and
the evaluation's per-error-type TP rate makes it visible.

Confidence is always None: the heuristic has no probabilities, and inventing one would make the
uncertainty ordering of the review queue and the evaluation's mean confidence meaningless.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.cases.records import Case
from core.clinical.knowledge import KnowledgeTable, default_knowledge
from core.clinical.verdicts import Label, Verdict
from core.models.backends.base import Backend

NO_RULE_REASON = "finding not in the knowledge table; no rule applies"


class HeuristicBackend(Backend):
    """Text-only verdicts from a knowledge table of finding -> acceptable treatments.

    Args:
        knowledge: the table to apply; the shipped ``resources/knowledge.json`` when None.
    """

    name = "heuristic"

    def __init__(self, knowledge: KnowledgeTable | None = None) -> None:
        self.knowledge = knowledge if knowledge is not None else default_knowledge()

    def judge(self, case: Case) -> Verdict:
        """The verdict for one case (no latency; ``predict`` measures that)."""
        kt = self.knowledge
        finding = kt.finding(case.modality, case.finding)
        if finding is None:
            return _verdict(Label.CORRECT, NO_RULE_REASON)
        acceptable = kt.is_acceptable(case.modality, case.finding, case.treatment)
        if acceptable:
            reason = f"{case.treatment} is an accepted treatment for {finding.name}"
            return _verdict(Label.CORRECT, reason)
        treatment = kt.treatment(case.treatment)
        if treatment is None:
            reason = (
                f"{case.treatment} is not in the knowledge table and not an accepted treatment "
                f"for {finding.name} (unknown treatment, {kt.severity_of(case.treatment)})"
            )
        else:
            reason = (
                f"{treatment.name} is not an accepted treatment for {finding.name} "
                f"({treatment.klass}, {treatment.severity})"
            )
        return _verdict(Label.ERROR, reason)

    def _predict_batch(self, cases: Sequence[Case]) -> list[Verdict]:
        return [self.judge(c) for c in cases]


def _verdict(label: Label, reason: str) -> Verdict:
    return Verdict(label, reason, None, f"{label.value} - {reason}")
