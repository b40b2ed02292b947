"""The ``vlm`` back end: a native image-text-to-text model that sees the image itself.

Default ``google/medgemma-4b-it`` (Gemma 3: ``Gemma3ForConditionalGeneration`` and its
``AutoProcessor``). The prompt is the conversation docs/architecture.md's feedback file uses: one user turn
with an image part and the case text (``core.clinical.prompts.build_prompt``), rendered by the processor's
chat template; the processor resizes and normalises the image and expands the image placeholder.
The model may carry a LoRA adapter on its language model (the vision tower stays frozen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.cases.records import Case
from core.clinical.prompts import build_prompt
from core.models.backends._policy import (
    DECODING_HELP,
    DECODINGS,
    TransformersPolicy,
    load_pil,
    resolve_image,
)
from core.models.hub import offline, resolve_model
from core.runtime.devices import configure_threads, select_device

DEFAULT_VLM = "google/medgemma-4b-it"


@dataclass
class VLMConfig:
    """What a vlm back end loads and how it answers."""

    model: str = field(
        default=DEFAULT_VLM, metadata={"help": "image-text-to-text hub id or folder"}
    )
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder, or None"})
    device: str = field(default="auto", metadata={"help": "auto | cuda | mps | cpu"})
    dtype: str | None = field(default=None, metadata={"help": "override the device's dtype"})
    max_new_tokens: int = field(default=32, metadata={"help": "longest verdict, in tokens"})
    decoding: str = field(default="greedy", metadata={"help": DECODING_HELP})
    image_root: str | None = field(
        default=None, metadata={"help": "folder relative image paths start from"}
    )

    def __post_init__(self) -> None:
        if self.max_new_tokens <= 0:
            raise ValueError("max_new_tokens must be positive")
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}")


def messages_for(case: Case) -> list[dict[str, Any]]:
    """The user turn for ``case``: the image, then the case text and instruction."""
    return [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": build_prompt(case)}],
        }
    ]


class VLMBackend(TransformersPolicy):
    """Image-text-to-text verdicts. Implements ``TrainablePolicy``."""

    name = "vlm"
    # The language model's attention only; SigLIP's q/v projections are left alone.
    default_lora_targets = r".*language_model.*\.(q_proj|v_proj|o_proj)"

    def __init__(self, config: VLMConfig | None = None) -> None:
        """Load the model and its processor (and the adapter) on the chosen device.

        Raises:
            core.models.hub.ModelNotAvailable: the model is neither a folder nor in the cache.
            core.runtime.devices.DeviceUnavailable: the device asked for is not here.
        """
        offline()
        self.config = cfg = config or VLMConfig()
        path = resolve_model(cfg.model, ("config.json",))  # before the heavy imports: fail fast
        import transformers
        from transformers import AutoModelForImageTextToText, AutoProcessor

        transformers.utils.logging.disable_progress_bar()
        self.choice = select_device(cfg.device, cfg.dtype)
        configure_threads()
        self.processor = AutoProcessor.from_pretrained(path)
        self.tokenizer = self.processor.tokenizer
        # use_safetensors: a folder with only pickled weights is refused, never torch.load-ed.
        model: Any = AutoModelForImageTextToText.from_pretrained(
            path, dtype=self.choice.torch_dtype, use_safetensors=True
        )
        self.model = model.to(self.choice.device).eval()
        self.max_new_tokens = cfg.max_new_tokens
        self.decoding = cfg.decoding
        self.image_root = cfg.image_root
        self._setup_generation()
        if cfg.adapter:
            self.load_adapter(cfg.adapter)

    def prompt_texts(self, cases: Sequence[Case]) -> list[str]:
        """Each case's conversation rendered by the processor's chat template."""
        return [
            self.processor.apply_chat_template(
                messages_for(c), add_generation_prompt=True, tokenize=False
            )
            for c in cases
        ]

    def _encode_prompts(self, cases: Sequence[Case]) -> dict[str, Any]:
        images = [[load_pil(resolve_image(c.image, self.image_root))] for c in cases]
        batch = self.processor(
            text=self.prompt_texts(cases),
            images=images,
            padding=True,
            return_tensors="pt",
        )
        out = dict(batch)
        if "pixel_values" in out:
            out["pixel_values"] = out["pixel_values"].to(self.choice.torch_dtype)
        return out
