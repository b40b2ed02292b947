"""DPO and GRPO (TRL) from the same data: they run, train the LoRA adapter, and report steps."""

from __future__ import annotations

import torch

from core.training.alternatives import train_dpo, train_grpo
from core.training.ppo_config import PPOConfig
from core.training.retrain_config import RetrainConfig
from core.training.sft_config import SFTSettings

from .conftest import make_cases, make_pairs


def _config() -> RetrainConfig:
    return RetrainConfig(
        device="cpu",
        sft=SFTSettings(epochs=1, batch_size=4, learning_rate=1e-3),
        ppo=PPOConfig(steps=2, batch_size=4, mini_batch_size=4, max_new_tokens=6),
    )


def _lora(policy):
    return {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_B" in n}


def test_dpo_trains_the_adapter(verdict_policy):
    cases = make_cases(8, seed=1)
    report = train_dpo(verdict_policy, make_pairs(cases), cases, None, _config())
    assert report["steps"] == 2
    after = _lora(verdict_policy)
    assert after and any(p.abs().sum() > 0 for p in after.values())  # B starts at zero


def test_grpo_uses_the_clinical_reward(verdict_policy):
    cases = make_cases(8, seed=2)
    report = train_grpo(verdict_policy, make_pairs(cases), cases, None, _config())
    assert report["steps"] == 2
    rewards = [h for h in report["history"] if "reward" in h]
    assert rewards  # TRL logged the clinical reward of the sampled answers
    assert any(torch.count_nonzero(p) for p in _lora(verdict_policy).values())
