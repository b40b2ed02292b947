"""Reward model: the Bradley-Terry loss, learning on separable pairs, save and load, cancel."""

from __future__ import annotations

import pytest
import torch

from core.runtime.progress import Canceled, Progress
from core.training.data import PreferencePair
from core.training.reward import RewardModel, bradley_terry_loss, train_reward_model
from core.training.reward_config import RewardModelConfig

from .conftest import make_cases, make_pairs


def separable_pairs(n: int, seed: int) -> list[PreferencePair]:
    """Error cases only: the chosen answer always flags the error, the rejected one passes it."""
    cases = [c for c in make_cases(2 * n, seed=seed) if c.is_error]
    return make_pairs(cases)


def test_loss_is_bradley_terry_with_margin():
    chosen = torch.tensor([2.0, 0.0])
    rejected = torch.tensor([1.0, 0.0])
    plain = bradley_terry_loss(chosen, rejected)
    expected = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
    assert torch.allclose(plain, expected)
    with_margin = bradley_terry_loss(chosen, rejected, torch.tensor([1.0, 1.0]))
    assert with_margin > plain  # a margin asks for a wider gap


def test_config_is_validated():
    with pytest.raises(ValueError):
        RewardModelConfig(kind="nope")
    with pytest.raises(ValueError):
        RewardModelConfig(eval_fraction=1.0)


@pytest.mark.parametrize("kind", ["text", "image"])
def test_reward_model_learns_separable_pairs_and_round_trips(kind, tiny_policy, tmp_path):
    train = separable_pairs(48, seed=3)
    held = separable_pairs(12, seed=99)
    events = []
    probe = tiny_policy.encode([p.case for p in held[:4]])
    with torch.no_grad():
        policy_before = tiny_policy.model(**probe).logits
    cfg = RewardModelConfig(kind=kind, epochs=2, batch_size=8, seed=0)
    rm, report = train_reward_model(
        tiny_policy, train, cfg, Progress(events.append), eval_pairs=held
    )
    assert report.kind == kind
    assert report.eval_pairs == len(held)
    assert report.eval_accuracy is not None and report.eval_accuracy > 0.8
    assert report.steps > 0 and [e for e in events if e.stage == "reward" and e.loss is not None]
    # The reward model is an adapter on the policy's weights, switched in only while it scores:
    # the policy itself answers exactly as before, with no adapter of its own.
    with torch.no_grad():
        assert torch.equal(tiny_policy.model(**probe).logits, policy_before)
    assert list(tiny_policy.model.peft_config) == ["reward"]

    folder = rm.save(tmp_path / "reward_model", report)
    assert list(folder.glob("**/*.safetensors"))
    assert not list(folder.glob("**/*.bin")) and not list(folder.glob("**/*.pt"))
    again = RewardModel.load(folder, tiny_policy)
    cases = [p.case for p in held[:4]]
    texts = [p.chosen for p in held[:4]]
    assert again.score(cases, texts) == pytest.approx(rm.score(cases, texts), abs=1e-5)


def test_split_holds_out_whole_cases(tiny_policy):
    pairs = separable_pairs(30, seed=4)
    _, report = train_reward_model(
        tiny_policy, pairs, RewardModelConfig(kind="image", epochs=1, eval_fraction=0.25)
    )
    assert report.eval_pairs > 0 and report.train_pairs + report.eval_pairs == len(pairs)


def test_cancel_raises(tiny_policy):
    progress = Progress(lambda e: progress.cancel())
    with pytest.raises(Canceled):
        train_reward_model(
            tiny_policy, separable_pairs(16, seed=1), RewardModelConfig(kind="text"), progress
        )
