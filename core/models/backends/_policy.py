"""The base of the model back ends (clip-llm, vlm): ``TrainablePolicy`` over a transformers model.

A subclass says how a batch of cases becomes prompt inputs (``_encode_prompts``); this class does
the rest the same way for both: greedy generation with the verdict-word probe, parsing, encoding
prompt + completion with the prompt masked out of the labels, and the LoRA adapter (peft,
safetensors only).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.cases.records import Case
from core.clinical.verdicts import Verdict, make_verdict, parse_verdict
from core.models.backends._generation import (
    VerdictProbe,
    cut_completions,
    label_confidence,
    left_pad,
    unpad_rows,
    verdict_token_ids,
)
from core.models.backends.base import Backend
from core.runtime.devices import DeviceChoice

DECODINGS = ("greedy", "verdict_branches")
DECODING_HELP = (
    "greedy (the default): the verdict word is chosen on its own, first; verdict_branches: an "
    "answer is written after each verdict word (the rest greedy) and the more probable one as "
    "a whole is kept (more than twice greedy's time)"
)
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class LoraSettings:
    """A LoRA adapter's shape (defaults from the plan: r=16, alpha=32, dropout 0.1, q/v/o)."""

    r: int = field(default=16, metadata={"help": "rank of the update matrices"})
    alpha: int = field(default=32, metadata={"help": "scaling numerator (lora_alpha)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the adapter input"})
    target_modules: Sequence[str] | str | None = field(
        default=None, metadata={"help": "module names or regex; None: the back end's default"}
    )

    def __post_init__(self) -> None:
        if self.r <= 0 or self.alpha <= 0:
            raise ValueError("r and alpha must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


def resolve_image(path: str, image_root: str | None) -> Path:
    """The image file of a case: absolute as given, else relative to ``image_root``."""
    p = Path(path).expanduser()
    if not p.is_absolute() and image_root:
        p = Path(image_root) / p
    return p


def load_pil(path: Path) -> Any:
    """An RGB ``PIL.Image`` of ``path``, decoded by ``core.cases.images`` (PNG, JPEG, TIFF, DICOM with
    its rescale and window applied).

    Raises:
        FileNotFoundError: the file is missing.
        core.cases.images.ImageError: the file is not a readable image (a ``ValueError``).
    """
    from core.cases.images import load_image

    if not path.exists():
        raise FileNotFoundError(f"image not found: {path}")
    return load_image(path).to_pil().convert("RGB")


class TransformersPolicy(Backend):
    """A back end whose verdicts come from a transformers model's greedy generation.

    Subclasses set ``model``, ``tokenizer``, ``choice`` and implement ``_encode_prompts``.
    """

    model: Any
    tokenizer: Any
    choice: DeviceChoice
    max_new_tokens: int = 32
    probe_steps: int = 4
    decoding: str = "greedy"
    image_root: str | None = None
    default_lora_targets: Sequence[str] | str = ("q_proj", "v_proj", "o_proj")

    @property
    def device(self) -> str:
        return self.choice.device

    @property
    def dtype(self) -> str:
        return self.choice.dtype

    def _setup_generation(self) -> None:
        """Tokenizer padding on the left, a pad token, the verdict-word ids; call after loading."""
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self._verdict_ids = verdict_token_ids(tok)
        eos = self.model.generation_config.eos_token_id
        eos_list = list(eos) if isinstance(eos, list | tuple) else [eos]
        if tok.eos_token_id is not None:
            eos_list.append(tok.eos_token_id)
        self._eos_ids = sorted({int(e) for e in eos_list if e is not None})

    # -- prompts ----------------------------------------------------------------------------
    @abstractmethod
    def _encode_prompts(self, cases: Sequence[Case]) -> dict[str, Any]:
        """Left-padded prompt inputs (``input_ids``, ``attention_mask``, extras) on the CPU."""

    def encode(
        self, cases: Sequence[Case], completions: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Model inputs for the prompts of ``cases`` on the model's device, left-padded.

        With ``completions``, each prompt is followed by its completion and the end-of-sequence
        token, and ``labels`` repeats the ids with the prompt and padding set to -100.

        Raises:
            ValueError: ``completions`` and ``cases`` differ in length.
        """
        import torch

        batch = self._encode_prompts(cases)
        if completions is not None:
            if len(completions) != len(cases):
                raise ValueError(f"{len(completions)} completions for {len(cases)} cases")
            prompts = unpad_rows(batch["input_ids"], batch["attention_mask"])
            eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
            tails = [
                list(self.tokenizer.encode(c, add_special_tokens=False)) + eos for c in completions
            ]
            rows = [p + t for p, t in zip(prompts, tails, strict=True)]
            ids, mask = left_pad(rows, int(self.tokenizer.pad_token_id))
            labels = torch.full_like(ids, -100)
            width = ids.shape[1]
            for i, t in enumerate(tails):
                labels[i, width - len(t) :] = torch.as_tensor(t, dtype=torch.long)
            if "token_type_ids" in batch:  # completions are text: type 0, padded like the ids
                tt = unpad_rows(batch["token_type_ids"], batch["attention_mask"])
                batch["token_type_ids"], _ = left_pad(
                    [r + [0] * len(t) for r, t in zip(tt, tails, strict=True)], 0
                )
            batch.update(input_ids=ids, attention_mask=mask, labels=labels)
        return {k: (v.to(self.choice.device) if hasattr(v, "to") else v) for k, v in batch.items()}

    # -- generation -------------------------------------------------------------------------
    def _generate(
        self, cases: Sequence[Case], **gen_kwargs: Any
    ) -> tuple[Any, list[str], list[float | None]]:
        import torch

        inputs = self.encode(cases)
        probe = VerdictProbe(*self._verdict_ids, steps=self.probe_steps)
        kwargs = {**self._greedy_kwargs(self.max_new_tokens), **gen_kwargs}
        with torch.inference_mode(), probe.attached(self.model):
            out = self.model.generate(**inputs, **kwargs)
        completions, texts = self._answers(out, inputs["input_ids"].shape[1])
        return completions, texts, probe.error_probability(completions)

    def _greedy_kwargs(self, max_new_tokens: int) -> dict[str, Any]:
        return dict(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=int(self.tokenizer.pad_token_id),
            eos_token_id=self._eos_ids,
        )

    def _answers(self, out: Any, start: int) -> tuple[Any, list[str]]:
        """The generated ids from column ``start`` on, cut at the first end of sequence, and
        their texts."""
        completions = cut_completions(
            out[:, start:], self._eos_ids, int(self.tokenizer.pad_token_id)
        )
        texts = [
            t.strip() for t in self.tokenizer.batch_decode(completions, skip_special_tokens=True)
        ]
        return completions, texts

    def generate(self, cases: Sequence[Case], **gen_kwargs: Any) -> tuple[Any, list[str]]:
        """Greedy (unless overridden) completions: token ids after the prompt, and their texts."""
        completions, texts, _ = self._generate(cases, **gen_kwargs)
        return completions, texts

    def answer_logprobs(self, cases: Sequence[Case], completions: Sequence[str]) -> list[float]:
        """log P(completion and end of sequence | prompt) per case: the sum over the answer's
        tokens, teacher-forced in one forward pass, as ``encode`` tokenizes them for training
        (the tokenizer's end-of-sequence token closes every answer, one cut at
        ``max_new_tokens`` included). Only the answer's positions get logits (left padding puts
        every answer at the right edge), so a large vocabulary costs no full-sequence copy.

        Raises:
            ValueError: ``completions`` and ``cases`` differ in length.
        """
        import torch

        batch = self.encode(cases, completions)
        labels = batch.pop("labels")
        answer = int((labels != -100).sum(dim=1).max())
        with torch.inference_mode():
            logits = self.model(**batch, logits_to_keep=answer + 1).logits[:, :-1, :]
        target = labels[:, -answer:]
        mask = target != -100
        logp = torch.log_softmax(logits.float(), dim=-1)
        picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return [float(v) for v in (picked * mask).sum(dim=1)]

    def _branch_answers(self, cases: Sequence[Case]) -> tuple[list[str], list[float | None]]:
        """``decoding="verdict_branches"``: the best ERROR answer and the best CORRECT answer
        (each verdict word forced, the rest greedy), and of the two the one the model finds
        more probable as a whole. The verdict word is written first, before the reason; greedy
        decoding commits to it on the first token alone, so an answer such as ``CORRECT - X is
        not an accepted treatment for Y`` can win although the model gives ``ERROR - X is not
        an accepted treatment for Y`` a higher probability. Returns the texts and P(ERROR)
        renormalised over the two answers' probabilities (the verdict's confidence).

        Two things it does differently from greedy: every answer starts with a verdict word, so
        a model that would have written something unparseable is not seen doing so; and a sum
        of log probabilities favours the shorter answer, which for the demo's wording is the
        CORRECT one (``X fits Y`` against ``X is not an accepted treatment for Y``)."""
        import math

        import torch

        inputs = self.encode(cases)
        branches: list[list[str]] = []
        for word in ("ERROR", "CORRECT"):
            head = list(self.tokenizer.encode(word, add_special_tokens=False))
            # as long as a greedy answer, the word included
            kwargs = self._greedy_kwargs(max(1, self.max_new_tokens - len(head)))
            n = int(inputs["input_ids"].shape[0])
            forced = torch.as_tensor([head] * n, dtype=torch.long, device=self.choice.device)
            batch = dict(inputs)
            batch["input_ids"] = torch.cat([inputs["input_ids"], forced], dim=1)
            batch["attention_mask"] = torch.cat(
                [inputs["attention_mask"], torch.ones_like(forced)], dim=1
            )
            if "token_type_ids" in batch:
                batch["token_type_ids"] = torch.cat(
                    [inputs["token_type_ids"], torch.zeros_like(forced)], dim=1
                )
            with torch.inference_mode():
                out = self.model.generate(**batch, **kwargs)
            branches.append(self._answers(out, inputs["input_ids"].shape[1])[1])
        err, cor = (self.answer_logprobs(cases, texts) for texts in branches)
        texts: list[str] = []
        p_error: list[float | None] = []
        for e_text, c_text, le, lc in zip(*branches, err, cor, strict=True):
            pe = 1.0 / (1.0 + math.exp(min(700.0, lc - le)))
            texts.append(e_text if le >= lc else c_text)
            p_error.append(pe)
        return texts, p_error

    def _predict_batch(self, cases: Sequence[Case]) -> list[Verdict]:
        t0 = time.perf_counter()
        if self.decoding == "verdict_branches":
            texts, p_error = self._branch_answers(cases)
        else:
            _, texts, p_error = self._generate(cases)
        per_case = (time.perf_counter() - t0) * 1000.0 / max(1, len(cases))
        out = []
        for text, pe in zip(texts, p_error, strict=True):
            label, _ = parse_verdict(text)
            out.append(make_verdict(text, label_confidence(pe, label.value), per_case))
        return out

    # -- LoRA adapter -----------------------------------------------------------------------
    def add_adapter(self, settings: LoraSettings | None = None) -> None:
        """Wrap ``model`` in a fresh LoRA adapter (peft) for training."""
        from peft import LoraConfig, get_peft_model

        s = settings or LoraSettings()
        targets = s.target_modules if s.target_modules is not None else self.default_lora_targets
        cfg = LoraConfig(
            r=s.r,
            lora_alpha=s.alpha,
            lora_dropout=s.dropout,
            target_modules=targets if isinstance(targets, str) else list(targets),
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(self.model, cfg)

    def save_adapter(self, folder: str) -> None:
        """Write the policy's LoRA adapter (peft's ``"default"``) to ``folder`` as safetensors.
        Other adapters on the same weights (a reward model's, during RLHF) are not written.

        Raises:
            ValueError: the model carries no adapter of its own.
        """
        from peft import PeftModel

        if not isinstance(self.model, PeftModel) or "default" not in self.model.peft_config:
            raise ValueError(f"{self.name}: the model carries no LoRA adapter to save")
        self.model.save_pretrained(folder, selected_adapters=["default"], safe_serialization=True)

    def load_adapter(self, folder: str) -> None:
        """Load a LoRA adapter from ``folder`` (replacing any adapter the model carries).

        Raises:
            FileNotFoundError: the folder lacks adapter_config.json or the safetensors weights
                (a pickled ``adapter_model.bin`` is refused).
        """
        from peft import PeftModel

        p = Path(folder)
        for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
            if not (p / name).is_file():
                raise FileNotFoundError(
                    f"adapter folder {p} lacks {name} (only safetensors are loaded)"
                )
        base = self.model.unload() if isinstance(self.model, PeftModel) else self.model
        self.model = PeftModel.from_pretrained(base, str(p), is_trainable=False)
        self.model.to(self.choice.device)
        self.model.eval()
