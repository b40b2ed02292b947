"""What a loaded image is, independent of its file format: ``LoadedImage`` (display grey levels or
RGB, raw values for re-windowing), ``apply_window``, the pixel budget and ``ImageError``.

``images`` (PNG, JPEG, TIFF) and ``dicom`` both build on this module, so neither imports the other
(no import cycle).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# The pixel budget: an image above it is refused, in words, from its header alone, before any
# pixel is decoded (a decompression bomb, or a corrupt header). A setting; callers pass their own.
DEFAULT_MAX_PIXELS = 64_000_000


class ImageError(ValueError):
    """An image could not be read. ``path`` and ``reason`` are kept for the caller's report."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class LoadedImage:
    """Pixels ready for display and for models.

    Attributes:
        pixels: 2-D float32 grey levels in [0, 1] (``is_greyscale``), or HxWx3 uint8 RGB.
        is_greyscale: which of the two ``pixels`` holds.
        meta: what display and provenance need, never patient data: ``format`` (png, jpeg,
            tiff, dicom, ...), ``frames``, and for DICOM where present ``modality``,
            ``window_center``/``window_width`` (in ``raw`` units), ``pixel_spacing`` [row, col]
            in mm, ``study_year`` (an int: the date itself is never kept) and ``burned_in``
            (True when the file declares text burned into its pixels).
        raw: greyscale values before the window (DICOM modality values: HU for CT), float32,
            so a viewer can re-window with ``windowed``; None for colour images.
        invert: whether display inverts ``raw`` (MONOCHROME1).
    """

    pixels: np.ndarray
    is_greyscale: bool
    meta: dict[str, Any] = field(default_factory=dict)
    raw: np.ndarray | None = field(default=None, repr=False)
    invert: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    def windowed(self, center: float, width: float) -> np.ndarray:
        """Grey levels in [0, 1] for another window, in ``raw`` units (``apply_window``).

        Raises:
            ValueError: a colour image, or ``width`` <= 0.
        """
        if not self.is_greyscale or self.raw is None:
            raise ValueError("window/level applies to greyscale images only")
        out = apply_window(self.raw, center, width)
        return 1.0 - out if self.invert else out

    def to_pil(self) -> Image.Image:
        """An 8-bit ``L`` (greyscale) or ``RGB`` PIL image: what models and thumbnails use."""
        if self.is_greyscale:
            grey = np.round(np.clip(self.pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
            return Image.fromarray(grey, mode="L")
        return Image.fromarray(np.ascontiguousarray(self.pixels, dtype=np.uint8), mode="RGB")


def apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map ``values`` linearly to float32 grey levels in [0, 1]: ``center - width/2`` is black,
    ``center + width/2`` white. (DICOM's LINEAR function differs by half a stored grey level,
    invisible on screen, and this form also serves float data already in [0, 1].)

    Raises:
        ValueError: ``width`` <= 0.
    """
    if not width > 0:
        raise ValueError(f"window width must be positive, got {width}")
    lo = center - width / 2.0
    out = (np.asarray(values, dtype=np.float32) - np.float32(lo)) / np.float32(width)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def over_budget(width: int, height: int, max_pixels: int) -> str | None:
    """The refusal for a ``width`` x ``height`` image above ``max_pixels``, else None."""
    if width * height <= max_pixels:
        return None
    return (
        f"image of {width}x{height} pixels ({width * height / 1e6:.0f} megapixels) is above the "
        f"pixel budget of {max_pixels / 1e6:g} megapixels (a setting); it was not decoded"
    )
