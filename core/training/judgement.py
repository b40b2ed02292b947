"""A clinician's judgement of one case, read from a rating: the only ground truth training sees.

Its own module because the training data (``data``), the reward model's pairs and PPO's clinical
reward (``ppo_rewards``) all read it, and none of them may import another to get it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.cases.records import SEVERITIES
from core.clinical.verdicts import Label


@dataclass(frozen=True)
class Judgement:
    """A clinician's judgement of one case, from a rating: the true verdict and, for an error,
    its severity. ``clinical_reward(label, judgement)`` reads exactly these fields.

    Raises:
        ValueError: an unknown verdict or severity.
    """

    case_id: str
    true_label: str
    severity: str | None = None

    def __post_init__(self) -> None:
        if self.true_label not in (Label.ERROR, Label.CORRECT):
            raise ValueError(f"case {self.case_id}: true verdict must be ERROR or CORRECT")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(f"case {self.case_id}: unknown severity {self.severity!r}")

    @property
    def is_error(self) -> bool:
        """True when the clinician said the treatment is an error."""
        return self.true_label == Label.ERROR
