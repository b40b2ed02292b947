"""The reward model judges the verdict, not the wording: trained on rated pairs plus
verdict-flipped counterparts (balanced), it prefers the right verdict on held-out flipped pairs
of cases it never saw; its accuracy is reported by group."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.training.data import PreferencePair, balanced, flip_verdict
from core.training.reward import train_reward_model
from core.training.reward_config import RewardModelConfig
from core.training.reward_eval import reward_accuracy

from .conftest import make_cases, make_pairs


def _flipped(pairs: list[PreferencePair]) -> list[PreferencePair]:
    return [replace(p, rejected=flip_verdict(p.chosen), kind="flipped") for p in pairs]


def test_reward_model_prefers_the_right_verdict_on_flipped_pairs(verdict_policy):
    train_pairs = make_pairs(make_cases(128, seed=21))
    held_pairs = make_pairs(make_cases(16, seed=22))
    train = balanced(train_pairs + _flipped(train_pairs), seed=0)
    cfg = RewardModelConfig(kind="text", epochs=10, batch_size=16, learning_rate=1e-3, seed=0)
    rm, _ = train_reward_model(verdict_policy, train, cfg, eval_pairs=[])
    acc = reward_accuracy(rm, held_pairs + _flipped(held_pairs))
    groups = acc.groups
    assert groups["flipped"].pairs == len(held_pairs) == groups["rated"].pairs
    # Same reason, other verdict word: only the verdict tells them apart.
    assert groups["flipped"].accuracy >= 0.95, acc.to_dict()
    assert acc.accuracy >= 0.9 and "chosen ERROR" in groups and "chosen CORRECT" in groups
    assert "flipped" in acc.line()


def test_accuracy_by_a_key_and_each_answer_scored_once(tiny_policy):
    calls = []

    class Counting:
        def score(self, cases, texts, batch_size=16):
            calls.append(len(texts))
            return [1.0 if t.startswith("ERROR") else 0.0 for t in texts]

    pairs = make_pairs(make_cases(6, seed=23))
    both = pairs + _flipped(pairs)
    acc = reward_accuracy(Counting(), both, key=lambda p: "error case" if p.case.is_error else None)
    # each case: its right answer, the wrong one (another reason) and the flip: scored once each
    assert calls == [3 * len(pairs)]
    assert (
        acc.groups["chosen ERROR"].accuracy == 1.0 and acc.groups["chosen CORRECT"].accuracy == 0.0
    )
    assert acc.groups["error case"].pairs == sum(p.case.is_error for p in both)
    assert acc.accuracy == pytest.approx(0.5)
