"""``CausalLMPolicy``: the ``TrainablePolicy`` seam over a plain causal LM and its tokenizer.

The back ends (clip-llm, vlm) implement ``TrainablePolicy`` themselves; this small adapter lets the
trainers run on any text causal LM too (a GPU box training the language model alone, the tests and
the benchmarks). The prompt is ``core.clinical.prompts.build_prompt`` (with an optional image description
function, which is what clip-llm adds), through the tokenizer's chat template when it has one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.cases.records import Case
from core.clinical.prompts import build_prompt


class CausalLMPolicy:
    """A causal LM as a trainable policy.

    Args:
        model: a transformers causal LM (or a peft model around one).
        tokenizer: its tokenizer; padding is set to the left (generation needs it).
        describe: optional ``cases -> descriptions`` of the images, put in the prompt.
        max_length: longest prompt in tokens (longer prompts are cut from the left).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        describe: Callable[[Sequence[Case]], list[str]] | None = None,
        max_length: int = 512,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.describe = describe
        self.max_length = max_length
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    def prompt_texts(self, cases: Sequence[Case]) -> list[str]:
        """The prompts as the model sees them (chat template applied when there is one)."""
        descs = self.describe(cases) if self.describe else [None] * len(cases)
        out = []
        for case, desc in zip(cases, descs, strict=True):
            text = build_prompt(case, desc)
            if getattr(self.tokenizer, "chat_template", None):
                text = self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
                )
            out.append(text)
        return out

    def encode(
        self, cases: Sequence[Case], completions: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Left-padded ``input_ids``/``attention_mask``; with completions also ``labels`` (-100 on
        the prompt and the padding), each completion followed by the end-of-sequence token."""
        import torch

        tok = self.tokenizer
        prompts = [
            tok(t, add_special_tokens=False)["input_ids"][-self.max_length :]
            for t in self.prompt_texts(cases)
        ]
        if completions is None:
            seqs, labels = prompts, [[-100] * len(p) for p in prompts]
        else:
            seqs, labels = [], []
            for p, c in zip(prompts, completions, strict=True):
                ids = tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                seqs.append(p + ids)
                labels.append([-100] * len(p) + ids)
        width = max(len(s) for s in seqs)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
        out: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if completions is not None:
            out["labels"] = torch.tensor([[-100] * (width - len(lab)) + lab for lab in labels])
        device = _device_of(self.model)
        return {k: v.to(device) for k, v in out.items()}

    def generate(self, cases: Sequence[Case], **gen_kwargs: Any) -> tuple[Any, list[str]]:
        """Completion ids (right-padded with the pad token) and their texts."""
        import torch

        enc = self.encode(cases)
        kwargs: dict[str, Any] = {
            "max_new_tokens": 32,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        kwargs.update(gen_kwargs)
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        ids = out[:, enc["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return ids, [t.strip() for t in texts]

    def save_adapter(self, folder: str) -> None:
        """Save the LoRA adapter (safetensors).

        Raises:
            ValueError: the model carries no adapter.
        """
        if "default" not in getattr(self.model, "peft_config", {}):
            raise ValueError("the policy has no LoRA adapter to save")
        # Only the policy's own adapter: a reward model's on the same weights is saved with it.
        self.model.save_pretrained(folder, selected_adapters=["default"], safe_serialization=True)

    def load_adapter(self, folder: str) -> None:
        """Attach the adapter saved in ``folder`` (trainable)."""
        from peft import PeftModel

        if not (Path(folder) / "adapter_config.json").exists():
            raise FileNotFoundError(f"{folder}: no adapter_config.json")
        self.model = PeftModel.from_pretrained(self.model, folder, is_trainable=True)


def _device_of(model: Any) -> Any:
    return next(model.parameters()).device
