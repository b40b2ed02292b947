"""The arithmetic of PPO, on tensors, with no model in sight (so each piece is testable):
masked statistics, the KL controllers, GAE, and the clipped policy and value losses."""

from __future__ import annotations

from typing import Any


def masked_mean(x: Any, mask: Any) -> Any:
    """Mean of ``x`` where ``mask`` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: Any, mask: Any, shift_mean: bool = True) -> Any:
    """``x`` normalized to unit variance (and zero mean) over the masked entries."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * (var + 1e-8).rsqrt()
    if not shift_mean:
        out = out + mean
    return out * mask


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, value: float) -> None:
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt."""


class AdaptiveKLController:
    """Ziegler et al. (2019): move the coefficient so the KL approaches ``target``.

    ``value *= 1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon``.
    """

    def __init__(self, value: float, target: float, horizon: int) -> None:
        self.value, self.target, self.horizon = value, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def token_rewards(
    score: Any, logprobs: Any, ref_logprobs: Any, mask: Any, kl_coef: float
) -> tuple[Any, Any]:
    """Per-token rewards: ``-kl_coef * (logp - ref_logp)`` on every answer token, plus the
    sequence's score on its last token. Returns (rewards, per-token kl)."""
    import torch

    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += score.to(rewards.dtype)
    return rewards * mask, kl


def gae(rewards: Any, values: Any, mask: Any, gamma: float, lam: float) -> tuple[Any, Any]:
    """Generalized advantage estimation over the masked answer tokens.

    Returns (advantages, returns); positions past an answer's end are zero.
    """
    import torch

    values = values * mask
    steps = rewards.shape[1]
    last_gae = torch.zeros_like(rewards[:, 0])
    out = []
    for t in reversed(range(steps)):
        next_v = values[:, t + 1] if t + 1 < steps else torch.zeros_like(values[:, 0])
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last_gae = (delta + gamma * lam * last_gae) * mask[:, t]
        out.append(last_gae)
    advantages = torch.stack(out[::-1], dim=1)
    returns = advantages + values
    return advantages.detach(), returns.detach()


def ppo_losses(
    logprobs: Any,
    old_logprobs: Any,
    advantages: Any,
    values: Any,
    old_values: Any,
    returns: Any,
    mask: Any,
    cliprange: float,
    cliprange_value: float,
) -> dict[str, Any]:
    """The clipped surrogate policy loss and the clipped value loss (tensors), with stats."""
    import torch

    ratio = torch.exp(logprobs - old_logprobs)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.max(pg1, pg2), mask)
    v_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    vf1 = (values - returns) ** 2
    vf2 = (v_clipped - returns) ** 2
    vf_loss = 0.5 * masked_mean(torch.max(vf1, vf2), mask)
    clipfrac = masked_mean((pg2 > pg1).float(), mask)
    approx_kl = 0.5 * masked_mean((logprobs - old_logprobs) ** 2, mask)
    return {"pg_loss": pg_loss, "vf_loss": vf_loss, "clipfrac": clipfrac, "approx_kl": approx_kl}
