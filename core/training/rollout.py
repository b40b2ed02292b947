"""A PPO rollout batch as a typed object: the prompts, the sampled answers, and the tensors every
later forward pass needs, made once.

``make_rollout`` samples answers through the policy's own ``generate`` (so the prompt is exactly
the one asked at prediction time), cuts each answer after its first end-of-sequence token, and
joins prompt and answer ids. For a multimodal model whose image side carries no adapter
(``adapters`` keeps LoRA off it), the image features are computed once here and passed to every
later pass as ``mm_encoder_outputs`` instead of ``pixel_values``: the policy, the reference and
each PPO epoch would otherwise run the vision tower again on the same pixels, for the same result.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.cases.records import Case

_TEXT_KEYS = ("input_ids", "attention_mask", "labels")


@dataclass
class Rollout:
    """One batch of sampled answers (``n`` rows).

    Attributes:
        cases, texts: the prompts' cases and the decoded answers.
        prompt_len: width of the (left-padded) prompt part of ``full_ids``.
        answer_ids: ``(n, A)`` sampled tokens, padded after each answer's end.
        answer_mask: ``(n, A)`` float, 1 on the answer's tokens (its end token included).
        full_ids, full_mask: ``(n, prompt_len + A)`` prompt and answer, and their mask.
        extras: other per-row model inputs (``pixel_values``, ``token_type_ids``...).
        image_features: the projected image features ``(n, tokens, hidden)`` when computed once
            (then ``extras`` holds no ``pixel_values``).
    """

    cases: list[Case]
    texts: list[str]
    prompt_len: int
    answer_ids: Any
    answer_mask: Any
    full_ids: Any
    full_mask: Any
    extras: dict[str, Any] = field(default_factory=dict)
    image_features: Any = None
    position_ids: bool = True

    def __len__(self) -> int:
        return len(self.cases)

    @property
    def answer_len(self) -> int:
        return int(self.answer_ids.shape[1])

    def rows(self, idx: Any) -> Rollout:
        """The rows ``idx`` (a 1-D index tensor) as a smaller rollout."""
        n = len(self)
        picked = [int(i) for i in idx.tolist()]
        return replace(
            self,
            cases=[self.cases[i] for i in picked],
            texts=[self.texts[i] for i in picked],
            answer_ids=self.answer_ids[idx],
            answer_mask=self.answer_mask[idx],
            full_ids=self.full_ids[idx],
            full_mask=self.full_mask[idx],
            extras={k: _row_slice(v, idx, n) for k, v in self.extras.items()},
            image_features=None if self.image_features is None else self.image_features[idx],
        )

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments of a forward pass over prompt + answer."""
        inputs: dict[str, Any] = {
            "input_ids": self.full_ids,
            "attention_mask": self.full_mask,
            **self.extras,
        }
        if self.position_ids:  # left padding: positions count real tokens only, as generate does
            inputs["position_ids"] = (self.full_mask.long().cumsum(-1) - 1).clamp(min=0)
        if self.image_features is not None:
            from transformers.modeling_outputs import BaseModelOutputWithPooling

            inputs["mm_encoder_outputs"] = {
                "image": BaseModelOutputWithPooling(pooler_output=self.image_features)
            }
        return inputs


def _row_slice(value: Any, idx: Any, n: int) -> Any:
    return value[idx] if hasattr(value, "shape") and value.shape[:1] == (n,) else value


def make_rollout(
    policy: Any,
    cases: Sequence[Case],
    gen_kwargs: dict[str, Any],
    eos_ids: Sequence[int],
    image_ids: Sequence[int],
    cache_images: bool,
) -> Rollout:
    """Sample one answer per case with ``policy.generate(cases, **gen_kwargs)`` and build the
    rollout. Answers end at the first of ``eos_ids``; a generated image placeholder
    (``image_ids``) ends the answer too (a vlm would read it back as an image slot)."""
    import torch

    tok = policy.tokenizer
    enc = policy.encode(cases)
    ids, texts = policy.generate(cases, **gen_kwargs)
    device = enc["input_ids"].device
    if not torch.is_tensor(ids):
        width = max(len(x) for x in ids)
        ids = torch.tensor([list(x) + [tok.pad_token_id] * (width - len(x)) for x in ids])
    ids = ids.to(device)
    if ids.shape[1] == 0:
        ids = torch.full((len(cases), 1), eos_ids[0], device=device)
    ids = ids.clone()  # a tensor made under inference_mode cannot be saved for backward
    for special in image_ids:
        ids[ids == special] = eos_ids[0]
    is_eos = torch.zeros_like(ids, dtype=torch.bool)
    for eos in eos_ids:
        is_eos |= ids == eos
    first = torch.where(is_eos.any(-1), is_eos.int().argmax(-1), ids.shape[1] - 1)
    answer_mask = (torch.arange(ids.shape[1], device=device)[None, :] <= first[:, None]).long()
    extras = {k: v for k, v in enc.items() if k not in _TEXT_KEYS}
    for key, value in extras.items():  # per-token inputs (token_type_ids): answer tokens are 0
        if torch.is_tensor(value) and value.shape == enc["input_ids"].shape:
            extras[key] = torch.cat([value, torch.zeros_like(ids)], dim=1)
    features = None
    if cache_images and "pixel_values" in extras:
        features = image_features(policy.model, extras["pixel_values"])
        if features is not None:
            extras.pop("pixel_values")
    return Rollout(
        cases=list(cases),
        texts=list(texts),
        prompt_len=int(enc["input_ids"].shape[1]),
        answer_ids=ids,
        answer_mask=answer_mask.float(),
        full_ids=torch.cat([enc["input_ids"], ids], dim=1),
        full_mask=torch.cat([enc["attention_mask"], answer_mask], dim=1),
        extras=extras,
        image_features=features,
        position_ids="image_grid_thw" not in extras,  # Qwen-style 3-D rope makes its own
    )


def image_features(model: Any, pixel_values: Any) -> Any:
    """The projected image features of ``pixel_values`` (one image per row), computed without
    gradients, or None when the model cannot take them back as ``mm_encoder_outputs``."""
    import torch

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    core = getattr(inner, getattr(inner, "base_model_prefix", "model"), None)
    if core is None or not hasattr(core, "get_image_features"):
        return None
    if "mm_encoder_outputs" not in inspect.signature(inner.forward).parameters:
        return None
    with torch.no_grad():
        out = core.get_image_features(pixel_values, return_dict=True)
    features = getattr(out, "pooler_output", None)
    if features is None or features.shape[0] != pixel_values.shape[0]:
        return None  # not one image per row: leave the pixels to the model
    return features.detach()
