"""PPO: the reference is the policy with its adapter off, and learning raises the reward."""

from __future__ import annotations

import pytest
import torch

from core.progress import Canceled, Progress
from core.training.ppo import PPOTrainer, clinical_rewards
from core.training.ppo_config import PPOConfig

from .conftest import make_cases

# A 64-wide model learns slowly through attention-only LoRA; LoRA on the output layer too lets
# the tests see learning in a dozen steps. The real defaults stay the plan's q/v/o.
FAST = dict(
    batch_size=16,
    mini_batch_size=8,
    max_new_tokens=3,
    learning_rate=1e-3,
    target_modules=("q_proj", "v_proj", "o_proj", "lm_head"),
    clinical_weight=0.0,
    target_kl=1.0,
    init_kl_coef=0.5,
    kl_horizon=40,
)


def starts_with_error(cases, texts):
    return [1.0 if t.startswith("ERROR") else -1.0 for t in texts]


def test_config_is_validated():
    with pytest.raises(ValueError):
        PPOConfig(mini_batch_size=32, batch_size=16)
    with pytest.raises(ValueError):
        PPOConfig(target_kl=0)


def test_reference_equals_policy_at_init_and_with_adapter_disabled(verdict_policy):
    trainer = PPOTrainer(verdict_policy, PPOConfig(**FAST), reward_fn=starts_with_error)
    batch = trainer.rollout(make_cases(8, seed=5))
    with torch.no_grad():
        logp, values = trainer.forward(batch, with_values=True)
    ref = trainer.reference_logprobs(batch)
    assert torch.equal(logp * batch["answer_mask"], ref * batch["answer_mask"])
    assert values.shape == logp.shape
    # Move the adapter: the policy changes, the reference (adapter disabled) does not.
    with torch.no_grad():
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
        moved, _ = trainer.forward(batch, with_values=False)
    assert not torch.allclose(moved, logp)
    assert torch.equal(trainer.reference_logprobs(batch), ref)


def test_ppo_raises_reward_with_kl_near_target(verdict_policy):
    events = []
    cfg = PPOConfig(steps=12, **FAST)
    trainer = PPOTrainer(
        verdict_policy, cfg, reward_fn=starts_with_error, progress=Progress(events.append)
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    report = trainer.train(make_cases(48, seed=7))
    rewards = [row["reward"] for row in report.history]
    kls = [row["kl"] for row in report.history]
    assert report.steps == 12
    assert sum(rewards[-3:]) / 3 > sum(rewards[:2]) / 2 + 0.6, rewards
    assert sum(rewards[-3:]) / 3 > 0.6, rewards
    assert sum(kls[-4:]) / 4 < 2.5 * cfg.target_kl, kls
    assert any(
        not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters() if n in before
    )
    ppo_events = [e for e in events if e.stage == "ppo" and e.step > 0]
    assert [e.step for e in ppo_events] == list(range(1, 13))
    assert all(e.kl is not None and e.reward is not None and e.loss is not None for e in ppo_events)


def test_cancel_stops_at_the_next_step(verdict_policy):
    def cancel_after_two(event):
        if event.stage == "ppo" and event.step == 2:
            progress.cancel()

    progress = Progress(cancel_after_two)
    trainer = PPOTrainer(
        verdict_policy, PPOConfig(steps=10, **FAST), reward_fn=starts_with_error, progress=progress
    )
    with pytest.raises(Canceled):
        trainer.train(make_cases(16, seed=3))


def test_clinical_rewards_follow_the_plan():
    cases = make_cases(2, seed=1)  # one correct, one error
    got = clinical_rewards(cases, ["CORRECT - fine", "nonsense"])
    assert got[0] == pytest.approx(2.5)
    assert got[1] < -2.0
