"""PPO on torch + peft (TRL no longer ships a PPO trainer), through the ``TrainablePolicy`` seam.

- Policy: the back end's model with a LoRA adapter (a new one, unless it already carries one,
  which PPO then keeps training).
- Reference: the same weights with the adapter disabled (``model.disable_adapter()``): no second
  copy of the model in memory. With a fresh adapter the policy equals the reference at step 0.
- ``reference="current"`` (the retrain pipeline whenever the policy carries an adapter: after SFT,
  or a parent version with one): that adapter is frozen and stays on in both the policy and the
  reference; PPO trains a second, fresh adapter on top, and the reference is that second adapter
  switched off (the SFT / parent model, still no second copy of the weights). ``fold_adapters()`` then folds both into one adapter (``"default"``), exactly
  (LoRA ranks concatenated), so the version loads as base weights + one adapter folder.
- Value head: a linear layer on the last hidden state, trained with the policy.
- Score: ``reward_model_weight * reward model + clinical_weight * clinical_reward`` (the plan's
  function, on cases with ground truth) ``+ reward_fn`` (any extra scripted reward).
- Per-token KL penalty with an adaptive coefficient, GAE, clipped policy and value losses,
  ``ppo_epochs`` passes per rollout batch.
- ``accelerate``: the model and value head go through an ``Accelerator`` (device placement,
  gradient sync under ``accelerate launch``); each process takes its own share of the cases.

For a vlm the encoded ``pixel_values`` (and any other image inputs) are passed through to every
forward pass; those tensors must have one row per case (as Gemma 3's do).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from core.cases import Case
from core.progress import Progress
from core.rewards import clinical_reward
from core.training.common import lora_config, text_config
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
from core.verdicts import parse_verdict

if TYPE_CHECKING:
    from core.backends.base import TrainablePolicy
    from core.training.reward import RewardModel

RewardFn = Callable[[Sequence[Case], Sequence[str]], list[float]]
_TEXT_KEYS = ("input_ids", "attention_mask", "labels")
REFERENCES = ("base", "current")
PPO_ADAPTER = "ppo"
_FOLDED = "folded"


def can_stack_adapter(model: Any) -> bool:
    """Whether PPO can freeze the adapter(s) ``model`` carries and train a second one on top, then
    fold them into one exactly: plain LoRA (no DoRA, no rsLoRA, no ``modules_to_save``), target
    modules given as lists (not a regex)."""
    configs = getattr(model, "peft_config", None)
    if not configs or not hasattr(model, "base_model"):
        return False
    for cfg in configs.values():
        if getattr(cfg, "peft_type", None) is None or str(cfg.peft_type.value) != "LORA":
            return False
        if cfg.use_dora or cfg.use_rslora or cfg.modules_to_save:
            return False
        if isinstance(cfg.target_modules, str) or not cfg.target_modules:
            return False
    return True


def clinical_rewards(cases: Sequence[Case], texts: Sequence[str]) -> list[float]:
    """``clinical_reward`` of each parsed answer; 0 for a case with no ground truth."""
    return [
        clinical_reward(parse_verdict(t)[0], c) if c.is_error is not None else 0.0
        for c, t in zip(cases, texts, strict=True)
    ]


@dataclass
class PPOReport:
    """What PPO did: one history row per step (reward, kl, kl_coef, losses)."""

    steps: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)

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

        def forward(self, prompt_len: int, with_values: bool, **inputs: Any) -> tuple[Any, Any]:
            out = self.policy_model(output_hidden_states=with_values, use_cache=False, **inputs)
            logits = out.logits[:, prompt_len - 1 : -1, :]
            if not with_values:
                return logits, None
            hidden = out.hidden_states[-1][:, prompt_len - 1 : -1, :]
            values = self.value_head(hidden.detach().to(self.value_head.weight.dtype)).squeeze(-1)
            return logits, values.float()

    return PolicyWithValue()


class PPOTrainer:
    """Train ``policy`` with PPO.

    Args:
        policy: the back end (``TrainablePolicy``); its ``model`` gets a LoRA adapter if it has
            none, and is trained in place.
        config: the hyperparameters.
        reward_model: the learned reward (optional).
        reward_fn: an extra reward ``(cases, texts) -> scores`` (optional; tests, scripted tasks).
        progress: reports ``ppo`` steps with loss, reward and kl; cancel stops at the next step.
        reference: ``"base"``: the reference is the weights with every adapter disabled (an
            adapter the policy carries keeps training). ``"current"``: the reference is the
            policy as given (its adapter, e.g. SFT's, frozen and kept on); PPO trains a fresh
            adapter on top; call ``fold_adapters()`` after training (before saving).

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
    ) -> None:
        import torch
        from accelerate import Accelerator
        from peft import get_peft_model

        self.config = cfg = config or PPOConfig()
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        self.policy, self.reward_model, self.reward_fn = policy, reward_model, reward_fn
        self.progress = progress
        self._frozen: list[str] = []  # adapters kept on in the reference (reference="current")
        new_lora = lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules)
        if not hasattr(policy.model, "disable_adapter"):
            policy.model = get_peft_model(policy.model, new_lora)
        elif reference == "current":
            if not can_stack_adapter(policy.model):
                raise ValueError(
                    "reference='current' needs a plain LoRA adapter on the policy (no DoRA, "
                    "rsLoRA, modules_to_save or regex target modules)"
                )
            model = policy.model
            self._frozen = list(model.active_adapters)
            new_lora.task_type = model.peft_config[self._frozen[0]].task_type
            model.add_adapter(PPO_ADAPTER, new_lora)
            self.model = model
            self._activate([*self._frozen, PPO_ADAPTER])
        else:  # continue training the adapter it carries (loaded adapters come frozen)
            for name, param in policy.model.named_parameters():
                if "lora_" in name:
                    param.requires_grad_(True)
        self.model = policy.model
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

    # -- forward passes -------------------------------------------------------------------
    def forward(self, batch: dict[str, Any], with_values: bool) -> tuple[Any, Any]:
        """Log-probs of the answer tokens under the current model, and the value estimates."""
        import torch

        cfg = self.config
        prompt_len = batch["prompt_len"]
        answer = batch["answer_ids"]
        mask = batch["full_mask"]
        inputs = {k: v for k, v in batch["extras"].items()}
        if "image_grid_thw" not in inputs:
            pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
            inputs["position_ids"] = pos
        logits, values = self.wrapped(
            prompt_len, with_values, input_ids=batch["full_ids"], attention_mask=mask, **inputs
        )
        logits = logits.float() / cfg.temperature
        logp = torch.log_softmax(logits, dim=-1).gather(-1, answer.unsqueeze(-1)).squeeze(-1)
        return logp, values

    def reference_logprobs(self, batch: dict[str, Any]) -> Any:
        """Log-probs of the reference policy, no second copy: the adapter disabled, or (with
        ``reference="current"``) only PPO's own adapter switched off."""
        import torch

        with torch.no_grad(), self._reference():
            return self.forward(batch, with_values=False)[0]

    @contextmanager
    def _reference(self) -> Iterator[None]:
        if not self._frozen:
            with self.model.disable_adapter():
                yield
            return
        self.model.base_model.set_adapter(self._frozen, inference_mode=True)
        try:
            yield
        finally:
            self._activate([*self._frozen, PPO_ADAPTER])

    def _activate(self, names: list[str]) -> None:
        """Turn ``names`` on; only PPO's own adapter is trainable."""
        self.model.base_model.set_adapter(names, inference_mode=True)
        marker = f".{PPO_ADAPTER}."
        for name, param in self.model.named_parameters():
            if "lora_" in name and marker in name:
                param.requires_grad_(True)

    def fold_adapters(self) -> None:
        """With ``reference="current"``: replace the frozen adapter(s) and PPO's by one adapter
        named ``"default"`` equal to their sum (ranks concatenated, scalings folded into A: exact
        for LoRA), frozen and active, so ``save_adapter`` writes one folder that loads on the base
        weights alone. Does nothing otherwise. The trainer cannot train after this."""
        if not self._frozen:
            return
        model, names = self.model, [*self._frozen, PPO_ADAPTER]
        tuner = model.base_model
        tuner.add_weighted_adapter(names, [1.0] * len(names), _FOLDED, combination_type="cat")
        tuner.set_adapter(_FOLDED, inference_mode=True)
        for name in names:
            model.delete_adapter(name)
        # Rename to "default" (what save_pretrained writes at the folder's top): a one-adapter
        # "linear" combination with weight 1 copies A and B times sqrt(1) * scaling 1, exactly.
        tuner.add_weighted_adapter([_FOLDED], [1.0], "default", combination_type="linear")
        tuner.set_adapter("default", inference_mode=True)
        model.delete_adapter(_FOLDED)
        self._frozen = []
        model.eval()

    # -- rollouts -------------------------------------------------------------------------
    def rollout(self, cases: Sequence[Case]) -> dict[str, Any]:
        """Generate answers for ``cases`` and build the batch of prompt + answer tokens."""
        import torch

        cfg, tok = self.config, self.policy.tokenizer
        enc = self.policy.encode(cases)
        gen: dict[str, Any] = {
            "do_sample": True,
            "max_new_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
            "top_k": cfg.top_k,
            "top_p": 1.0,
        }
        ids, texts = self.policy.generate(cases, **gen)
        device = enc["input_ids"].device
        if not torch.is_tensor(ids):
            width = max(len(x) for x in ids)
            ids = torch.tensor([list(x) + [tok.pad_token_id] * (width - len(x)) for x in ids])
        ids = ids.to(device)
        if ids.shape[1] == 0:
            ids = torch.full((len(cases), 1), tok.eos_token_id, device=device)
        ids = ids.clone()  # a tensor made under inference_mode cannot be saved for backward
        # An image placeholder written by the model would be read back as an image slot (a vlm
        # then finds more slots than images): it ends the answer instead.
        for special in self._image_ids:
            ids[ids == special] = self._eos_ids[0]
        # Answer tokens: up to and including the first end-of-sequence token.
        is_eos = torch.zeros_like(ids, dtype=torch.bool)
        for eos in self._eos_ids:
            is_eos |= ids == eos
        has_eos = is_eos.any(-1)
        first = torch.where(has_eos, is_eos.int().argmax(-1), ids.shape[1] - 1)
        answer_mask = (torch.arange(ids.shape[1], device=device)[None, :] <= first[:, None]).long()
        extras = {k: v for k, v in enc.items() if k not in _TEXT_KEYS}
        for key, value in extras.items():  # per-token inputs (token_type_ids): answer tokens are 0
            if torch.is_tensor(value) and value.shape == enc["input_ids"].shape:
                extras[key] = torch.cat([value, torch.zeros_like(ids)], dim=1)
        return {
            "cases": list(cases),
            "texts": texts,
            "prompt_len": enc["input_ids"].shape[1],
            "answer_ids": ids,
            "answer_mask": answer_mask.float(),
            "full_ids": torch.cat([enc["input_ids"], ids], dim=1),
            "full_mask": torch.cat([enc["attention_mask"], answer_mask], dim=1),
            "extras": extras,
        }

    def scores(self, cases: Sequence[Case], texts: Sequence[str]) -> list[float]:
        """The sequence-level reward of each answer."""
        cfg = self.config
        total = [0.0] * len(cases)
        parts: list[tuple[float, list[float]]] = []
        if self.reward_model is not None and cfg.reward_model_weight:
            parts.append((cfg.reward_model_weight, self.reward_model.score(cases, texts)))
        if cfg.clinical_weight:
            parts.append((cfg.clinical_weight, clinical_rewards(cases, texts)))
        if self.reward_fn is not None:
            parts.append((1.0, list(self.reward_fn(cases, texts))))
        for weight, values in parts:
            total = [t + weight * v for t, v in zip(total, values, strict=True)]
        return total

    # -- one PPO step ---------------------------------------------------------------------
    def step(self, cases: Sequence[Case]) -> dict[str, float]:
        """Rollouts on ``cases``, then ``ppo_epochs`` of updates; returns the step's stats."""
        import torch

        cfg = self.config
        batch = self.rollout(cases)
        mask = batch["answer_mask"]
        score = torch.tensor(self.scores(batch["cases"], batch["texts"]), device=mask.device)
        with torch.no_grad():
            old_logp, old_values = self.forward(batch, with_values=True)
            ref_logp = self.reference_logprobs(batch)
            rewards, kl = token_rewards(score, old_logp, ref_logp, mask, self.kl_ctl.value)
            adv, returns = gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
            if cfg.whiten_advantages:
                adv = masked_whiten(adv, mask)
        n = len(batch["cases"])
        stats: dict[str, list[float]] = {"pg_loss": [], "vf_loss": [], "clipfrac": [], "loss": []}
        for _ in range(cfg.ppo_epochs):
            order = list(range(n))
            self._rng.shuffle(order)
            for i in range(0, n, cfg.mini_batch_size):
                if self.progress is not None:
                    self.progress.check()
                idx = torch.tensor(order[i : i + cfg.mini_batch_size], device=mask.device)
                mb = _rows(batch, idx)
                logp, values = self.forward(mb, with_values=True)
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
        self.kl_ctl.update(seq_kl, n)
        row = {k: sum(v) / len(v) for k, v in stats.items()}
        row.update(
            reward=float(score.mean()),
            kl=seq_kl,
            kl_coef=float(self.kl_ctl.value),
            answer_tokens=float(masked_mean(mask.sum(-1), torch.ones_like(score))),
        )
        return row

    def train(self, cases: Sequence[Case]) -> PPOReport:
        """Run ``config.steps`` PPO steps on prompts drawn from ``cases``.

        Raises:
            ValueError: no cases.
            core.progress.Canceled: ``progress`` was canceled (the adapter is left mid-training;
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
            self.progress.update("ppo", 0, cfg.steps, message=f"{len(mine)} prompts")
        pool: list[Case] = []
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
        report.seconds = time.perf_counter() - t0
        return report


def _rows(batch: dict[str, Any], idx: Any) -> dict[str, Any]:
    """The rows ``idx`` of a rollout batch (tensors with one row per answer)."""
    n = batch["full_ids"].shape[0]
    out = dict(batch)
    for key in ("answer_ids", "answer_mask", "full_ids", "full_mask"):
        out[key] = batch[key][idx]
    out["extras"] = {
        k: (v[idx] if hasattr(v, "shape") and v.shape[:1] == (n,) else v)
        for k, v in batch["extras"].items()
    }
    return out


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
