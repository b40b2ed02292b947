"""DPO and GRPO (TRL's trainers) from the same ratings, as alternatives to reward model + PPO.

Both start from the policy as it is (the parent version's adapter, or SFT's from this retrain)
and keep that starting model as their reference, as PPO does:

- The policy's own adapter is peft's ``"default"``; TRL, given a PeftModel, copies it to a frozen
  ``"ref"`` adapter and computes the reference with that one (TRL >= 1.x), so at step 0 the policy
  and the reference are the same model (DPO's implicit rewards and GRPO's KL are exactly 0; tested).
  A policy without an adapter gets a fresh ``"default"`` (LoRA B = 0), whose copy is the bare
  weights, i.e. the starting model too. Only ``"default"`` is trained (a reward model's adapter on
  the same backbone stays frozen), and the ``"ref"`` copy is removed afterwards.
- Text back ends (clip-llm, a plain causal LM): the prompt is the policy's own prompt text
  (``policy.prompt_texts``, clip-llm's image description included), tokenized as the policy does
  (no second BOS).
- vlm: through TRL's image support: DPO gets an ``images`` column (the case's image) with the
  policy's templated prompt and the processor; GRPO gets the conversation (the image part and the
  case text, as the vlm back end builds it) and an ``image`` column.

What they learn from is ``core.training.data.TrainingData``: DPO the rated and verdict-flipped
pairs (balanced), GRPO the prompts, rewarded by the plan's clinical reward where a clinician
judged the case (``Judgement``, never a case's ground truth) and by the reward model where there
is one; weights and KL from ``PPOConfig``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.cases.records import Case
from core.clinical.rewards import clinical_reward
from core.clinical.verdicts import parse_verdict
from core.runtime.progress import Progress
from core.training import adapters
from core.training.common import make_progress_callback, model_device, quiet_trainer, trainer_args
from core.training.data import TrainingData, balanced

if TYPE_CHECKING:
    from core.models.backends.base import TrainablePolicy
    from core.training.retrain_config import RetrainConfig
    from core.training.reward import RewardModel

REF = "ref"  # TRL's name for the frozen copy of the starting adapter


def has_pixels(policy: TrainablePolicy, case: Case) -> bool:
    return "pixel_values" in policy.encode([case])


def _prompt_texts(policy: TrainablePolicy, cases: Sequence[Case]) -> list[str]:
    """The policy's prompts, less a leading BOS its tokenizer adds again by itself."""
    texts = getattr(policy, "prompt_texts", None)
    if texts is None:
        raise ValueError("this back end does not expose its prompt text (prompt_texts)")
    out = list(texts(cases))
    tok = policy.tokenizer
    bos = tok.bos_token
    adds_bos = bool(bos) and tok("x")["input_ids"][:1] == [tok.bos_token_id]
    if adds_bos:
        out = [t[len(bos) :] if t.startswith(bos) else t for t in out]
    return out


def _images(policy: TrainablePolicy, cases: Sequence[Case]) -> list[Any]:
    from core.models.backends._policy import load_pil, resolve_image

    root = getattr(policy, "image_root", None)
    return [load_pil(resolve_image(c.image, root)) for c in cases]


def starting_adapter(policy: TrainablePolicy, cfg: RetrainConfig) -> None:
    """Make the policy's own adapter ``"default"`` the one that trains (a fresh one, LoRA B = 0,
    when it has none), every other adapter frozen; TRL then copies it as the reference."""
    model = policy.model
    if adapters.POLICY_ADAPTER not in adapters.policy_adapters(model):
        s = cfg.sft
        targets = adapters.language_model_targets(model, s.target_modules)
        adapters.attach(
            policy,
            adapters.POLICY_ADAPTER,
            adapters.lora(s.lora_r, s.lora_alpha, s.lora_dropout, targets),
        )
        model = policy.model
    for name, param in model.named_parameters():
        if "lora_" in name:
            param.requires_grad_(False)
    adapters.set_active(model, [adapters.POLICY_ADAPTER], trainable=[adapters.POLICY_ADAPTER])


def _finish(policy: TrainablePolicy, trainer: Any) -> None:
    policy.model = trainer.model
    adapters.delete(policy, REF)
    adapters.set_active(policy.model, [adapters.POLICY_ADAPTER])
    for name, param in policy.model.named_parameters():
        if "lora_" in name:
            param.requires_grad_(False)
    policy.model.eval()


def dpo_rows(policy: TrainablePolicy, pairs: Sequence[Any], vision: bool) -> list[dict[str, Any]]:
    """TRL DPO rows: the policy's prompt, the chosen and rejected answers (and the image)."""
    cases = [p.case for p in pairs]
    if vision:
        prompts = list(policy.prompt_texts(cases))  # type: ignore[attr-defined]
        images = _images(policy, cases)
        return [
            {"prompt": t, "chosen": p.chosen, "rejected": p.rejected, "images": [im]}
            for t, p, im in zip(prompts, pairs, images, strict=True)
        ]
    return [
        {"prompt": t, "chosen": p.chosen, "rejected": p.rejected}
        for t, p in zip(_prompt_texts(policy, cases), pairs, strict=True)
    ]


def train_dpo(
    policy: TrainablePolicy,
    data: TrainingData,
    cfg: RetrainConfig,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """DPO on the rated and verdict-flipped pairs (balanced by chosen verdict); the policy's
    model is trained in place, its reference the starting model.

    Raises:
        ValueError: no pairs.
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    pairs = data.reward_pairs if cfg.flipped_pairs else list(data.pairs)
    pairs = balanced(pairs, cfg.reward.seed) if cfg.balance_pairs else pairs
    if not pairs:
        raise ValueError("no preference pairs for DPO")
    vision = has_pixels(policy, pairs[0].case)
    rows = dpo_rows(policy, pairs, vision)
    starting_adapter(policy, cfg)
    device = model_device(policy.model)
    callback = make_progress_callback(progress, "dpo")
    with tempfile.TemporaryDirectory(prefix="dpo-") as tmp:
        args = DPOConfig(
            per_device_train_batch_size=cfg.sft.device_batch_size(device.type),
            num_train_epochs=cfg.sft.epochs, learning_rate=cfg.sft.learning_rate,
            max_length=None if vision else cfg.sft.max_length, remove_unused_columns=False,
            **trainer_args(tmp, cfg.ppo.seed, device),
        )  # fmt: skip
        trainer = DPOTrainer(
            model=policy.model, args=args, train_dataset=Dataset.from_list(rows),
            processing_class=getattr(policy, "processor", None) if vision else policy.tokenizer,
            callbacks=[callback],
        )  # fmt: skip
        quiet_trainer(trainer)
        try:
            trainer.train()
        finally:
            _finish(policy, trainer)
    return {"steps": trainer.state.global_step, "pairs": len(pairs), "vision": vision,
            "reference": "starting model", "history": callback.history}  # fmt: skip


def _completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion.strip()
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content).strip()
    return str(completion).strip()


def train_grpo(
    policy: TrainablePolicy,
    data: TrainingData,
    reward_model: RewardModel | None,
    cfg: RetrainConfig,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """GRPO on the prompts, rewarded by the clinical reward where a clinician judged the case
    and by the reward model where there is one; reference: the starting model.

    Raises:
        ValueError: no prompts.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from core.clinical.prompts import build_prompt

    cases = list(data.prompts)
    if not cases:
        raise ValueError("no prompts for GRPO")
    by_id = {c.case_id: c for c in cases}
    judged = data.judgements
    vision = has_pixels(policy, cases[0])
    if vision:
        rows = [
            {
                "prompt": [{"role": "user", "content": build_prompt(c)}],
                "image": im,
                "case_id": c.case_id,
            }
            for c, im in zip(cases, _images(policy, cases), strict=True)
        ]
    else:
        rows = [
            {"prompt": t, "case_id": c.case_id}
            for t, c in zip(_prompt_texts(policy, cases), cases, strict=True)
        ]

    def clinical(
        prompts: list[Any], completions: list[Any], case_id: list[str], **_: Any
    ) -> list[float | None]:
        out: list[float | None] = []
        for cid, comp in zip(case_id, completions, strict=True):
            j = judged.get(cid)
            label = parse_verdict(_completion_text(comp))[0]
            # clinical_reward reads is_error and severity: a Judgement has both (never a Case's).
            out.append(None if j is None else clinical_reward(label, j))  # type: ignore[arg-type]
        return out

    def learned(
        prompts: list[Any], completions: list[Any], case_id: list[str], **_: Any
    ) -> list[float]:
        assert reward_model is not None
        return reward_model.score(
            [by_id[i] for i in case_id], [_completion_text(c) for c in completions]
        )

    funcs: list[Any] = [clinical]
    weights = [cfg.ppo.clinical_weight]
    if reward_model is not None:
        funcs.append(learned)
        weights.append(cfg.ppo.reward_model_weight)
    n_gen = max(2, min(8, cfg.ppo.mini_batch_size))
    starting_adapter(policy, cfg)
    callback = make_progress_callback(progress, "grpo")
    with tempfile.TemporaryDirectory(prefix="grpo-") as tmp:
        args = GRPOConfig(
            per_device_train_batch_size=n_gen, num_generations=n_gen,
            max_completion_length=cfg.ppo.max_new_tokens, max_steps=cfg.ppo.steps,
            learning_rate=cfg.ppo.learning_rate, temperature=cfg.ppo.temperature,
            beta=cfg.ppo.init_kl_coef, reward_weights=weights, remove_unused_columns=False,
            **trainer_args(tmp, cfg.ppo.seed, model_device(policy.model)),
        )  # fmt: skip
        trainer = GRPOTrainer(
            model=policy.model, reward_funcs=funcs, args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=getattr(policy, "processor", None) if vision else policy.tokenizer,
            callbacks=[callback],
        )  # fmt: skip
        quiet_trainer(trainer)
        try:
            trainer.train()
        finally:
            _finish(policy, trainer)
    return {"steps": trainer.state.global_step, "prompts": len(cases), "vision": vision,
            "judged": sum(c.case_id in judged for c in cases), "reference": "starting model",
            "history": callback.history}  # fmt: skip
