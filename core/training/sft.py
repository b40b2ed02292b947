"""LoRA supervised fine-tuning on the answers clinicians confirmed or wrote themselves.

Examples come from ``expert_feedback.jsonl`` (``core.training.data.sft_examples``): a chosen answer
whose label is the clinician's true label (the clinician's own rationale always is; with
``confirmed`` a preferred model verdict with the right label counts too).

Text back ends (clip-llm, a plain causal LM) train with TRL's SFTTrainer and peft on the token ids
the policy itself encodes (prompt masked with -100), so the prompt at training time is exactly the
prompt at prediction time. A vlm's inputs carry pixels, which TRL's SFT collator builds only from
its own processor: for those the same masked-LM loss runs in ``_train_with_images``.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cases.records import Case
from core.runtime.progress import Progress
from core.training.common import (
    lora_config,
    make_progress_callback,
    model_device,
    quiet_trainer,
    trainer_args,
)
from core.training.sft_config import SFTSettings

if TYPE_CHECKING:
    from core.models.backends.base import TrainablePolicy


@dataclass(frozen=True)
class SFTReport:
    examples: int
    steps: int
    first_loss: float | None
    final_loss: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _attach_adapter(policy: TrainablePolicy, cfg: SFTSettings) -> None:
    """Give the policy a trainable LoRA adapter (a new one, or its own made trainable)."""
    from peft import get_peft_model

    if hasattr(policy.model, "peft_config"):
        for name, param in policy.model.named_parameters():
            if "lora_" in name:
                param.requires_grad_(True)
        return
    policy.model = get_peft_model(
        policy.model,
        lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules, "CAUSAL_LM"),
    )


def sft_rows(
    policy: TrainablePolicy, examples: Sequence[tuple[Case, str]], max_length: int
) -> list[dict[str, Any]]:
    """Pre-tokenized rows (``input_ids``, ``labels``) made by the policy's own ``encode``."""
    rows = []
    for i in range(0, len(examples), 32):
        chunk = examples[i : i + 32]
        enc = policy.encode([c for c, _ in chunk], [t for _, t in chunk])
        for ids, mask, labels in zip(
            enc["input_ids"], enc["attention_mask"], enc["labels"], strict=True
        ):
            keep = mask.bool()
            rows.append(
                {
                    "input_ids": ids[keep].tolist()[-max_length:],
                    "labels": labels[keep].tolist()[-max_length:],
                }
            )
    return rows


def train_sft(
    policy: TrainablePolicy,
    examples: Sequence[tuple[Case, str]],
    config: SFTSettings | None = None,
    progress: Progress | None = None,
) -> SFTReport:
    """Fine-tune ``policy`` in place (its ``model`` gets or keeps a LoRA adapter).

    Raises:
        ValueError: no examples.
        core.runtime.progress.Canceled: ``progress`` was canceled.
    """
    import torch

    cfg = config or SFTSettings()
    if not examples:
        raise ValueError("no gold answers to fine-tune on")
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    has_pixels = "pixel_values" in policy.encode([examples[0][0]])
    _attach_adapter(policy, cfg)
    if has_pixels:
        steps, losses = _train_with_images(policy, examples, cfg, progress)
    else:
        steps, losses = _train_with_trl(policy, examples, cfg, progress)
    policy.model.eval()
    return SFTReport(
        len(examples), steps, losses[0] if losses else None, losses[-1] if losses else None,
        time.perf_counter() - t0,
    )  # fmt: skip


def _train_with_trl(
    policy: TrainablePolicy, examples: Sequence[tuple[Case, str]], cfg: SFTSettings,
    progress: Progress | None,
) -> tuple[int, list[float]]:  # fmt: skip
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    device = model_device(policy.model)
    dataset = Dataset.from_list(sft_rows(policy, examples, cfg.max_length))
    callback = make_progress_callback(progress, "sft")
    with tempfile.TemporaryDirectory(prefix="sft-") as tmp:
        args = SFTConfig(
            per_device_train_batch_size=cfg.device_batch_size(device.type),
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            num_train_epochs=cfg.epochs,
            learning_rate=cfg.learning_rate,
            max_length=cfg.max_length,
            **trainer_args(tmp, cfg.seed, device),
        )
        trainer = SFTTrainer(
            model=policy.model, args=args, train_dataset=dataset,
            processing_class=policy.tokenizer, callbacks=[callback],
        )  # fmt: skip
        quiet_trainer(trainer)
        trainer.train()
    policy.model = trainer.model
    return trainer.state.global_step, [h["loss"] for h in callback.history if "loss" in h]


def _train_with_images(
    policy: TrainablePolicy, examples: Sequence[tuple[Case, str]], cfg: SFTSettings,
    progress: Progress | None,
) -> tuple[int, list[float]]:  # fmt: skip
    import torch

    model = policy.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate)
    bs, accum = cfg.device_batch_size(model_device(model).type), cfg.gradient_accumulation_steps
    batches = math.ceil(cfg.epochs * math.ceil(len(examples) / bs))
    total = math.ceil(batches / accum)
    order, rng, losses = list(examples), random.Random(cfg.seed), []
    model.train()
    done = step = 0
    while done < batches:
        rng.shuffle(order)
        for i in range(0, len(order), bs):
            if done >= batches:
                break
            chunk = order[i : i + bs]
            loss = model(**policy.encode([c for c, _ in chunk], [t for _, t in chunk])).loss
            (loss / accum).backward()
            done += 1
            if done % accum and done < batches:
                continue
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            losses.append(float(loss.detach()))
            if progress is not None:
                progress.update("sft", step, total, loss=losses[-1])
                progress.check()
    return step, losses


def save_adapter(policy: TrainablePolicy, folder: str | Path) -> Path:
    """Write the policy's adapter (safetensors) to ``folder``."""
    out = Path(folder)
    policy.save_adapter(str(out))
    return out
