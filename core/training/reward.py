"""The reward model: a scalar score for (case, answer), trained on the clinicians' A/B ratings.

Loss (Bradley-Terry, as TRL's RewardTrainer): ``-logsigmoid(r_chosen - r_rejected - margin)``,
with the pair's margin where the clinician gave one.

Two kinds (``RewardModelConfig.kind``):

- ``text``: the policy's language model as ``AutoModelForSequenceClassification`` (one label) with
  LoRA, trained by TRL's RewardTrainer on the token ids the policy itself encodes (so clip-llm's
  prompt, image description included, is exactly what the reward model reads).
- ``image``: the policy's own backbone (a separate copy of its base weights) with LoRA and a linear
  head on the last hidden state of the last token, trained by ``_train_image`` with the same loss;
  it sees ``pixel_values``, so a vlm's reward model judges the image too.

Saved under a version's ``reward_model/``: ``reward_card.json``, the LoRA adapter (safetensors)
and, for ``image``, ``head.safetensors``. Loading needs the policy (the base weights).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cases import Case
from core.progress import Progress
from core.training.common import (
    base_model_copy,
    base_state_dict,
    lora_config,
    make_progress_callback,
    model_device,
    quiet_trainer,
    text_config,
    trainer_args,
)
from core.training.data import PreferencePair, split_pairs
from core.training.reward_config import RewardModelConfig

if TYPE_CHECKING:
    from core.backends.base import TrainablePolicy

CARD = "reward_card.json"
MODEL_INPUTS = ("input_ids", "attention_mask")


def bradley_terry_loss(chosen: Any, rejected: Any, margin: Any | None = None) -> Any:
    """Mean of ``-logsigmoid(chosen - rejected - margin)`` over the batch (tensors)."""
    import torch.nn.functional as F

    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


@dataclass(frozen=True)
class RewardReport:
    """What reward training measured. ``eval_accuracy`` is None when no pairs were held out."""

    kind: str
    train_pairs: int
    eval_pairs: int
    steps: int
    train_loss: float | None
    train_accuracy: float
    eval_accuracy: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RewardModel:
    """A trained reward model bound to a policy (whose ``encode`` makes its inputs)."""

    def __init__(self, kind: str, model: Any, policy: TrainablePolicy, head: Any = None) -> None:
        self.kind, self.model, self.policy, self.head = kind, model, policy, head

    def _forward(self, enc: dict[str, Any]) -> Any:
        if self.kind == "text":
            return self.model(**{k: enc[k] for k in MODEL_INPUTS}).logits.squeeze(-1).float()
        inputs = {k: v for k, v in enc.items() if k != "labels"}
        out = self.model(**inputs, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        mask = enc["attention_mask"]
        # Index of the last real token in each row (works for left and right padding).
        last = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)
        rows = hidden[range(hidden.shape[0]), last]
        return self.head(rows.to(self.head.weight.dtype)).squeeze(-1).float()

    def scores(self, cases: Sequence[Case], completions: Sequence[str], grad: bool = False) -> Any:
        """Scores as a float tensor (with gradients when ``grad``)."""
        import torch

        enc = self.policy.encode(cases, completions)
        if grad:
            return self._forward(enc)
        with torch.no_grad():
            return self._forward(enc)

    def score(
        self, cases: Sequence[Case], completions: Sequence[str], batch_size: int = 16
    ) -> list[float]:
        """The reward of each (case, completion), in order."""
        self.model.eval()
        out: list[float] = []
        for i in range(0, len(cases), batch_size):
            out += self.scores(cases[i : i + batch_size], completions[i : i + batch_size]).tolist()
        return out

    def accuracy(self, pairs: Sequence[PreferencePair], batch_size: int = 16) -> float:
        """Share of pairs whose chosen answer scores above the rejected one."""
        if not pairs:
            raise ValueError("no pairs to measure")
        cases = [p.case for p in pairs]
        chosen = self.score(cases, [p.chosen for p in pairs], batch_size)
        rejected = self.score(cases, [p.rejected for p in pairs], batch_size)
        return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(pairs)

    def save(self, folder: str | Path, report: RewardReport | None = None) -> Path:
        """Write the adapter (and head) as safetensors and the card; returns the folder."""
        from safetensors.torch import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(out / "adapter"), safe_serialization=True)
        if self.head is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(state, str(out / "head.safetensors"))
        card = {"kind": self.kind, "report": report.to_dict() if report else None}
        (out / CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
        return out

    @classmethod
    def load(cls, folder: str | Path, policy: TrainablePolicy) -> RewardModel:
        """Rebuild a saved reward model on ``policy``'s base weights.

        Raises:
            FileNotFoundError: the folder holds no reward model.
        """
        from peft import PeftModel
        from safetensors.torch import load_file

        src = Path(folder)
        if not (src / CARD).exists():
            raise FileNotFoundError(f"{src}: no {CARD}")
        kind = json.loads((src / CARD).read_text(encoding="utf-8"))["kind"]
        if kind == "text":
            base = _sequence_classifier(policy)
            model = PeftModel.from_pretrained(base, str(src / "adapter"))
            return cls(kind, model.eval(), policy)
        backbone = PeftModel.from_pretrained(base_model_copy(policy.model), str(src / "adapter"))
        head = _new_head(policy.model, backbone)
        head.load_state_dict(load_file(str(src / "head.safetensors")))
        return cls(kind, backbone.eval(), policy, head.eval())


def _sequence_classifier(policy: TrainablePolicy) -> Any:
    """The policy's language model as a one-label sequence classifier on its base weights."""
    import copy

    from transformers import AutoModelForSequenceClassification

    cfg = copy.deepcopy(text_config(policy.model))
    cfg.num_labels = 1
    cfg.pad_token_id = policy.tokenizer.pad_token_id
    weights = base_state_dict(policy.model)
    dtype = next(iter(weights.values())).dtype
    model = AutoModelForSequenceClassification.from_config(cfg, dtype=dtype)
    missing, _unexpected = model.load_state_dict(weights, strict=False)
    not_head = [k for k in missing if not k.startswith(("score.", "classifier."))]
    if not_head:
        raise ValueError(f"reward model: base weights do not fit the classifier: {not_head[:5]}")
    return model.to(model_device(policy.model))


def _new_head(policy_model: Any, backbone: Any) -> Any:
    import torch

    hidden = text_config(policy_model).hidden_size
    head = torch.nn.Linear(hidden, 1)
    torch.nn.init.normal_(head.weight, std=1.0 / math.sqrt(hidden + 1))
    torch.nn.init.zeros_(head.bias)
    return head.to(model_device(backbone))


def resolve_kind(policy: TrainablePolicy, pairs: Sequence[PreferencePair], kind: str) -> str:
    """``text`` or ``image``: ``auto`` is ``image`` when the policy's inputs carry pixels."""
    if kind != "auto":
        return kind
    enc = policy.encode([pairs[0].case])
    return "image" if "pixel_values" in enc else "text"


def train_reward_model(
    policy: TrainablePolicy,
    pairs: Sequence[PreferencePair],
    config: RewardModelConfig | None = None,
    progress: Progress | None = None,
    output_dir: str | Path | None = None,
    eval_pairs: Sequence[PreferencePair] | None = None,
) -> tuple[RewardModel, RewardReport]:
    """Train a reward model on ``pairs``; measure pairwise accuracy on held-out cases.

    Args:
        policy: the policy whose encoding (and base weights) the reward model uses.
        pairs: the rated pairs. Unless ``eval_pairs`` is given, ``config.eval_fraction`` of the
            cases is held out.
        output_dir: scratch folder for the trainer (a temporary one when None).

    Raises:
        ValueError: no pairs to train on.
        core.progress.Canceled: ``progress`` was canceled.
    """
    import torch

    cfg = config or RewardModelConfig()
    if eval_pairs is None:
        train, held = split_pairs(pairs, cfg.eval_fraction, cfg.seed)
    else:
        train, held = list(pairs), list(eval_pairs)
    if not train:
        raise ValueError("no preference pairs to train the reward model on")
    torch.manual_seed(cfg.seed)
    kind = resolve_kind(policy, train, cfg.kind)
    t0 = time.perf_counter()
    if kind == "text":
        rm, steps, loss = _train_text(policy, train, cfg, progress, output_dir)
    else:
        rm, steps, loss = _train_image(policy, train, cfg, progress)
    report = RewardReport(
        kind=kind,
        train_pairs=len(train),
        eval_pairs=len(held),
        steps=steps,
        train_loss=loss,
        train_accuracy=rm.accuracy(train),
        eval_accuracy=rm.accuracy(held) if held else None,
        seconds=time.perf_counter() - t0,
    )
    return rm, report


def preference_rows(
    policy: TrainablePolicy, pairs: Sequence[PreferencePair], use_margin: bool, batch: int = 32
) -> list[dict[str, Any]]:
    """Pre-tokenized rows for TRL (``chosen_ids``, ``rejected_ids``, ``margin``), made by the
    policy's own ``encode`` so the reward model reads exactly what the policy reads."""
    rows: list[dict[str, Any]] = []
    for i in range(0, len(pairs), batch):
        chunk = pairs[i : i + batch]
        cases = [p.case for p in chunk]
        ids = []
        for texts in ([p.chosen for p in chunk], [p.rejected for p in chunk]):
            enc = policy.encode(cases, texts)
            ids.append(
                [
                    row[m.bool()].tolist()
                    for row, m in zip(enc["input_ids"], enc["attention_mask"], strict=True)
                ]
            )
        for p, c, r in zip(chunk, ids[0], ids[1], strict=True):
            margin = float(p.margin) if (use_margin and p.margin is not None) else 0.0
            rows.append({"chosen_ids": c, "rejected_ids": r, "margin": margin})
    return rows


def _train_text(
    policy: TrainablePolicy,
    pairs: Sequence[PreferencePair],
    cfg: RewardModelConfig,
    progress: Progress | None,
    output_dir: str | Path | None,
) -> tuple[RewardModel, int, float | None]:
    import tempfile

    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    model = _sequence_classifier(policy)
    dataset = Dataset.from_list(preference_rows(policy, pairs, cfg.use_margin))
    callback = make_progress_callback(progress, "reward")
    with tempfile.TemporaryDirectory(prefix="reward-") as tmp:
        args = RewardConfig(
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            num_train_epochs=cfg.epochs,
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            max_length=cfg.max_length,
            **trainer_args(str(output_dir or tmp), cfg.seed, model_device(policy.model)),
        )
        peft_cfg = lora_config(
            cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules, task_type="SEQ_CLS"
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=policy.tokenizer,
            peft_config=peft_cfg,
            callbacks=[callback],
        )
        quiet_trainer(trainer)
        trainer.train()
    trained = trainer.model
    assert trained is not None
    trained.eval()
    return RewardModel("text", trained, policy), trainer.state.global_step, callback.last_loss


def _train_image(
    policy: TrainablePolicy,
    pairs: Sequence[PreferencePair],
    cfg: RewardModelConfig,
    progress: Progress | None,
) -> tuple[RewardModel, int, float | None]:
    import random

    import torch
    from peft import get_peft_model

    backbone = get_peft_model(
        base_model_copy(policy.model),
        lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules),
    )
    head = _new_head(policy.model, backbone)
    rm = RewardModel("image", backbone, policy, head)
    params = [p for p in backbone.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    order = list(pairs)
    rng = random.Random(cfg.seed)
    per_epoch = math.ceil(len(order) / cfg.batch_size)
    total_batches = math.ceil(cfg.epochs * per_epoch)
    total = math.ceil(total_batches / cfg.gradient_accumulation_steps)
    step, loss_value, batch_index = 0, None, 0
    backbone.train()
    head.train()
    while batch_index < total_batches:
        rng.shuffle(order)
        for i in range(0, len(order), cfg.batch_size):
            if batch_index >= total_batches:
                break
            chunk = order[i : i + cfg.batch_size]
            cases = [p.case for p in chunk]
            # One forward over chosen and rejected together, as TRL's collator does.
            both = rm.scores(
                cases + cases, [p.chosen for p in chunk] + [p.rejected for p in chunk], grad=True
            )
            rc, rr = both[: len(chunk)], both[len(chunk) :]
            margin = None
            if cfg.use_margin:
                margin = torch.tensor([p.margin or 0.0 for p in chunk], device=rc.device)
            loss = bradley_terry_loss(rc, rr, margin) / cfg.gradient_accumulation_steps
            loss.backward()
            batch_index += 1
            if batch_index % cfg.gradient_accumulation_steps and batch_index < total_batches:
                continue
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            loss_value = float(loss.detach()) * cfg.gradient_accumulation_steps
            if progress is not None:
                progress.update("reward", step, total, loss=loss_value)
                progress.check()
    backbone.eval()
    head.eval()
    return rm, step, loss_value
