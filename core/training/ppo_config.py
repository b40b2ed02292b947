"""Configuration of the PPO trainer (``core.training.ppo``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PPOConfig:
    """PPO with a LoRA policy, a value head and an adaptive KL penalty, on one backbone.

    One step: generate ``batch_size`` answers, score them (reward model, clinical reward where a
    clinician judged, contradiction penalty, normalised), then ``ppo_epochs`` passes of
    clipped-PPO updates over minibatches of ``mini_batch_size``.
    """

    steps: int = field(default=20, metadata={"help": "rollout batches (PPO steps)"})
    batch_size: int = field(default=16, metadata={"help": "answers generated per step"})
    mini_batch_size: int = field(default=8, metadata={"help": "answers per gradient update"})
    ppo_epochs: int = field(default=4, metadata={"help": "passes over each rollout batch"})
    learning_rate: float = field(
        default=1e-4, metadata={"help": "AdamW learning rate (LoRA and value head)"}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank of a new policy adapter"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(
        default=0.0,
        metadata={"help": "LoRA dropout (0 keeps the PPO ratio exactly 1 at the start)"},
    )
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "v_proj", "o_proj"), metadata={"help": "modules that get LoRA"}
    )
    max_new_tokens: int = field(default=32, metadata={"help": "longest generated answer"})
    temperature: float = field(
        default=1.0, metadata={"help": "sampling temperature of the rollouts"}
    )
    top_k: int = field(default=0, metadata={"help": "top-k sampling (0: off)"})
    gamma: float = field(default=1.0, metadata={"help": "discount of the GAE"})
    lam: float = field(default=0.95, metadata={"help": "lambda of the GAE"})
    cliprange: float = field(default=0.2, metadata={"help": "PPO ratio clip"})
    cliprange_value: float = field(default=0.2, metadata={"help": "value prediction clip"})
    vf_coef: float = field(default=0.1, metadata={"help": "weight of the value loss"})
    init_kl_coef: float = field(default=0.1, metadata={"help": "initial KL penalty coefficient"})
    target_kl: float = field(
        default=1.0, metadata={"help": "target KL per answer (nats), adaptive control"}
    )
    adaptive_kl: bool = field(
        default=True, metadata={"help": "adapt the KL coefficient toward target_kl"}
    )
    kl_horizon: float = field(
        default=4.0,
        metadata={
            "help": "PPO steps over which the adaptive controller moves log(kl_coef) by the log "
            "of the KL's ratio to its target (clipped to +-1)"
        },
    )
    reward_model_weight: float = field(
        default=1.0, metadata={"help": "weight of the reward-model score (standardised)"}
    )
    clinical_weight: float = field(
        default=1.0,
        metadata={"help": "weight of the plan's clinical reward, on prompts a clinician judged"},
    )
    contradiction_penalty: float = field(
        default=8.0,
        metadata={
            "help": "subtracted when an answer's reason contradicts its verdict word; above the "
            "clinical reward's widest gap between the right and the wrong verdict (7, on a "
            "critical error, at clinical_weight 1), so on a judged case flipping the word and "
            "keeping the reason never pays more than the consistent wrong answer"
        },
    )
    normalize_rewards: bool = field(
        default=True,
        metadata={"help": "standardise scores with running moments over the run"},
    )
    whiten_advantages: bool = field(
        default=True, metadata={"help": "normalize advantages per batch"}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    val_every: int = field(
        default=10,
        metadata={
            "help": "every N steps, the policy's mean clinical reward on the val cases; the best "
            "check (the starting model included; the later on a tie) is the one kept. 0: keep "
            "the last step"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed for sampling and case order"})

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "mini_batch_size",
            "ppo_epochs",
            "max_new_tokens",
            "lora_r",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.mini_batch_size > self.batch_size:
            raise ValueError("mini_batch_size cannot exceed batch_size")
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise ValueError("learning_rate and temperature must be positive")
        if not (0 < self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError("gamma must be in (0, 1] and lam in [0, 1]")
        if self.cliprange <= 0 or self.cliprange_value <= 0:
            raise ValueError("clip ranges must be positive")
        if self.init_kl_coef < 0 or self.target_kl <= 0 or self.kl_horizon < 1:
            raise ValueError("init_kl_coef >= 0, target_kl > 0 and kl_horizon >= 1 are required")
        if self.val_every < 0:
            raise ValueError("val_every cannot be negative (0: keep the last step)")
        if self.contradiction_penalty < 0:
            raise ValueError("contradiction_penalty cannot be negative")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError("lora_dropout must be in [0, 1)")
        self.target_modules = tuple(self.target_modules)
