"""PPO on torch + peft (TRL no longer ships a PPO trainer), on ONE backbone.

One copy of the weights holds everything (``core.training.adapters``):

- the policy: the starting model (base weights plus its parent's or SFT's adapter, frozen) plus
  PPO's own LoRA adapter; a model with no adapter gets a fresh one (``"default"``);
- the reference: the same model with PPO's adapter switched off, i.e. the starting model, so PPO
  starts at KL exactly 0;
- the value head: a linear layer on the policy's final hidden state (detached: a critic that
  does not pull the LoRA weights);
- the reward model: its own adapter and scalar head on the same weights (``RewardModel``),
  switched in only while it scores.

``fold_adapters()`` then folds the frozen adapter and PPO's into one adapter, exactly, so a version
is still base weights + one adapter folder.

One step (``PPOConfig``): sample ``batch_size`` answers (``rollout.make_rollout``), score them
(``ppo_rewards.RewardComposer``: reward model, the clinical reward where a clinician judged the
case, a penalty for a reason that contradicts its verdict word, normalised), per-token KL penalty
against the reference with an adaptive coefficient that holds ``target_kl``, GAE, whitened
advantages, clipped policy and value losses, ``ppo_epochs`` passes over minibatches. Logits are
computed for the answer tokens only (``logits_to_keep``): a 262k-word vocabulary over a 300-token
vlm prompt would otherwise cost more memory than the step's activations.

``accelerate``: the policy and value head go through an ``Accelerator`` (device placement,
gradient sync under ``accelerate launch``); each process takes its own share of the prompts.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from core.cases.records import Case
from core.clinical.rewards import clinical_reward
from core.clinical.verdicts import parse_verdict
from core.runtime.progress import Progress
from core.training import adapters
from core.training.common import text_config
from core.training.judgement import Judgement
from core.training.ppo_config import PPOConfig
from core.training.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    masked_mean,
    masked_whiten,
    ppo_losses,
    token_rewards,
)
from core.training.ppo_rewards import RewardComposer, RewardFn
from core.training.rollout import Rollout, make_rollout

if TYPE_CHECKING:
    from core.models.backends.base import TrainablePolicy
    from core.training.reward import RewardModel

REFERENCES = ("base", "current")
PPO_ADAPTER = adapters.PPO_ADAPTER

__all__ = ["PPOReport", "PPOTrainer", "can_stack_adapter", "clinical_rewards", "Judgement"]


def can_stack_adapter(model: Any) -> bool:
    """Whether PPO can keep the policy's adapter(s) on, frozen, train its own on top and fold
    them into one exactly (``adapters.can_stack``)."""
    return adapters.can_stack(model)


def clinical_rewards(
    cases: Sequence[Case], texts: Sequence[str], judgements: Mapping[str, Judgement] | None = None
) -> list[float]:
    """The plan's clinical reward of each answer where a clinician judged its case (from
    ``judgements``), 0 elsewhere. A case's own ground-truth fields are never read."""
    judged = judgements or {}
    out = []
    for case, text in zip(cases, texts, strict=True):
        j = judged.get(case.case_id)
        out.append(0.0 if j is None else clinical_reward(parse_verdict(text)[0], j))  # type: ignore[arg-type]
    return out


@dataclass
class PPOReport:
    """What PPO did: one history row per step (reward, clinical, kl, kl_coef, losses...).

    ``checks``: the val checks (``{"step", "score"}``, step 0 the starting model) when a
    ``checkpoint_score`` was given; ``kept_step``: the step whose weights the policy ends with
    (``steps`` when nothing was checked).
    """

    steps: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    checks: list[dict[str, float]] = field(default_factory=list)
    kept_step: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _policy_with_value(model: Any) -> Any:
    """One module holding the policy model and its value head, so ``accelerate`` wraps both
    (gradient sync of LoRA and head together under distributed training)."""
    import torch

    class PolicyWithValue(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy_model = model
            self.value_head = torch.nn.Linear(text_config(model).hidden_size, 1)
            torch.nn.init.zeros_(self.value_head.weight)
            torch.nn.init.zeros_(self.value_head.bias)

        def forward(self, answer_len: int, with_values: bool, **inputs: Any) -> tuple[Any, Any]:
            # Logits of the positions that predict the answer tokens only.
            out = self.policy_model(
                output_hidden_states=with_values,
                use_cache=False,
                logits_to_keep=answer_len + 1,
                **inputs,
            )
            logits = out.logits[:, -answer_len - 1 : -1, :]
            if not with_values:
                return logits, None
            hidden = out.hidden_states[-1][:, -answer_len - 1 : -1, :]
            values = self.value_head(hidden.detach().to(self.value_head.weight.dtype)).squeeze(-1)
            return logits, values.float()

    return PolicyWithValue()


class PPOTrainer:
    """Train ``policy`` with PPO on one backbone.

    Args:
        policy: the back end (``TrainablePolicy``); its ``model`` gets PPO's adapter and is
            trained in place.
        config: the hyperparameters.
        reward_model: the learned reward (optional), an adapter on the same backbone.
        reward_fn: an extra reward ``(cases, texts) -> scores`` (optional; tests, scripted tasks).
        progress: reports ``ppo`` steps with loss, reward and kl; cancel stops at the next step.
        reference: ``"base"``: the reference is the bare weights; a policy that carries an
            adapter keeps training it. ``"current"``: the reference is the policy as given (its
            adapter, e.g. SFT's, frozen and kept on); PPO trains a fresh adapter on top; call
            ``fold_adapters()`` after training (before saving). A policy with no adapter gets a
            fresh one either way, and its reference is the bare weights.
        judgements: ``case_id -> Judgement`` from the clinicians' ratings; the clinical reward is
            given where there is one, never from a case's ground-truth fields.

    Raises:
        ValueError: an unknown ``reference``, or ``"current"`` on an adapter that cannot be
            stacked (``can_stack_adapter``).
    """

    def __init__(
        self,
        policy: TrainablePolicy,
        config: PPOConfig | None = None,
        reward_model: RewardModel | None = None,
        reward_fn: RewardFn | None = None,
        progress: Progress | None = None,
        reference: str = "base",
        judgements: Mapping[str, Judgement] | None = None,
    ) -> None:
        import torch
        from accelerate import Accelerator

        self.config = cfg = config or PPOConfig()
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        self.policy, self.reward_model, self.progress = policy, reward_model, progress
        self.rewards = RewardComposer(cfg, reward_model, judgements, reward_fn)
        self._policy_names, self._reference_names, self._trained = self._attach(reference)
        self.model = policy.model
        adapters.set_active(self.model, self._policy_names, self._trained)
        self.model.eval()  # dropout off: the ratio must be 1 before the first update
        device = next(self.model.parameters()).device
        self.accelerator = Accelerator(cpu=device.type == "cpu")
        wrapper = _policy_with_value(self.model)
        wrapper.value_head.to(device)
        self.value_head = wrapper.value_head
        self._params = [p for p in wrapper.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(self._params, lr=cfg.learning_rate)
        self.wrapped, self.optimizer = self.accelerator.prepare(wrapper, optimizer)
        self.kl_ctl: FixedKLController | AdaptiveKLController = (
            AdaptiveKLController(cfg.init_kl_coef, cfg.target_kl, cfg.kl_horizon)
            if cfg.adaptive_kl
            else FixedKLController(cfg.init_kl_coef)
        )
        self._rng = random.Random(cfg.seed + self.accelerator.process_index)
        self._eos_ids = _eos_ids(self.model, policy.tokenizer)
        self._image_ids = _image_ids(self.model)
        self._cache_images = not adapters.image_side_adapted(self.model)

    def _attach(self, reference: str) -> tuple[list[str], list[str], list[str]]:
        """Give the policy PPO's adapter; returns (policy adapters, reference adapters, trained
        adapters)."""
        cfg, model = self.config, self.policy.model
        own = [n for n in adapters.active_adapters(model) if not adapters.is_reward_adapter(n)]
        if reference == "current" and own and not adapters.can_stack(model):
            raise ValueError(
                "reference='current' needs a plain LoRA adapter on the policy (no DoRA, "
                "rsLoRA or modules_to_save)"
            )
        if own and reference == "base":  # keep training the adapter it carries
            return own, [], own
        like = model.peft_config[own[0]].target_modules if own else None
        targets = adapters.language_model_targets(model, cfg.target_modules, like)
        new = adapters.lora(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, targets)
        name = adapters.free_name(model, PPO_ADAPTER if own else adapters.POLICY_ADAPTER)
        adapters.attach(self.policy, name, new)
        return [*own, name], own, [name]

    # -- forward passes -------------------------------------------------------------------
    def forward(self, batch: Rollout, with_values: bool) -> tuple[Any, Any]:
        """Log-probs of the answer tokens under the current policy, and the value estimates."""
        import torch

        logits, values = self.wrapped(batch.answer_len, with_values, **batch.model_inputs())
        logits = logits.float() / self.config.temperature
        logp = torch.log_softmax(logits, dim=-1)
        return logp.gather(-1, batch.answer_ids.unsqueeze(-1)).squeeze(-1), values

    def reference_logprobs(self, batch: Rollout) -> Any:
        """Log-probs under the reference: the same weights with PPO's adapter switched off."""
        import torch

        with torch.no_grad(), adapters.using(self.model, self._reference_names):
            return self.forward(batch, with_values=False)[0]

    def fold_adapters(self) -> None:
        """Fold the frozen adapter(s) and PPO's into one adapter named ``"default"`` (exact for
        LoRA; ``adapters.fold``), frozen and active, so ``save_adapter`` writes one folder that
        loads on the base weights alone. With nothing to fold the policy's adapter is only
        frozen. The trainer cannot train after this."""
        adapters.fold(self.model, self._policy_names)
        self._policy_names, self._trained = [adapters.POLICY_ADAPTER], []
        self.model.eval()

    # -- rollouts -------------------------------------------------------------------------
    def rollout(self, cases: Sequence[Case]) -> Rollout:
        """Sample an answer for each case and build the batch of prompt + answer tokens."""
        cfg = self.config
        gen = {
            "do_sample": True,
            "max_new_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
            "top_k": cfg.top_k,
            "top_p": 1.0,
        }
        return make_rollout(
            self.policy, cases, gen, self._eos_ids, self._image_ids, self._cache_images
        )

    def scores(self, cases: Sequence[Case], texts: Sequence[str]) -> list[float]:
        """The normalised sequence-level reward of each answer (``RewardComposer``)."""
        return self.rewards(cases, texts).score

    # -- one PPO step ---------------------------------------------------------------------
    def step(self, cases: Sequence[Case]) -> dict[str, float]:
        """Rollouts on ``cases``, then ``ppo_epochs`` of updates; returns the step's stats."""
        import torch

        cfg = self.config
        batch = self.rollout(cases)
        mask = batch.answer_mask
        scored = self.rewards(batch.cases, batch.texts)
        score = torch.tensor(scored.score, device=mask.device)
        with torch.no_grad():
            old_logp, old_values = self.forward(batch, with_values=True)
            ref_logp = self.reference_logprobs(batch)
            rewards, kl = token_rewards(score, old_logp, ref_logp, mask, self.kl_ctl.value)
            adv, returns = gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
            if cfg.whiten_advantages:
                adv = masked_whiten(adv, mask)
        n = len(batch)
        stats: dict[str, list[float]] = {"pg_loss": [], "vf_loss": [], "clipfrac": [], "loss": []}
        for _ in range(cfg.ppo_epochs):
            order = list(range(n))
            self._rng.shuffle(order)
            for i in range(0, n, cfg.mini_batch_size):
                if self.progress is not None:
                    self.progress.check()
                idx = torch.tensor(order[i : i + cfg.mini_batch_size], device=mask.device)
                logp, values = self.forward(batch.rows(idx), with_values=True)
                losses = ppo_losses(
                    logp, old_logp[idx], adv[idx], values, old_values[idx], returns[idx],
                    mask[idx], cfg.cliprange, cfg.cliprange_value,
                )  # fmt: skip
                loss = losses["pg_loss"] + cfg.vf_coef * losses["vf_loss"]
                self.accelerator.backward(loss)
                self.accelerator.clip_grad_norm_(self._params, cfg.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                for k in ("pg_loss", "vf_loss", "clipfrac"):
                    stats[k].append(float(losses[k].detach()))
                stats["loss"].append(float(loss.detach()))
        seq_kl = float(kl.sum(-1).mean())
        kl_coef = float(self.kl_ctl.value)  # the coefficient this step's rewards used
        self.kl_ctl.update(seq_kl)
        row = {k: sum(v) / len(v) for k, v in stats.items()}
        row.update(scored.stats())
        row.update(
            kl=seq_kl,
            kl_coef=kl_coef,
            answer_tokens=float(masked_mean(mask.sum(-1), torch.ones_like(score))),
        )
        return row

    def _snapshot(self) -> list[Any]:
        """A copy of everything PPO trains (its adapter's weights and the value head)."""
        return [p.detach().clone() for p in self._params]

    def _restore(self, saved: list[Any]) -> None:
        import torch

        with torch.no_grad():
            for p, v in zip(self._params, saved, strict=True):
                p.copy_(v)

    def train(
        self, cases: Sequence[Case], checkpoint_score: Callable[[], float] | None = None
    ) -> PPOReport:
        """Run ``config.steps`` PPO steps on prompts drawn from ``cases``.

        ``checkpoint_score`` (optional): a score of the policy as it is now, higher is better
        (retrain's: the mean clinical reward of its verdicts on the val cases). It is asked
        before the first step and every ``config.val_every`` steps and after the last; the
        policy ends with the weights of the best check, the later one on a tie (a tie means val
        cannot tell them apart, and the later one has had what the reward model and the
        contradiction penalty teach). The starting model is a candidate: PPO that only makes
        things worse on val leaves it as it was.

        Raises:
            ValueError: no cases.
            core.runtime.progress.Canceled: ``progress`` was canceled (the adapter is left mid-training;
                callers discard it).
        """
        import torch

        cfg = self.config
        acc = self.accelerator
        mine = list(cases)[acc.process_index :: acc.num_processes]
        if not mine:
            raise ValueError("no cases to train PPO on")
        torch.manual_seed(cfg.seed + acc.process_index)
        report = PPOReport()
        t0 = time.perf_counter()
        if self.progress is not None:
            judged = sum(c.case_id in self.rewards.judgements for c in mine)
            self.progress.update(
                "ppo", 0, cfg.steps, message=f"{len(mine)} prompts, {judged} judged by a clinician"
            )
        pool: list[Case] = []
        best: tuple[float, int, list[Any]] | None = None

        def check(step: int) -> None:
            nonlocal best
            if checkpoint_score is None or not cfg.val_every:
                return
            score = float(checkpoint_score())
            report.checks.append({"step": float(step), "score": score})
            if not math.isfinite(score):
                score = -math.inf  # no measure (e.g. nothing to score on): never preferred
            if best is None or score >= best[0]:
                best = (score, step, self._snapshot())
            if self.progress is not None and acc.is_main_process:
                self.progress.update(
                    "ppo", step, cfg.steps,
                    message=f"val check at step {step}: {score:+.3f} (best {best[0]:+.3f}, "
                    f"step {best[1]})",
                )  # fmt: skip

        check(0)
        for step in range(1, cfg.steps + 1):
            if self.progress is not None:
                self.progress.check()
            batch: list[Case] = []
            while len(batch) < cfg.batch_size:
                if not pool:
                    pool = list(mine)
                    self._rng.shuffle(pool)
                batch.append(pool.pop())
            row = self.step(batch)
            row["step"] = float(step)
            report.history.append(row)
            report.steps = step
            if self.progress is not None and acc.is_main_process:
                self.progress.update(
                    "ppo", step, cfg.steps, loss=row["loss"], reward=row["reward"], kl=row["kl"]
                )
            if cfg.val_every and (step % cfg.val_every == 0 or step == cfg.steps):
                check(step)
        report.kept_step = report.steps
        if best is not None and best[1] != report.steps:
            self._restore(best[2])
            report.kept_step = best[1]
        report.seconds = time.perf_counter() - t0
        return report


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token that ends an answer: the generation config's and the tokenizer's."""
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    for e in eos if isinstance(eos, list | tuple) else [eos]:
        if e is not None:
            ids.add(int(e))
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


def _image_ids(model: Any) -> list[int]:
    """Token ids a multimodal model reads as image placeholders (none for a text model)."""
    cfg = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    found = {getattr(cfg, k, None) for k in ("image_token_id", "image_token_index", "boi_token_id")}
    return sorted(int(i) for i in found if isinstance(i, int))
