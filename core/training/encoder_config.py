"""Configuration of the encoder stage (``core.training.encoder``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EncoderSettings:
    """Fine-tuning a clip-llm version's image encoder on what the clinicians judged: AdamW at a
    low rate (the encoder starts trained; a few hundred labels must not undo it), a check on the
    val cases every ``eval_every`` steps, the checkpoint with the lowest val loss kept only if it
    beats the encoder as it was."""

    learning_rate: float = field(default=3e-4, metadata={"help": "AdamW learning rate"})
    steps: int = field(default=200, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=32, metadata={"help": "labelled images per step"})
    eval_every: int = field(
        default=25, metadata={"help": "steps between checks of the val loss (lowest kept)"}
    )
    shift: float = field(
        default=0.08,
        metadata={"help": "augmentation: move each image by up to this share of its side"},
    )
    freeze_norm: bool = field(
        default=True,
        metadata={
            "help": "keep batch-norm statistics as they are (a few hundred images of mixed "
            "modalities would move them away from what the encoder learned on)"
        },
    )
    min_labels: int = field(
        default=20, metadata={"help": "image labels needed before the encoder trains"}
    )
    seed: int = field(default=0, metadata={"help": "seed for the batch order and augmentation"})

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be positive")
        if min(self.steps, self.batch_size, self.eval_every, self.min_labels) < 1:
            raise ValueError("steps, batch_size, eval_every and min_labels must be at least 1")
        if not 0.0 <= self.shift < 0.5:
            raise ValueError("shift must be in [0, 0.5)")
