"""The demo image encoder: a tiny open_clip CLIP (timm image tower + text transformer).

Same classes and loading path as the real default (BiomedCLIP through open_clip, whose image tower
is a timm model too), shrunk: timm's ``test_resnet`` at 96 px (or open_clip's own ViT) and a
two-layer text transformer over CLIP's own BPE (shipped inside open_clip, so nothing is
downloaded). Saved in open_clip's ``local-dir:`` layout
(``open_clip_config.json`` + ``open_clip_model.safetensors``), which
``open_clip.create_model_and_transforms("local-dir:<folder>")`` loads like any hub model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.models.clip_scorer import OPEN_CLIP_CONFIG as CONFIG_FILE
from core.models.clip_scorer import OPEN_CLIP_WEIGHTS as WEIGHTS_FILE
from core.models.clip_scorer import save_open_clip_weights as save_clip_weights

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "DemoClipConfig", "build_demo_clip", "save_clip_weights"]


@dataclass
class DemoClipConfig:
    """Size of the tiny CLIP.

    The image tower is a timm model inside open_clip (as BiomedCLIP's is), a tiny ResNet by
    default: trained from scratch on a few hundred phantoms, a tiny ViT reached 54% held-out
    accuracy at naming the shown finding and ``test_resnet`` 74% in about the same time (its
    convolutions do not have to learn that a lesion may sit anywhere). ``vision=""`` selects
    open_clip's own ViT tower.
    """

    embed_dim: int = field(default=64, metadata={"help": "shared image/text embedding width"})
    vision: str = field(default="test_resnet", metadata={"help": "timm image tower; '' for a ViT"})
    image_size: int = field(default=96, metadata={"help": "input side in pixels"})
    patch_size: int = field(default=8, metadata={"help": "ViT patch side in pixels (ViT only)"})
    width: int = field(default=64, metadata={"help": "transformer width of both towers"})
    layers: int = field(default=2, metadata={"help": "transformer layers per tower"})
    context_length: int = field(default=32, metadata={"help": "text tokens per prompt"})

    def __post_init__(self) -> None:
        if not self.vision and self.image_size % self.patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        if min(self.embed_dim, self.width, self.layers, self.context_length) <= 0:
            raise ValueError("sizes must be positive")

    def _vision_cfg(self) -> dict[str, Any]:
        if self.vision:
            return {
                "timm_model_name": self.vision,
                "timm_model_pretrained": False,
                "timm_pool": "avg",
                "timm_proj": "linear",
                "image_size": self.image_size,
            }
        return {
            "image_size": self.image_size,
            "layers": self.layers,
            "width": self.width,
            "head_width": 32,
            "mlp_ratio": 2.0,
            "patch_size": self.patch_size,
        }

    def open_clip_config(self) -> dict[str, Any]:
        """The config file open_clip reads: model_cfg and preprocess_cfg."""
        return {
            "model_cfg": {
                "embed_dim": self.embed_dim,
                "vision_cfg": self._vision_cfg(),
                "text_cfg": {
                    "context_length": self.context_length,
                    "vocab_size": 49408,
                    "width": self.width,
                    "heads": max(1, self.width // 32),
                    "layers": self.layers,
                    "mlp_ratio": 2.0,
                },
            },
            "preprocess_cfg": {
                "mean": [0.5, 0.5, 0.5],
                "std": [0.5, 0.5, 0.5],
                "interpolation": "bilinear",
                "resize_mode": "squash",
            },
        }


def build_demo_clip(
    folder: str | Path, config: DemoClipConfig | None = None, seed: int = 0
) -> Path:
    """Create a randomly initialised tiny CLIP and save it in ``folder`` (local-dir layout).

    Returns the folder. No network: the architecture comes from the config, the tokenizer is the
    BPE vocabulary shipped with open_clip.
    """
    import open_clip
    import torch

    cfg = config or DemoClipConfig()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(cfg.open_clip_config(), indent=2), encoding="utf-8")
    torch.manual_seed(seed)
    from core.models.clip_scorer import quiet_open_clip

    with quiet_open_clip():
        model = open_clip.create_model(f"local-dir:{out}", load_weights=False)
    save_clip_weights(model, out)
    return out
