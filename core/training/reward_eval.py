"""How well a reward model judges the verdict: held-out pairwise accuracy, by group.

A reward model can look good on a lopsided mix of pairs while it learned a phrase ("the image does
not show ...") rather than the verdict. So its accuracy is reported by group:

- ``rated`` and ``flipped`` pairs (``core.training.data``): a flipped pair is a right answer over
  the same reason with the other verdict word, so only the verdict tells them apart;
- by the chosen answer's verdict word (``chosen ERROR`` / ``chosen CORRECT``);
- by any key the caller gives (the benchmark passes the demo's scenario kind: ground truth, used
  for this report only, never for training).

``reward_accuracy`` scores each distinct (case, answer) once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.cases.records import Case
from core.clinical.verdicts import parse_verdict
from core.training.data import PreferencePair

if TYPE_CHECKING:
    from core.training.reward import RewardModel


@dataclass(frozen=True)
class GroupAccuracy:
    """Pairwise accuracy of one group of pairs."""

    pairs: int
    accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "accuracy": self.accuracy}


@dataclass(frozen=True)
class RewardAccuracy:
    """Pairwise accuracy overall and by group (``groups``: name -> ``GroupAccuracy``)."""

    pairs: int
    accuracy: float | None
    groups: dict[str, GroupAccuracy] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "accuracy": self.accuracy,
            "groups": {k: v.to_dict() for k, v in self.groups.items()},
        }

    def line(self) -> str:
        """One line: overall, then each group."""
        if self.accuracy is None:
            return "no held-out pairs"
        parts = [
            f"{k} {v.accuracy:.1%} of {v.pairs}"
            for k, v in self.groups.items()
            if v.accuracy is not None
        ]
        return f"held-out pairwise accuracy {self.accuracy:.1%} of {self.pairs} pairs ({', '.join(parts)})"


def pair_wins(rm: RewardModel, pairs: Sequence[PreferencePair], batch_size: int = 16) -> list[bool]:
    """For each pair, whether the reward model scores the chosen answer above the rejected one."""
    keys: dict[tuple[str, str], int] = {}
    cases: list[Case] = []
    texts: list[str] = []
    for p in pairs:
        for text in (p.chosen, p.rejected):
            key = (p.case.case_id, text)
            if key not in keys:
                keys[key] = len(texts)
                cases.append(p.case)
                texts.append(text)
    scores = rm.score(cases, texts, batch_size) if texts else []
    return [
        scores[keys[(p.case.case_id, p.chosen)]] > scores[keys[(p.case.case_id, p.rejected)]]
        for p in pairs
    ]


def reward_accuracy(
    rm: RewardModel,
    pairs: Sequence[PreferencePair],
    key: Callable[[PreferencePair], str | None] | None = None,
    batch_size: int = 16,
) -> RewardAccuracy:
    """Pairwise accuracy of ``rm`` on ``pairs``, overall, for rated and flipped pairs, by chosen
    verdict, and by ``key`` (pairs whose key is None are counted only overall)."""
    wins = pair_wins(rm, pairs, batch_size)
    groups: dict[str, list[bool]] = defaultdict(list)
    for p, w in zip(pairs, wins, strict=True):
        groups[p.kind].append(w)
        groups[f"chosen {parse_verdict(p.chosen)[0].value}"].append(w)
        extra = key(p) if key is not None else None
        if extra is not None:
            groups[extra].append(w)
    return RewardAccuracy(
        len(pairs),
        sum(wins) / len(wins) if wins else None,
        {k: GroupAccuracy(len(v), sum(v) / len(v)) for k, v in sorted(groups.items())},
    )
