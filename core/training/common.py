"""What the trainers share: device and precision, LoRA configs, the TRL progress bridge, and
unwrapping a policy's model down to its base weights.

Device-aware defaults (docs/architecture.md): bf16 on CUDA (when the card supports it), fp32 on MPS and on
the CPU (fp16 training on MPS is not reliable enough to be a default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from core.runtime.progress import Progress

STAGE_HELP = "progress stage name reported on each step"


def model_device(model: Any) -> Any:
    """The device of the model's first parameter."""
    return next(model.parameters()).device


def precision_args(device: Any) -> dict[str, Any]:
    """``TrainingArguments`` precision and device flags for ``device`` (a torch.device or str)."""
    import torch

    kind = torch.device(device).type
    bf16 = kind == "cuda" and torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": False, "use_cpu": kind == "cpu"}


def trainer_args(output_dir: str, seed: int, device: Any) -> dict[str, Any]:
    """The ``TrainingArguments`` every TRL trainer here shares: log each step (our progress
    callback reads the logs), save nothing (the pipeline saves what it keeps), no reporting
    services, no tqdm (progress goes through ``Progress``), precision for ``device``."""
    return {
        "output_dir": output_dir,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": seed,
        "disable_tqdm": True,
        "dataloader_pin_memory": False,
        **precision_args(device),
    }


def lora_config(
    r: int,
    alpha: int,
    dropout: float,
    target_modules: Sequence[str],
    task_type: str | None = None,
    modules_to_save: Sequence[str] | None = None,
) -> Any:
    """A ``peft.LoraConfig`` for our trainers."""
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        task_type=task_type,
        modules_to_save=list(modules_to_save) if modules_to_save else None,
        bias="none",
    )


def base_state_dict(model: Any) -> dict[str, Any]:
    """The model's weights with every LoRA adapter left out (the reference weights).

    Works on a plain transformers model and on a ``peft.PeftModel`` (whose wrapped layers keep the
    original weight as ``base_layer``).
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    out: dict[str, Any] = {}
    for key, value in inner.state_dict().items():
        if "lora_" in key or "modules_to_save" in key:
            continue
        out[key.replace(".base_layer.", ".").replace(".original_module.", ".")] = value
    return out


def base_model_copy(model: Any) -> Any:
    """A separate copy of the model's base weights, without any adapter, in eval mode."""
    import copy

    if hasattr(model, "peft_config"):
        clone = copy.deepcopy(model)
        return clone.unload()
    return copy.deepcopy(model)


def text_config(model: Any) -> Any:
    """The language model's config (the text config of a multimodal one)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = inner.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def make_progress_callback(progress: Progress | None, stage: str) -> Any:
    """A ``transformers.TrainerCallback`` that reports each optimizer step to ``progress`` and
    stops training by raising ``core.runtime.progress.Canceled`` when it has been canceled."""
    from transformers import TrainerCallback

    class _ProgressCallback(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.last_loss: float | None = None
            self.history: list[dict[str, float]] = []

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs and math.isfinite(float(logs["loss"])):
                self.last_loss = float(logs["loss"])
                self.history.append({k: float(v) for k, v in logs.items() if _num(v)})

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if progress is None:
                return
            progress.update(stage, state.global_step, state.max_steps, loss=self.last_loss)
            progress.check()

    return _ProgressCallback()


def quiet_trainer(trainer: Any) -> Any:
    """Remove the callbacks that print to stdout (stdout carries our JSON progress lines)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(float(v))
