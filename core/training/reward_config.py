"""Configuration of the reward model trainer (``core.training.reward``)."""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("auto", "text", "image")


@dataclass
class RewardModelConfig:
    """How the reward model is built and trained.

    ``kind``: ``text`` trains a sequence classifier (one output) with TRL's RewardTrainer on the
    prompt as the policy writes it (for clip-llm, with the image description); ``image`` gives the
    reward model the image too: the policy's own backbone, a LoRA adapter and a scalar head, in our
    own loop with the same Bradley-Terry loss. ``auto`` picks ``image`` when the policy's inputs
    carry pixels.
    """

    kind: str = field(
        default="auto",
        metadata={
            "help": "text | image | auto (image when the policy sees pixels)",
            "choices": KINDS,
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj"),
        metadata={"help": "modules that get LoRA"},
    )
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW learning rate"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training pairs"})
    batch_size: int = field(default=8, metadata={"help": "pairs per optimizer step (per device)"})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "batches per optimizer step"}
    )
    max_length: int | None = field(
        default=1024, metadata={"help": "drop pairs longer than this (tokens)"}
    )
    eval_fraction: float = field(
        default=0.2, metadata={"help": "share of cases held out to measure pairwise accuracy"}
    )
    use_margin: bool = field(
        default=True, metadata={"help": "subtract the clinician's margin in the loss where given"}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "seed for the head, the split and the order"})

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.lora_r <= 0 or self.lora_alpha <= 0:
            raise ValueError("lora_r and lora_alpha must be positive")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError("lora_dropout must be in [0, 1)")
        if self.learning_rate <= 0 or self.epochs <= 0:
            raise ValueError("learning_rate and epochs must be positive")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("batch_size and gradient_accumulation_steps must be at least 1")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError("eval_fraction must be in [0, 1)")
        if self.max_length is not None and self.max_length < 8:
            raise ValueError("max_length must be at least 8 tokens")
        self.target_modules = tuple(self.target_modules)
