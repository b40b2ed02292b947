"""The demo language models: a tiny Llama causal LM (clip-llm) and a tiny Gemma 3 (vlm).

Same classes as the real models (``AutoModelForCausalLM``; ``Gemma3ForConditionalGeneration``
with a SigLIP vision tower, ``Gemma3Processor``), from small configs, random weights, the demo
tokenizer, all made locally. Saved with ``save_pretrained(safe_serialization=True)`` beside their
tokenizer or processor, so the back ends load them exactly as they load real weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.demo.tokenizer import CHAT_TEMPLATE, build_demo_tokenizer


@dataclass
class DemoLMConfig:
    """Size of the tiny language models (both the Llama and Gemma 3's text part)."""

    hidden_size: int = field(default=64, metadata={"help": "model width"})
    layers: int = field(default=2, metadata={"help": "decoder layers"})
    heads: int = field(default=4, metadata={"help": "attention heads"})
    kv_heads: int = field(default=2, metadata={"help": "key/value heads (grouped-query attention)"})
    intermediate_size: int = field(default=128, metadata={"help": "MLP width"})
    max_positions: int = field(default=1024, metadata={"help": "longest sequence"})
    image_size: int = field(default=64, metadata={"help": "vlm: SigLIP input side in pixels"})
    patch_size: int = field(default=8, metadata={"help": "vlm: SigLIP patch side"})
    image_tokens: int = field(default=16, metadata={"help": "vlm: soft tokens per image (square)"})

    def __post_init__(self) -> None:
        if self.hidden_size % self.heads or self.heads % self.kv_heads:
            raise ValueError("hidden_size must divide by heads, and heads by kv_heads")
        side = int(round(self.image_tokens**0.5))
        patches = self.image_size // self.patch_size
        if side * side != self.image_tokens or patches % side:
            raise ValueError("image_tokens must be a square whose side divides the patch grid")


def build_demo_causal_lm(
    folder: str | Path, config: DemoLMConfig | None = None, seed: int = 0
) -> Path:
    """A tiny ``LlamaForCausalLM`` with the demo tokenizer, saved in ``folder``."""
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    transformers.utils.logging.disable_progress_bar()

    cfg = config or DemoLMConfig()
    tok = build_demo_tokenizer()
    torch.manual_seed(seed)
    model_cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=cfg.max_positions,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(model_cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    out = Path(folder)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def build_demo_gemma3(
    folder: str | Path, config: DemoLMConfig | None = None, seed: int = 0
) -> Path:
    """A tiny ``Gemma3ForConditionalGeneration`` with its ``Gemma3Processor``, saved in ``folder``."""
    import torch
    import transformers
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    transformers.utils.logging.disable_progress_bar()
    cfg = config or DemoLMConfig()
    tok = build_demo_tokenizer()
    head_dim = cfg.hidden_size // cfg.heads
    text = Gemma3TextConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.kv_heads,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        max_position_embeddings=cfg.max_positions,
        sliding_window=cfg.max_positions,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    vision = SiglipVisionConfig(
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
    )
    model_cfg = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=cfg.image_tokens,
        boi_token_index=tok.boi_token_id,
        eoi_token_index=tok.eoi_token_id,
        image_token_index=tok.image_token_id,
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(model_cfg)
    # Gemma 3 starts its image projection at zero (real weights overwrite it); a tiny model
    # trained from scratch needs the image to reach the language model from the first step.
    with torch.no_grad():
        proj = model.model.multi_modal_projector.mm_input_projection_weight
        proj.normal_(0.0, cfg.hidden_size**-0.5)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    image_processor = Gemma3ImageProcessor(
        size={"height": cfg.image_size, "width": cfg.image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pan_and_scan=False,
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
        image_seq_length=cfg.image_tokens,
    )
    out = Path(folder)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out
