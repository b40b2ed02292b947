"""The functions that run the retrain stages, named by ``core.training.retrain_config.STAGES``.

Each takes the ``StageContext`` of the run and returns its report (recorded on the new version's
card under the stage's name), or None when it had nothing to do (SFT with no gold answers, a
parent with no reward model to carry). They share the policy, which they train in place, and
leave what later stages need on the context (the reward model, the stages that ran).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.cases.records import Case
from core.models.registry import ModelCard
from core.runtime.progress import Progress
from core.training.data import TrainingData
from core.training.retrain_config import RetrainConfig


@dataclass
class StageContext:
    """What the stages of one retrain share: the policy being trained (the parent's model), what
    it learns from, the settings, the run's temporary folder (which becomes the new version), the
    parent's card and folder, and the progress. ``reward_model`` is set by the reward stage (or
    carried from the parent) for PPO and GRPO; ``ran`` lists the stages that trained. ``val``:
    the val cases with their verdicts, for a stage's choices (the encoder stage keeps its
    checkpoint by them). ``base_models`` and ``settings`` start as the parent card's and become
    the new card's: a stage that replaces a base model (the encoder stage) or a setting (the
    stated call's threshold) changes them here."""

    policy: Any
    data: TrainingData
    cfg: RetrainConfig
    work: Path
    parent: ModelCard
    parent_dir: Path
    progress: Progress | None = None
    reward_model: Any = None
    ran: list[str] = field(default_factory=list)
    val: list[Case] = field(default_factory=list)
    base_models: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_models = dict(self.base_models or self.parent.base_models)
        self.settings = dict(self.settings or self.parent.settings)

    def announce(self, stage: str, message: str) -> None:
        """Honour a cancel, then say that ``stage`` starts and on what."""
        if self.progress is not None:
            self.progress.check()
            self.progress.update(stage, 0, None, message=message)


def run_sft(ctx: StageContext) -> dict[str, Any] | None:
    """LoRA SFT on the gold answers, when ``run_sft`` asks for it (auto: enough of them)."""
    from core.training.sft import train_sft

    cfg = ctx.cfg
    gold = ctx.data.gold_answers(cfg.sft.confirmed)
    wanted = cfg.run_sft == "yes" or (cfg.run_sft == "auto" and len(gold) >= cfg.sft_min_examples)
    if not (wanted and gold):
        return None
    ctx.announce("sft", f"{len(gold)} gold answers")
    return train_sft(ctx.policy, gold, cfg.sft, ctx.progress).to_dict()


def run_reward(ctx: StageContext) -> dict[str, Any]:
    """The reward model on balanced rated + verdict-flipped pairs, whole cases held out; its
    held-out accuracy overall, on rated and on flipped pairs, by chosen verdict. Saved in the
    new version's ``reward_model/``."""
    from core.training.data import balanced, split_pairs
    from core.training.reward import RewardReport, train_reward_model
    from core.training.reward_eval import reward_accuracy

    cfg, data, progress = ctx.cfg, ctx.data, ctx.progress
    ctx.announce("reward", f"{len(data.pairs)} rated and {len(data.flipped)} flipped pairs")
    pairs = data.reward_pairs if cfg.flipped_pairs else list(data.pairs)
    train, held = split_pairs(pairs, cfg.reward.eval_fraction, cfg.reward.seed)
    train = balanced(train, cfg.reward.seed) if cfg.balance_pairs else train
    reward_model, rep = train_reward_model(ctx.policy, train, cfg.reward, progress, eval_pairs=[])
    out = rep.to_dict()
    out["train_pairs_by_kind"] = {k: sum(p.kind == k for p in train) for k in ("rated", "flipped")}
    acc = reward_accuracy(reward_model, held, batch_size=cfg.batch_size)
    out.update(eval_pairs=acc.pairs, eval_accuracy=acc.accuracy, held_out=acc.to_dict())
    fields = {k: out[k] for k in RewardReport.__dataclass_fields__}
    reward_model.save(ctx.work / "reward_model", RewardReport(**fields))
    if progress is not None:
        progress.update("reward", rep.steps, rep.steps, loss=rep.train_loss, message=acc.line())
    ctx.reward_model = reward_model
    return out


def carry_reward_model(ctx: StageContext) -> dict[str, Any] | None:
    """When no reward stage runs: the parent's reward model, if it has one, scores PPO and GRPO
    and goes into the new version unchanged."""
    from core.training.reward import RewardModel

    src = ctx.parent_dir / "reward_model"
    if not (src / "reward_card.json").exists():
        return None
    ctx.reward_model = RewardModel.load(src, ctx.policy)
    shutil.copytree(src, ctx.work / "reward_model")
    return {"from_parent": ctx.parent.name}


def run_ppo(ctx: StageContext) -> dict[str, Any]:
    """PPO on the prompts with the reward model (if any) and the clinical reward; its adapter
    folded into the policy's at the end."""
    from core.training.ppo import PPOTrainer, can_stack_adapter

    data = ctx.data
    ctx.announce("ppo", f"{len(data.prompts)} prompts, {len(data.judgements)} judged")
    # The reference is the policy PPO starts from (standard RLHF): after SFT the SFT model,
    # else a parent version's own adapter (e.g. an SFT version). That adapter stays on,
    # frozen, PPO trains its own adapter on top, and both are folded into one at the end.
    # A parent without an adapter and no SFT: a fresh adapter, the base as reference.
    stack = can_stack_adapter(ctx.policy.model)
    trainer = PPOTrainer(
        ctx.policy, ctx.cfg.ppo, reward_model=ctx.reward_model, progress=ctx.progress,
        reference="current" if stack else "base", judgements=data.judgements,
    )  # fmt: skip
    report = trainer.train(data.prompts, checkpoint_score=_val_reward(ctx))
    trainer.fold_adapters()
    reference = ("sft" if "sft" in ctx.ran else "parent") if stack else "base"
    return {"steps": report.steps, "seconds": report.seconds, "reference": reference,
            "history": report.history, "checks": report.checks,
            "kept_step": report.kept_step}  # fmt: skip


def _val_reward(ctx: StageContext) -> Callable[[], float] | None:
    """PPO's checkpoint score: the policy's mean clinical reward on the val cases (the measure
    the safety gate compares), or None when there are no val cases with ground truth. How
    often it is asked (``PPOConfig.val_every``, 0: never) is the trainer's business."""
    from core.evaluation import evaluate

    val = [c for c in ctx.val if c.is_error is not None]
    if not val:
        return None

    def score() -> float:
        verdicts = ctx.policy.predict(val, batch_size=ctx.cfg.batch_size)
        return float(evaluate(val, verdicts).mean_reward)

    return score


def run_dpo(ctx: StageContext) -> dict[str, Any]:
    """DPO (TRL) on the rated and verdict-flipped pairs; the starting model is the reference."""
    from core.training.alternatives import train_dpo

    ctx.announce("dpo", f"{len(ctx.data.reward_pairs)} preference pairs")
    return train_dpo(ctx.policy, ctx.data, ctx.cfg, ctx.progress)


def run_grpo(ctx: StageContext) -> dict[str, Any]:
    """GRPO (TRL) on the prompts, rewarded by the clinical reward and the reward model."""
    from core.training.alternatives import train_grpo

    ctx.announce("grpo", f"{len(ctx.data.prompts)} prompts, {len(ctx.data.judgements)} judged")
    return train_grpo(ctx.policy, ctx.data, ctx.reward_model, ctx.cfg, ctx.progress)
