"""The ``clip-llm`` back end (the plan's Phase 1): an open_clip image encoder and a causal LM.

The image encoder scores each image against its modality's findings (zero-shot, see
``core.models.clip_scorer``); the best scores become a one-line description placed in the prompt
(``core.clinical.prompts.build_prompt``) of any ``AutoModelForCausalLM``, rendered through the tokenizer's
chat template when it has one; the LM writes the verdict by greedy generation. With a
``stated_threshold`` (the demo's demo-v2 has one, chosen on val) the description ends with the
encoder's call on the case's stated finding, ``seen`` or ``not seen``: the language model never
sees the val split, so it cannot learn where a probability stops meaning "shown". The LM may
carry a LoRA adapter; SFT, the reward model and PPO train the LM only, and the image encoder
changes only through the opt-in encoder stage (``core.training.encoder``), which gives the new
version an encoder of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.cases.records import Case
from core.clinical.knowledge import KnowledgeTable, default_knowledge
from core.clinical.prompts import build_prompt
from core.models.backends._policy import (
    DECODING_HELP,
    DECODINGS,
    TransformersPolicy,
    load_pil,
    resolve_image,
)
from core.models.clip_scorer import DEFAULT_CLIP, ClipScorer, describe_scores, open_clip_name
from core.models.hub import offline, resolve_model
from core.runtime.devices import configure_threads, select_device

DEFAULT_LM = "google/gemma-3-1b-it"


@dataclass
class ClipLLMConfig:
    """What a clip-llm back end loads and how it answers."""

    clip_model: str = field(default=DEFAULT_CLIP, metadata={"help": "open_clip hub id or folder"})
    lm_model: str = field(default=DEFAULT_LM, metadata={"help": "causal LM hub id or folder"})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder, or None"})
    device: str = field(default="auto", metadata={"help": "auto | cuda | mps | cpu"})
    dtype: str | None = field(default=None, metadata={"help": "override the device's dtype"})
    max_new_tokens: int = field(default=32, metadata={"help": "longest verdict, in tokens"})
    decoding: str = field(default="greedy", metadata={"help": DECODING_HELP})
    top_k: int = field(default=2, metadata={"help": "findings named in the image description"})
    stated_threshold: float | None = field(
        default=None,
        metadata={
            "help": "add the encoder's call on the stated finding to the description: seen when "
            "its probability reaches this (chosen on val; None: no call)"
        },
    )
    describe_image: bool = field(
        default=True,
        metadata={"help": "put the image description in the prompt (False: text only)"},
    )
    image_root: str | None = field(
        default=None, metadata={"help": "folder relative image paths start from"}
    )

    def __post_init__(self) -> None:
        if self.max_new_tokens <= 0:
            raise ValueError("max_new_tokens must be positive")
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}")
        if self.top_k <= 0:
            raise ValueError("top_k must be positive")
        if self.stated_threshold is not None and not 0.0 < self.stated_threshold < 1.0:
            raise ValueError("stated_threshold must be in (0, 1)")


class ClipLLMBackend(TransformersPolicy):
    """open_clip image description + causal LM verdict. Implements ``TrainablePolicy``."""

    name = "clip-llm"

    def __init__(
        self, config: ClipLLMConfig | None = None, knowledge: KnowledgeTable | None = None
    ) -> None:
        """Load both models (and the adapter) on the chosen device.

        Raises:
            core.models.hub.ModelNotAvailable: a model is neither a folder nor in the cache.
            core.runtime.devices.DeviceUnavailable: the device asked for is not here.
        """
        offline()
        self.config = cfg = config or ClipLLMConfig()
        # Resolve both models before importing torch/transformers, so a missing one fails at once.
        lm_path = resolve_model(cfg.lm_model)
        if cfg.describe_image:
            open_clip_name(cfg.clip_model)
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()
        self.choice = select_device(cfg.device, cfg.dtype)
        configure_threads()
        self.scorer = (
            ClipScorer(cfg.clip_model, self.choice, knowledge) if cfg.describe_image else None
        )
        self.tokenizer = AutoTokenizer.from_pretrained(lm_path)
        # use_safetensors: a folder with only pickled weights is refused, never torch.load-ed.
        model: Any = AutoModelForCausalLM.from_pretrained(
            lm_path, dtype=self.choice.torch_dtype, use_safetensors=True
        )
        self.model = model.to(self.choice.device).eval()
        self.max_new_tokens = cfg.max_new_tokens
        self.decoding = cfg.decoding
        self.image_root = cfg.image_root
        self.knowledge = knowledge or default_knowledge()
        self._scores: dict[tuple[str, str], list[tuple[str, float]]] = {}
        self._setup_generation()
        if cfg.adapter:
            self.load_adapter(cfg.adapter)

    # -- the image description ---------------------------------------------------------------
    def image_scores(self, cases: Sequence[Case]) -> list[list[tuple[str, float]]]:
        """Each case's image scored against its modality's findings, best first (cached per
        image and modality). Raises ValueError without an image encoder."""
        if self.scorer is None:
            raise ValueError("this clip-llm version does not look at the image")
        keys = [(str(resolve_image(c.image, self.image_root)), c.modality) for c in cases]
        todo = sorted({k for k in keys if k not in self._scores})
        if todo:
            images = [load_pil(resolve_image(path, None)) for path, _ in todo]
            scores = self.scorer.score(images, [m for _, m in todo])
            for key, s in zip(todo, scores, strict=True):
                self._scores[key] = s
        return [self._scores[k] for k in keys]

    def clear_image_cache(self) -> None:
        """Forget the images' scores (after the image encoder's weights changed)."""
        self._scores.clear()

    def describe_case(self, case: Case, scores: Sequence[tuple[str, float]]) -> str:
        """The description of ``case``'s image from its ``scores`` (with the call on its stated
        finding when the version has a ``stated_threshold``)."""
        stated = self.knowledge.finding(case.modality, case.finding)
        return describe_scores(
            scores,
            self.config.top_k,
            stated.name if stated is not None else None,
            self.config.stated_threshold,
        )

    def describe(self, cases: Sequence[Case]) -> list[str | None]:
        """The image description of each case (its image's scores are cached)."""
        if self.scorer is None:
            return [None] * len(cases)
        return [
            self.describe_case(c, s) for c, s in zip(cases, self.image_scores(cases), strict=True)
        ]

    def prompt_texts(self, cases: Sequence[Case]) -> list[str]:
        """The full prompt text of each case, chat template applied when the tokenizer has one."""
        out = []
        for case, desc in zip(cases, self.describe(cases), strict=True):
            user = build_prompt(case, desc)
            if getattr(self.tokenizer, "chat_template", None):
                out.append(
                    self.tokenizer.apply_chat_template(
                        [{"role": "user", "content": user}],
                        add_generation_prompt=True,
                        tokenize=False,
                    )
                )
            else:
                out.append(user + "\n")
        return out

    def _encode_prompts(self, cases: Sequence[Case]) -> dict[str, Any]:
        templated = bool(getattr(self.tokenizer, "chat_template", None))
        batch = self.tokenizer(
            self.prompt_texts(cases),
            add_special_tokens=not templated,  # the template writes its own BOS
            padding=True,
            return_tensors="pt",
        )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
