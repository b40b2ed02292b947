"""DPO and GRPO (TRL's trainers) from the same ratings, as alternatives to reward model + PPO.

Both run on text back ends (clip-llm, a plain causal LM): the prompt is the policy's own prompt text
(``policy.prompt_texts``, the clip-llm image description included), so what is optimized is what
is asked at prediction time. A vlm's pixels do not pass through these TRL trainers in this
version: for a vlm use ``ppo`` (which passes ``pixel_values`` through) — ``ValueError`` says so.

- DPO: ``DPOTrainer`` on (prompt, chosen, rejected); the reference is the policy with its LoRA
  adapter disabled (TRL's peft path, no second copy).
- GRPO: ``GRPOTrainer`` with two reward functions, the plan's clinical reward on cases with ground
  truth, and the learned reward model where there is one; weights from ``PPOConfig``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.cases import Case
from core.progress import Progress
from core.training.common import (
    lora_config,
    make_progress_callback,
    model_device,
    quiet_trainer,
    trainer_args,
)
from core.training.data import PreferencePair

if TYPE_CHECKING:
    from core.backends.base import TrainablePolicy
    from core.training.retrain_config import RetrainConfig
    from core.training.reward import RewardModel


def _prompt_texts(policy: TrainablePolicy, cases: Sequence[Case]) -> list[str]:
    if "pixel_values" in policy.encode(list(cases[:1])):
        raise ValueError("dpo and grpo train text back ends only; for a vlm use ppo")
    texts = getattr(policy, "prompt_texts", None)
    if texts is None:
        raise ValueError("this back end does not expose its prompt text (prompt_texts)")
    return list(texts(cases))


def _peft_args(policy: TrainablePolicy, cfg: RetrainConfig) -> dict[str, Any]:
    """``peft_config`` for a model without an adapter; none (train its own) for one with."""
    if hasattr(policy.model, "peft_config"):
        for name, param in policy.model.named_parameters():
            if "lora_" in name:
                param.requires_grad_(True)
        return {}
    s = cfg.sft
    return {
        "peft_config": lora_config(
            s.lora_r, s.lora_alpha, s.lora_dropout, s.target_modules, "CAUSAL_LM"
        )
    }


def _common_args(policy: TrainablePolicy, out: str, cfg: RetrainConfig) -> dict[str, Any]:
    return trainer_args(out, cfg.ppo.seed, model_device(policy.model))


def train_dpo(
    policy: TrainablePolicy,
    pairs: Sequence[PreferencePair],
    prompt_cases: Sequence[Case],
    reward_model: RewardModel | None,
    cfg: RetrainConfig,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """DPO on the preference pairs; the policy's model is replaced by the trained one."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    prompts = _prompt_texts(policy, [p.case for p in pairs])
    rows = [
        {"prompt": t, "chosen": p.chosen, "rejected": p.rejected}
        for t, p in zip(prompts, pairs, strict=True)
    ]
    callback = make_progress_callback(progress, "dpo")
    with tempfile.TemporaryDirectory(prefix="dpo-") as tmp:
        args = DPOConfig(
            per_device_train_batch_size=cfg.sft.device_batch_size(model_device(policy.model).type),
            num_train_epochs=cfg.sft.epochs, learning_rate=cfg.sft.learning_rate,
            max_length=cfg.sft.max_length, **_common_args(policy, tmp, cfg),
        )  # fmt: skip
        trainer = DPOTrainer(
            model=policy.model, args=args, train_dataset=Dataset.from_list(rows),
            processing_class=policy.tokenizer, callbacks=[callback], **_peft_args(policy, cfg),
        )  # fmt: skip
        quiet_trainer(trainer)
        trainer.train()
    policy.model = trainer.model
    policy.model.eval()
    return {"steps": trainer.state.global_step, "history": callback.history}


def train_grpo(
    policy: TrainablePolicy,
    pairs: Sequence[PreferencePair],
    prompt_cases: Sequence[Case],
    reward_model: RewardModel | None,
    cfg: RetrainConfig,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """GRPO on the prompt cases, rewarded by the clinical reward and the reward model."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from core.training.ppo import clinical_rewards

    by_id = {c.case_id: c for c in prompt_cases}
    rows = [
        {"prompt": t, "case_id": c.case_id}
        for t, c in zip(_prompt_texts(policy, prompt_cases), prompt_cases, strict=True)
    ]

    def clinical(
        prompts: list[str], completions: list[str], case_id: list[str], **_: Any
    ) -> list[float]:
        return clinical_rewards([by_id[i] for i in case_id], [c.strip() for c in completions])

    def learned(
        prompts: list[str], completions: list[str], case_id: list[str], **_: Any
    ) -> list[float]:
        assert reward_model is not None
        return reward_model.score([by_id[i] for i in case_id], [c.strip() for c in completions])

    funcs: list[Any] = [clinical]
    weights = [cfg.ppo.clinical_weight]
    if reward_model is not None:
        funcs.append(learned)
        weights.append(cfg.ppo.reward_model_weight)
    n_gen = max(2, min(8, cfg.ppo.mini_batch_size))
    callback = make_progress_callback(progress, "grpo")
    with tempfile.TemporaryDirectory(prefix="grpo-") as tmp:
        args = GRPOConfig(
            per_device_train_batch_size=n_gen, num_generations=n_gen,
            max_completion_length=cfg.ppo.max_new_tokens, max_steps=cfg.ppo.steps,
            learning_rate=cfg.ppo.learning_rate, temperature=cfg.ppo.temperature,
            beta=cfg.ppo.init_kl_coef, reward_weights=weights, **_common_args(policy, tmp, cfg),
        )  # fmt: skip
        trainer = GRPOTrainer(
            model=policy.model, reward_funcs=funcs, args=args,
            train_dataset=Dataset.from_list(rows), processing_class=policy.tokenizer,
            callbacks=[callback], **_peft_args(policy, cfg),
        )  # fmt: skip
        quiet_trainer(trainer)
        trainer.train()
    policy.model = trainer.model
    policy.model.eval()
    return {"steps": trainer.state.global_step, "history": callback.history}
