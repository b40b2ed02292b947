"""Configuration of the one-click retrain pipeline (``core.training.retrain``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.training.ppo_config import PPOConfig
from core.training.reward_config import RewardModelConfig
from core.training.sft_config import SFTSettings

SFT_MODES = ("auto", "yes", "no")
STAGES = ("sft", "reward", "ppo", "dpo", "grpo")


@dataclass
class RetrainConfig:
    """SFT (where clinicians gave gold answers), reward model, PPO, evaluation on val, the safety
    gate against the active version, registration. Refuses below ``min_judged_cases``."""

    name: str | None = field(
        default=None, metadata={"help": "name of the new version (default: <parent>-rl-<UTC time>)"}
    )
    device: str = field(default="auto", metadata={"help": "auto | cuda | mps | cpu"})
    stages: tuple[str, ...] = field(
        default=("sft", "reward", "ppo"),
        metadata={
            "help": "what to train, in order: sft, reward, ppo (or dpo / grpo instead of ppo)"
        },
    )
    run_sft: str = field(
        default="auto",
        metadata={
            "help": "auto: SFT when there are at least sft_min_examples gold answers; yes; no"
        },
    )
    sft_min_examples: int = field(
        default=8, metadata={"help": "gold answers needed before auto runs SFT"}
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
            raise ValueError(f"stages must be a non-empty subset of {STAGES}; got {self.stages}")
        if self.run_sft not in SFT_MODES:
            raise ValueError(f"run_sft must be one of {SFT_MODES}, got {self.run_sft!r}")
        if self.device not in ("auto", "cuda", "mps", "cpu"):
            raise ValueError(f"unknown device {self.device!r}")
        if not 0.0 <= self.max_fpr <= 1.0:
            raise ValueError("max_fpr must be in [0, 1]")
        if self.sft_min_examples < 1 or self.batch_size < 1:
            raise ValueError("sft_min_examples and batch_size must be at least 1")
        if self.min_judged_cases < 1 or self.min_reward_pairs < 1:
            raise ValueError("min_judged_cases and min_reward_pairs must be at least 1")
