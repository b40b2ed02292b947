"""Configuration of LoRA supervised fine-tuning (``core.training.sft``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SFTSettings:
    """LoRA SFT on the clinicians' gold answers. Defaults from the plan: r 16, alpha 32, dropout
    0.1, q/v/o projections, learning rate 1e-4, 3 epochs. ``batch_size`` None sizes it to the
    device (16 on CUDA, 8 elsewhere); the effective batch is batch_size x accumulation."""

    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout"})
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "v_proj", "o_proj"), metadata={"help": "modules that get LoRA"}
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the gold answers"})
    batch_size: int | None = field(
        default=None, metadata={"help": "examples per device step (None: 16 on CUDA, else 8)"}
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "steps per update"})
    max_length: int = field(
        default=1024, metadata={"help": "longest example in tokens (cut beyond)"}
    )
    confirmed: bool = field(
        default=True,
        metadata={
            "help": "also train on chosen model verdicts whose label the clinician confirmed"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed for the adapter and the order"})

    def __post_init__(self) -> None:
        if self.lora_r <= 0 or self.lora_alpha <= 0:
            raise ValueError("lora_r and lora_alpha must be positive")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError("lora_dropout must be in [0, 1)")
        if self.learning_rate <= 0 or self.epochs <= 0:
            raise ValueError("learning_rate and epochs must be positive")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.gradient_accumulation_steps < 1 or self.max_length < 8:
            raise ValueError("gradient_accumulation_steps >= 1 and max_length >= 8 are required")
        self.target_modules = tuple(self.target_modules)

    def device_batch_size(self, device_type: str) -> int:
        """The batch size to use on a device of ``device_type`` (``cuda``, ``mps``, ``cpu``)."""
        if self.batch_size is not None:
            return self.batch_size
        return 16 if device_type == "cuda" else 8
