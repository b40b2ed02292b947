"""Configuration of the one-click retrain pipeline (``core.training.retrain``), and the one table
of its stages.

``STAGES`` is the table: each stage's name, what it does (one line for users), the function that
runs it, the settings it reads and what data it needs. Everything that offers or runs a stage
reads it: ``retrain`` runs the asked-for stages in the table's order and refuses too little data
by it, ``medreview train`` has a sub-command per stage and per ``PIPELINES`` entry and checks
``--stages`` against it, and the window's Retrain dialog says what the one-click pipeline does
from it. A new stage is its function (``core.training.stages`` or a module of its own) and one
row here; nothing else names it.

The table names functions as ``"module:function"`` text and imports them only when a stage runs
(``Stage.runner``), so the window reads it without importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.training.encoder_config import EncoderSettings
from core.training.ppo_config import PPOConfig
from core.training.reward_config import RewardModelConfig
from core.training.sft_config import SFTSettings

SFT_MODES = ("auto", "yes", "no")
DEVICES = ("auto", "cuda", "mps", "cpu")


@dataclass(frozen=True)
class Stage:
    """One retrain stage.

    ``runs``: the ``"module:function"`` that runs it; it takes a ``core.training.stages.
    StageContext`` and returns its report (a dict, recorded on the model card), or None when it
    had nothing to do. ``config``: the ``RetrainConfig`` section whose settings it reads.
    ``needs``: what it learns from, in words. ``min_reward_pairs``: refused below
    ``RetrainConfig.min_reward_pairs`` preference pairs. ``when_skipped``: a function run instead
    when the stage is not asked for (the reward stage carries the parent's reward model forward).
    """

    name: str
    summary: str
    runs: str
    config: str
    needs: str
    min_reward_pairs: bool = False
    when_skipped: str | None = None

    def runner(self) -> Callable[[Any], dict[str, Any] | None]:
        """The function that runs the stage (imports its module now)."""
        return _load(self.runs)

    def skipped_runner(self) -> Callable[[Any], dict[str, Any] | None] | None:
        """The function run when the stage is not asked for, or None."""
        return None if self.when_skipped is None else _load(self.when_skipped)


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_RUNS = "core.training.stages"
#: The retrain stages, in the order they run whatever order they are asked for in.
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "encoder",
            "fine-tune the image encoder on what the clinicians judged each image to show "
            "(kept only if its val loss is lower)",
            runs="core.training.encoder:run_encoder",
            config="encoder",
            needs="judged cases whose verdict says whether the image shows the stated finding; "
            "the val cases",
        ),
        Stage(
            "sft",
            "LoRA supervised fine-tuning on the answers clinicians confirmed or wrote",
            runs=f"{_RUNS}:run_sft",
            config="sft",
            needs="gold answers (with run_sft auto: at least sft_min_examples of them)",
        ),
        Stage(
            "reward",
            "a reward model on the preference pairs (pairwise accuracy on held-out pairs)",
            runs=f"{_RUNS}:run_reward",
            config="reward",
            needs="preference pairs, rated and verdict-flipped",
            min_reward_pairs=True,
            when_skipped=f"{_RUNS}:carry_reward_model",
        ),
        Stage(
            "ppo",
            "PPO with the reward model (this run's or the parent's) and the clinical reward",
            runs=f"{_RUNS}:run_ppo",
            config="ppo",
            needs="prompts: the judged cases and the unrated review cases",
        ),
        Stage(
            "dpo",
            "direct preference optimization (TRL DPOTrainer) on the preference pairs",
            runs=f"{_RUNS}:run_dpo",
            config="sft",
            needs="preference pairs, rated and verdict-flipped",
            min_reward_pairs=True,
        ),
        Stage(
            "grpo",
            "group relative policy optimization (TRL GRPOTrainer), clinical + learned reward",
            runs=f"{_RUNS}:run_grpo",
            config="ppo",
            needs="prompts: the judged cases and the unrated review cases",
        ),
    )
}


@dataclass(frozen=True)
class Pipeline:
    """A named sequence of stages that ``medreview train`` offers as one sub-command."""

    stages: tuple[str, ...]
    summary: str


PIPELINES: dict[str, Pipeline] = {
    "retrain": Pipeline(
        ("sft", "reward", "ppo"),
        "the one-click pipeline: SFT (gold answers), reward model, PPO, evaluate, register",
    ),
    "rl": Pipeline(("reward", "ppo"), "reward model and PPO (no SFT), evaluate, register"),
}


@dataclass
class RetrainConfig:
    """SFT (where clinicians gave gold answers), reward model, PPO, evaluation on val, the safety
    gate against the active version, registration. Refuses below ``min_judged_cases``."""

    name: str | None = field(
        default=None, metadata={"help": "name of the new version (default: <parent>-rl-<UTC time>)"}
    )
    device: str = field(
        default="auto",
        metadata={"help": "where to train: auto | cuda | mps | cpu", "choices": DEVICES},
    )
    stages: tuple[str, ...] = field(
        default=PIPELINES["retrain"].stages,
        metadata={
            "help": "what to train, run in this order whatever order they are given in: "
            + ", ".join(STAGES),
            "choices": tuple(STAGES),
        },
    )
    run_sft: str = field(
        default="auto",
        metadata={
            "help": "auto: SFT when there are at least sft_min_examples gold answers; yes; no",
            "choices": SFT_MODES,
        },
    )
    sft_min_examples: int = field(
        default=8, metadata={"help": "gold answers needed before auto runs SFT"}
    )
    encoder: EncoderSettings = field(
        default_factory=EncoderSettings, metadata={"help": "encoder stage settings"}
    )
    sft: SFTSettings = field(default_factory=SFTSettings, metadata={"help": "SFT settings"})
    reward: RewardModelConfig = field(
        default_factory=RewardModelConfig, metadata={"help": "reward model settings"}
    )
    ppo: PPOConfig = field(default_factory=PPOConfig, metadata={"help": "PPO settings"})
    max_fpr: float = field(
        default=0.10, metadata={"help": "safety gate: highest false positive rate to promote"}
    )
    min_judged_cases: int = field(
        default=20,
        metadata={
            "help": "clinician-judged cases (outside val/test) needed before a retrain starts; "
            "below it the retrain refuses and says what it has"
        },
    )
    min_reward_pairs: int = field(
        default=10,
        metadata={"help": "reward-model pairs (rated + verdict-flipped) needed for reward or dpo"},
    )
    flipped_pairs: bool = field(
        default=True,
        metadata={
            "help": "reward model: add each gold answer over the same reason with the other "
            "verdict word (it must judge the verdict, not the wording)"
        },
    )
    balance_pairs: bool = field(
        default=True,
        metadata={
            "help": "reward model: repeat pairs so ERROR and CORRECT are chosen equally often"
        },
    )
    batch_size: int = field(default=8, metadata={"help": "cases per model call when evaluating"})

    def __post_init__(self) -> None:
        self.stages = tuple(self.stages)
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise ValueError(
                f"stages must be one or more of {', '.join(STAGES)}; got {', '.join(self.stages) or 'none'}"
            )
        if self.run_sft not in SFT_MODES:
            raise ValueError(f"run_sft must be one of {SFT_MODES}, got {self.run_sft!r}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}")
        if not 0.0 <= self.max_fpr <= 1.0:
            raise ValueError("max_fpr must be in [0, 1]")
        if self.sft_min_examples < 1 or self.batch_size < 1:
            raise ValueError("sft_min_examples and batch_size must be at least 1")
        if self.min_judged_cases < 1 or self.min_reward_pairs < 1:
            raise ValueError("min_judged_cases and min_reward_pairs must be at least 1")
