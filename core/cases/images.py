"""Load any case image (PNG, JPEG, TIFF 8/16 bit, DICOM) into display grey levels or RGB.

``load_image`` is the one door through which the engine, the store's export and the GUI read
pixels. Greyscale images come back as 2-D float32 in [0, 1] (after DICOM rescale, VOI LUT or
window, and MONOCHROME1 inversion), colour images as HxWx3 uint8. Any failure (missing file,
not an image, truncated data, a compressed DICOM with no decoder installed) is an ``ImageError``
naming the file and the reason, never a crash.

Integer greyscale PNG/TIFF is scaled by its container's range (8 bit by 255, 16 bit by 65535) so
a round trip is exact; float TIFF is scaled by its own minimum and maximum.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.cases.pixels import DEFAULT_MAX_PIXELS, ImageError, LoadedImage, over_budget

# File suffixes that are DICOM by convention; anything with the "DICM" magic is DICOM too.
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", *DICOM_SUFFIXES)


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """True when the file carries the DICOM magic (``DICM`` at byte 128) or a DICOM suffix."""
    p = Path(path)
    return p.suffix.lower() in DICOM_SUFFIXES or _has_dicom_magic(p)


def _has_dicom_magic(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def load_image(
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Decode the image at ``path``.

    DICOM files (by magic or suffix) go through pydicom; everything else through Pillow, and a
    file Pillow does not recognise is tried as a DICOM file without a preamble before giving up.
    An image with more than ``max_pixels`` pixels is refused from its header, before decoding;
    Pillow's decompression-bomb warning is an error too.

    Raises:
        ImageError: the file is missing, empty, not an image, truncated, over the pixel budget,
            or needs a codec that is not installed; the message names the file and the reason.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageError(p, "file not found" if not p.exists() else "not a regular file")
    if p.stat().st_size == 0:
        raise ImageError(p, "empty file")
    if is_dicom_file(p):
        from core.cases.dicom import load_dicom

        try:
            return load_dicom(p, max_pixels=max_pixels)
        except ImageError as not_dicom:
            if _has_dicom_magic(p):
                raise
            try:  # a PNG or JPEG misnamed .dcm still shows
                return _load_pil(p, max_pixels)
            except (_NotPil, ImageError):
                raise not_dicom from None
    try:
        return _load_pil(p, max_pixels)
    except _NotPil:
        pass
    from core.cases.dicom import load_dicom, looks_like_dicom

    if looks_like_dicom(p):
        return load_dicom(p, max_pixels=max_pixels)
    raise ImageError(p, "not an image: the format is not PNG, JPEG, TIFF, BMP or DICOM")


class _NotPil(Exception):
    """Pillow does not recognise the file (it may still be a DICOM without preamble)."""


_BOMB_SIZE = re.compile(r"\((\d+) pixels\)")


def _bomb(p: Path, exc: Exception, max_pixels: int) -> ImageError:
    """Pillow's decompression-bomb warning or error, in our words."""
    found = _BOMB_SIZE.search(str(exc))
    size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "too many pixels"
    return ImageError(
        p,
        f"image of {size} is above the pixel budget of {max_pixels / 1e6:g} megapixels or "
        "Pillow's decompression-bomb limit; it was not decoded",
    )


def _load_pil(p: Path, max_pixels: int) -> LoadedImage:
    try:
        with warnings.catch_warnings():
            # A decompression bomb is refused, not warned about.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                fmt = (im.format or "").lower()
                refusal = over_budget(im.width, im.height, max_pixels)
                if refusal:
                    raise ImageError(p, refusal)
                frames = int(getattr(im, "n_frames", 1))
                im.load()
                # Camera JPEGs store their rotation in EXIF; show them upright.
                upright = ImageOps.exif_transpose(im)
                return _from_pil(upright, fmt, frames, p)
    except UnidentifiedImageError as exc:
        raise _NotPil() from exc
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(p, exc, max_pixels) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(p, f"truncated or corrupt image data ({exc})") from exc


def _from_pil(im: Image.Image, fmt: str, frames: int, p: Path) -> LoadedImage:
    meta: dict[str, Any] = {"format": "jpeg" if fmt == "mpo" else fmt, "frames": frames}
    mode = im.mode
    if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "P", "PA", "LAB", "HSV", "RGBX"):
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        return LoadedImage(rgb.copy(), False, meta)
    if mode in ("1", "L", "LA", "La"):
        grey = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    elif mode.startswith("I;16"):
        grey = np.asarray(im, dtype=np.float32) / 65535.0
    elif mode == "I":
        arr = np.asarray(im, dtype=np.int64)
        top = 65535.0 if arr.min() >= 0 and arr.max() <= 65535 else float(2**31 - 1)
        grey = (arr.astype(np.float64) / top).astype(np.float32)
    elif mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ImageError(p, "float image contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        grey = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    else:
        raise ImageError(p, f"unsupported pixel mode {mode!r}")
    grey = np.clip(grey, 0.0, 1.0).astype(np.float32, copy=False)
    # raw is already in grey levels, so the identity window is centre 0.5, width 1.
    meta.update(window_center=0.5, window_width=1.0)
    return LoadedImage(grey, True, meta, raw=grey, invert=False)


def png_bytes(img: LoadedImage) -> bytes:
    """Deterministic 8-bit PNG encoding of ``img`` (no timestamps, no text chunks)."""
    buf = io.BytesIO()
    img.to_pil().save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def to_png_bytes(
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[bytes, str]:
    """A de-identified 8-bit PNG rendering of the image at ``path``, and its suffix ``".png"``.

    Only pixels are written (no DICOM tags, EXIF or text chunks), which is what the export needs
    for DICOM. Text burned into the pixels stays: the store withholds such images (docs/cases.md).

    Raises:
        ImageError: as ``load_image``.
    """
    return png_bytes(load_image(path, max_pixels=max_pixels)), ".png"
