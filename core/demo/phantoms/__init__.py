"""Phantom images, one module per modality, each showing a known visual finding.

``render(modality, visual, rng, size)`` returns 8-bit pixels (L for greyscale modalities, RGB for
histopathology) and a small dict saying where the finding was drawn. The visuals are the
``visual`` keys of the knowledge table (resources/knowledge.json).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.demo.phantoms import histopathology, mri, ultrasound, xray
from core.demo.phantoms._common import to_uint8

_MODULES = {"xray": xray, "histopathology": histopathology, "mri": mri, "ultrasound": ultrasound}

VISUALS: dict[str, tuple[str, ...]] = {m: mod.VISUALS for m, mod in _MODULES.items()}


def render(
    modality: str, visual: str, rng: np.random.Generator, size: int = 224
) -> tuple[np.ndarray, dict[str, Any]]:
    """Pixels (uint8, HxW or HxWx3) showing ``visual`` for ``modality``, and the lesion's place.

    Raises:
        ValueError: unknown modality or visual.
    """
    if modality not in _MODULES:
        raise ValueError(f"no phantom for modality {modality!r}; expected one of {tuple(_MODULES)}")
    pixels, info = _MODULES[modality].render(visual, rng, size)
    return to_uint8(pixels), info
