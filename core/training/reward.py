"""The reward model: a scalar score for (case, answer), trained on the clinicians' A/B ratings.

Loss (Bradley-Terry, as TRL's RewardTrainer): ``-logsigmoid(r_chosen - r_rejected - margin)``,
with the pair's margin where the clinician gave one.

The reward model lives on the policy's own backbone (one copy of the weights for the policy, the
PPO reference and the reward model; ``core.training.adapters``): its own LoRA adapter
(``"reward"``) and a scalar head (a linear layer on the final hidden state of the last real
token), switched in only while it scores. It reads exactly what the policy reads
(``policy.encode``): for clip-llm the prompt with the image description, for a vlm the
``pixel_values`` too. ``kind`` says which (``image`` when the inputs carry pixels, else ``text``);
both train in the same loop. TRL's RewardTrainer is not used because it needs a separate
sequence-classification model, i.e. a second backbone.

The head is a plain module held beside the model, not peft's ``modules_to_save``: peft lets a
``modules_to_save`` module have one active adapter only, and the policy runs two at once (its
frozen adapter and PPO's).

Saved under a version's ``reward_model/``: ``reward_card.json``, ``adapter/`` (the LoRA adapter,
safetensors, loadable with peft on the base weights alone) and ``head.safetensors``. Loading
attaches the adapter to the policy's backbone.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cases.records import Case
from core.runtime.progress import Progress
from core.training import adapters
from core.training.common import model_device, text_config
from core.training.data import PreferencePair, split_pairs
from core.training.reward_config import RewardModelConfig

if TYPE_CHECKING:
    from core.models.backends.base import TrainablePolicy

CARD = "reward_card.json"
FORMAT = 2  # 1: a separate sequence classifier or backbone copy (before one backbone)


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
    """A reward model on its policy's backbone: the adapter ``adapter`` and the scalar ``head``.

    It holds no weights of its own beyond those two: ``model`` is the policy's model, and every
    call switches the adapter in for its duration only (``adapters.using``).
    """

    def __init__(
        self, kind: str, policy: TrainablePolicy, head: Any, adapter: str = adapters.REWARD_ADAPTER
    ) -> None:
        self.kind, self.policy, self.head, self.adapter = kind, policy, head, adapter

    @property
    def model(self) -> Any:
        """The shared backbone (the policy's model)."""
        return self.policy.model

    def _forward(self, enc: dict[str, Any]) -> Any:
        """Scores of encoded sequences under the current adapter set (the caller switches)."""
        import torch

        inputs = {k: v for k, v in enc.items() if k != "labels"}
        mask = enc["attention_mask"]
        if "image_grid_thw" not in inputs:  # left padding: positions count real tokens only
            inputs.setdefault("position_ids", (mask.long().cumsum(-1) - 1).clamp(min=0))
        hidden = final_hidden_state(self.model, inputs)
        # Index of the last real token in each row (works for left and right padding).
        last = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)
        rows = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return self.head(rows.to(self.head.weight.dtype)).squeeze(-1).float()

    def scores(self, cases: Sequence[Case], completions: Sequence[str], grad: bool = False) -> Any:
        """Scores as a float tensor (with gradients for the adapter and head when ``grad``)."""
        import torch

        enc = self.policy.encode(cases, completions)
        with adapters.using(self.model, [self.adapter], trainable=[self.adapter] if grad else []):
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
        """Write the adapter (peft's format: ``adapter/adapter_config.json`` and
        ``adapter/adapter_model.safetensors``), the head as safetensors and the card; returns
        the folder."""
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        out = Path(folder)
        (out / "adapter").mkdir(parents=True, exist_ok=True)
        state = get_peft_model_state_dict(self.model, adapter_name=self.adapter)
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        save_file(tensors, str(out / "adapter" / "adapter_model.safetensors"))
        self.model.peft_config[self.adapter].save_pretrained(str(out / "adapter"))
        head = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(out / "head.safetensors"))
        card = {"kind": self.kind, "format": FORMAT, "report": report.to_dict() if report else None}
        (out / CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
        return out

    @classmethod
    def load(cls, folder: str | Path, policy: TrainablePolicy) -> RewardModel:
        """Attach a saved reward model to ``policy``'s backbone (the policy's active adapters are
        left as they were).

        Raises:
            FileNotFoundError: the folder holds no reward model.
            ValueError: it was saved in the old format (a separate sequence classifier).
        """
        from safetensors.torch import load_file

        src = Path(folder)
        if not (src / CARD).exists():
            raise FileNotFoundError(f"{src}: no {CARD}")
        card = json.loads((src / CARD).read_text(encoding="utf-8"))
        if not (src / "head.safetensors").is_file():
            raise ValueError(
                f"{src}: this reward model was saved as a separate sequence classifier by an "
                "earlier version; train the reward stage again to use it on one backbone"
            )
        name = adapters.free_name(policy.model, adapters.REWARD_ADAPTER)
        adapters.load(policy, name, src / "adapter")
        head = _new_head(policy)
        head.load_state_dict(load_file(str(src / "head.safetensors")))
        return cls(str(card["kind"]), policy, head.eval(), name)

    def release(self) -> None:
        """Remove the adapter from the backbone (the policy is left as it was before the reward
        model came); the reward model cannot score after this."""
        adapters.delete(self.policy, self.adapter)


def final_hidden_state(model: Any, inputs: dict[str, Any]) -> Any:
    """The final (normalised) hidden states ``(batch, tokens, hidden)`` of ``model``'s decoder,
    without its language-model head (a 262k-word head over every token would cost more memory
    than the rest of the pass)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(inner, getattr(inner, "base_model_prefix", ""), None)
    if decoder is None or decoder is inner:
        return model(**inputs, output_hidden_states=True, use_cache=False).hidden_states[-1]
    return decoder(**inputs, use_cache=False).last_hidden_state


def _new_head(policy: TrainablePolicy) -> Any:
    """A fresh scalar head (float32) on the policy's device."""
    import torch

    hidden = text_config(policy.model).hidden_size
    head = torch.nn.Linear(hidden, 1)
    torch.nn.init.normal_(head.weight, std=1.0 / math.sqrt(hidden + 1))
    torch.nn.init.zeros_(head.bias)
    return head.to(model_device(policy.model))


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
        output_dir: not used (the reward model trains in its own loop; kept for callers).

    Raises:
        ValueError: no pairs to train on.
        core.runtime.progress.Canceled: ``progress`` was canceled.
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
    rm, steps, loss = _train_adapter(policy, train, cfg, progress, kind)
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


def _train_adapter(
    policy: TrainablePolicy,
    pairs: Sequence[PreferencePair],
    cfg: RewardModelConfig,
    progress: Progress | None,
    kind: str,
) -> tuple[RewardModel, int, float | None]:
    """Add a fresh reward adapter and head to the policy's backbone and train them (only them)
    with the Bradley-Terry loss; chosen and rejected go through one forward, as TRL's collator
    does. The backbone's train/eval mode and active adapters are restored afterwards."""
    import random

    import torch

    name = adapters.free_name(policy.model, adapters.REWARD_ADAPTER)
    targets = adapters.language_model_targets(policy.model, cfg.target_modules)
    adapters.attach(
        policy, name, adapters.lora(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, targets)
    )
    head = _new_head(policy)
    rm = RewardModel(kind, policy, head, name)
    model = policy.model
    marker = f".{name}."
    lora = [p for n, p in model.named_parameters() if "lora_" in n and marker in n]
    params = lora + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    order = list(pairs)
    rng = random.Random(cfg.seed)
    per_epoch = math.ceil(len(order) / cfg.batch_size)
    total_batches = math.ceil(cfg.epochs * per_epoch)
    total = math.ceil(total_batches / cfg.gradient_accumulation_steps)
    step, loss_value, batch_index = 0, None, 0
    was_training = model.training
    model.train()
    head.train()
    try:
        with adapters.using(model, [name], trainable=[name]):
            while batch_index < total_batches:
                rng.shuffle(order)
                for i in range(0, len(order), cfg.batch_size):
                    if batch_index >= total_batches:
                        break
                    chunk = order[i : i + cfg.batch_size]
                    cases = [p.case for p in chunk]
                    texts = [p.chosen for p in chunk] + [p.rejected for p in chunk]
                    both = rm._forward(policy.encode(cases + cases, texts))
                    rc, rr = both[: len(chunk)], both[len(chunk) :]
                    margin = None
                    if cfg.use_margin:
                        margin = torch.tensor([p.margin or 0.0 for p in chunk], device=rc.device)
                    loss = bradley_terry_loss(rc, rr, margin) / cfg.gradient_accumulation_steps
                    loss.backward()
                    batch_index += 1
                    if (
                        batch_index % cfg.gradient_accumulation_steps
                        and batch_index < total_batches
                    ):
                        continue
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    step += 1
                    loss_value = float(loss.detach()) * cfg.gradient_accumulation_steps
                    if progress is not None:
                        progress.update("reward", step, total, loss=loss_value)
                        progress.check()
    except BaseException:
        adapters.delete(policy, name)  # a canceled or failed run leaves the policy as it was
        raise
    finally:
        model.train(was_training)
        head.eval()
    return rm, step, loss_value
