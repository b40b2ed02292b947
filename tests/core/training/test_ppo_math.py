"""ppo_math against values computed by hand (the arithmetic is written out in each test)."""

from __future__ import annotations

import math

import pytest
import torch

from core.training.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    RunningMoments,
    gae,
    masked_mean,
    masked_whiten,
    ppo_losses,
    token_rewards,
)


def test_masked_mean_ignores_masked_entries():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)  # (1 + 2 + 3) / 3


def test_masked_whiten_gives_zero_mean_unit_variance_on_the_mask():
    x = torch.tensor([[1.0, 3.0, 50.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # mean 2, variance ((1-2)^2 + (3-2)^2) / 2 = 1: whitened [-1, 1], the masked entry 0.
    out = masked_whiten(x, mask)
    assert out.tolist()[0] == pytest.approx([-1.0, 1.0, 0.0], abs=1e-6)
    kept = masked_whiten(x, mask, shift_mean=False)
    assert kept.tolist()[0] == pytest.approx([1.0, 3.0, 0.0], abs=1e-6)  # + mean 2 back


def test_token_rewards_put_the_score_on_the_last_answer_token():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0], [-1.0, -2.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = token_rewards(torch.tensor([2.0, -1.0]), logp, ref, mask, kl_coef=0.5)
    # kl = logp - ref on the mask: row 0 [0.5, 0, -1], row 1 [0, 1, 0 (masked)].
    assert kl.tolist() == [[0.5, 0.0, -1.0], [0.0, 1.0, 0.0]]
    # rewards = -0.5 * kl, plus the score on the last real token (index 2, index 1).
    assert rewards.tolist() == [[-0.25, 0.0, 0.5 + 2.0], [0.0, -0.5 - 1.0, 0.0]]


def test_gae_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 9.0]])
    values = torch.tensor([[0.5, 0.5, 0.5], [1.0, 1.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # Row 0: delta_2 = 1 - 0.5 = 0.5 -> A2 = 0.5; delta_1 = 0 + 0.5 - 0.5 = 0 -> A1 = 0.5 * 0.5
    # = 0.25; delta_0 = 0 -> A0 = 0.125. Returns = A + V.
    assert adv[0].tolist() == pytest.approx([0.125, 0.25, 0.5])
    assert ret[0].tolist() == pytest.approx([0.625, 0.75, 1.0])
    # Row 1 ends at index 1 (the masked 9s never count): delta_1 = 2 + 0 - 1 = 1 -> A1 = 1;
    # delta_0 = 0 + 1 - 1 = 0 -> A0 = 0.5 * 1 = 0.5; past the end 0.
    assert adv[1].tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert ret[1].tolist() == pytest.approx([1.5, 2.0, 0.0])


def test_gae_discounts_with_gamma():
    rewards = torch.tensor([[0.0, 1.0]])
    values = torch.zeros(1, 2)
    adv, _ = gae(rewards, values, torch.ones(1, 2), gamma=0.9, lam=1.0)
    assert adv[0].tolist() == pytest.approx([0.9, 1.0])  # A0 = 0 + 0.9 * 1


def test_ppo_losses_clip_the_ratio_and_the_value():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5
    adv = torch.tensor([[1.0, 1.0]])
    mask = torch.ones(1, 2)
    values = torch.tensor([[2.0, 0.0]])
    old_values = torch.zeros(1, 2)
    returns = torch.tensor([[1.0, 0.0]])
    out = ppo_losses(logp, old, adv, values, old_values, returns, mask, 0.2, 0.5)
    # Token 0: -A * 1.5 = -1.5 vs -A * clip(1.5) = -1.2 -> max -1.2 (clipped, gain capped).
    # Token 1: -0.5 vs -clip(0.5) = -0.8 -> max -0.5 (unclipped: a loss is never hidden).
    assert out["pg_loss"].item() == pytest.approx((-1.2 - 0.5) / 2)
    assert out["clipfrac"].item() == pytest.approx(0.5)
    # Value token 0: (2 - 1)^2 = 1 vs clipped 0 + clip(2, +-0.5) = 0.5 -> (0.5 - 1)^2 = 0.25;
    # max 1. Token 1: 0 and 0. vf_loss = 0.5 * mean(1, 0) = 0.25.
    assert out["vf_loss"].item() == pytest.approx(0.25)
    # approx_kl = 0.5 * mean((log 1.5)^2, (log 0.5)^2).
    expected = 0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 2
    assert out["approx_kl"].item() == pytest.approx(expected, rel=1e-5)


def test_ppo_losses_clip_a_negative_advantage_from_below():
    out = ppo_losses(
        torch.log(torch.tensor([[0.5]])), torch.zeros(1, 1), torch.tensor([[-2.0]]),
        torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), 0.2, 0.2,
    )  # fmt: skip
    # -A * 0.5 = 1.0 vs -A * clip(0.5, 0.8, 1.2) = 1.6 -> max 1.6: lowering an already
    # disfavoured token's probability further earns nothing past the clip.
    assert out["pg_loss"].item() == pytest.approx(1.6)


def test_fixed_kl_controller_never_moves():
    ctl = FixedKLController(0.3)
    ctl.update(100.0)
    assert ctl.value == 0.3


def test_adaptive_kl_controller_by_hand():
    ctl = AdaptiveKLController(0.1, target=1.0, horizon=4)
    ctl.update(2.0)  # log(2) / 4
    assert ctl.value == pytest.approx(0.1 * 2 ** (1 / 4))
    ctl = AdaptiveKLController(0.1, target=1.0, horizon=4)
    ctl.update(50.0)  # log-error clipped at 1
    assert ctl.value == pytest.approx(0.1 * math.exp(0.25))
    ctl = AdaptiveKLController(0.1, target=1.0, horizon=4)
    ctl.update(-3.0)  # a negative estimate counts as ~0: clipped at -1
    assert ctl.value == pytest.approx(0.1 * math.exp(-0.25))
    ctl = AdaptiveKLController(0.1, target=1.0, horizon=4)
    ctl.update(1.0)
    assert ctl.value == pytest.approx(0.1)


def test_adaptive_kl_controller_catches_up_within_tens_of_steps():
    """A KL three times the target: the old controller (horizon 1000 samples, 16 a step) had
    moved the coefficient by under 7% after 20 steps; this one multiplies it by e^5 (~150)."""
    ctl = AdaptiveKLController(0.1, target=1.0, horizon=4)
    for _ in range(20):
        ctl.update(3.0)
    assert ctl.value == pytest.approx(0.1 * math.exp(20 * 1.0 / 4))
    ctl = AdaptiveKLController(1.0, target=1.0, horizon=1, max_value=5.0)
    for _ in range(10):
        ctl.update(10.0)
    assert ctl.value == 5.0


def test_adaptive_kl_controller_rejects_bad_settings():
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=0.0, horizon=4)


def test_running_moments_merge_batches_exactly():
    m = RunningMoments()
    assert m.std == 0.0 and m.normalise([1.0, 2.0]) == [0.0, 0.0]
    m.update([1.0, 2.0, 3.0])
    m.update([4.0])
    m.update([])
    # All of 1, 2, 3, 4: mean 2.5, population variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25.
    assert m.count == 4 and m.mean == pytest.approx(2.5)
    assert m.std == pytest.approx(math.sqrt(1.25))
    assert m.normalise([2.5, 2.5 + math.sqrt(1.25)]) == pytest.approx([0.0, 1.0])
