"""What the viewer needs beyond ``core.cases.images.load_image``: frame N of a multi-frame image, the
value under the cursor in its own units, window presets by modality, and the tags kept in the
workspace's (de-identified) copy of a DICOM file. Runs on the io lane; no Qt here.

Frame N of a DICOM file is decoded with pydicom and handed to ``core.cases.dicom.decode_dataset`` as a
one-frame data set, so every frame goes through the same display pipeline as the first (rescale,
VOI, MONOCHROME1), with the first frame's window (enhanced multi-frame files keep it per frame;
``flatten_functional_groups`` takes frame 0's, as for the first frame).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

# Window presets (name, centre, width) in Hounsfield units, for CT. Names are short (the closed
# box shows them whole in a narrow pane); what each does is in ``PRESET_HELP``.
MAX_PRESET_NAME = 11
CT_PRESETS: tuple[tuple[str, float, float], ...] = (
    ("Brain", 40.0, 80.0),
    ("Subdural", 75.0, 215.0),
    ("Soft tissue", 40.0, 400.0),
    ("Mediastinum", 50.0, 350.0),
    ("Liver", 30.0, 150.0),
    ("Lung", -600.0, 1500.0),
    ("Bone", 400.0, 1800.0),
)
# Elsewhere the units have no fixed meaning (a CR's raw values, an MRI's signal, an 8-bit PNG),
# so presets are percentiles of the image's own values: (name, low percentile, high percentile).
PERCENTILE_PRESETS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "xray": (("Soft tissue", 2.0, 98.0), ("Bone", 20.0, 99.5), ("Lung detail", 0.5, 60.0)),
    "mri": (("Auto", 1.0, 99.0), ("Contrast", 5.0, 95.0), ("Bright", 50.0, 99.8)),
    "ultrasound": (("Auto", 1.0, 99.0), ("More gain", 0.0, 80.0), ("Less gain", 20.0, 100.0)),
}
DEFAULT_PERCENTILES = (("Auto", 1.0, 99.0), ("Contrast", 5.0, 95.0))


def is_ct(meta: dict[str, Any]) -> bool:
    """CT-like data: values are Hounsfield units."""
    return str(meta.get("modality", "")).upper() == "CT"


def window_presets(image: Any, case_modality: str) -> list[tuple[str, float, float]]:
    """(name, centre, width) presets for ``image`` (a ``LoadedImage``), in the units of its raw
    values: Hounsfield presets for CT, percentiles of its own values elsewhere. Empty for
    colour images (no window/level)."""
    if not getattr(image, "is_greyscale", False):
        return []
    meta = getattr(image, "meta", {}) or {}
    values = image.raw if getattr(image, "raw", None) is not None else image.pixels
    out: list[tuple[str, float, float]] = []
    center, width = meta.get("window_center"), meta.get("window_width")
    if center is not None and width:
        out.append(("Stored", float(center), float(width)))
    lo, hi = float(np.min(values)), float(np.max(values))
    out.append(("Full range", (lo + hi) / 2.0, (hi - lo) or 1.0))
    if is_ct(meta):
        return out + list(CT_PRESETS)
    sample = values[:: max(1, values.shape[0] // 256), :: max(1, values.shape[1] // 256)]
    for name, p_lo, p_hi in PERCENTILE_PRESETS.get(case_modality, DEFAULT_PERCENTILES):
        a, b = (float(x) for x in np.percentile(sample, [p_lo, p_hi]))
        if b > a:
            out.append((name, (a + b) / 2.0, b - a))
    return out


def value_text(image: Any, x: int, y: int) -> str | None:
    """The value of pixel (x, y) in words: HU for CT, the stored units for other DICOM, the
    0-255 grey level or RGB for ordinary images; None outside the image."""
    pixels = image.pixels
    h, w = pixels.shape[:2]
    if not (0 <= x < w and 0 <= y < h):
        return None
    meta = getattr(image, "meta", {}) or {}
    if not image.is_greyscale:
        r, g, b = (int(v) for v in pixels[y, x][:3])
        return f"RGB {r}, {g}, {b}"
    raw = getattr(image, "raw", None)
    if meta.get("format") == "dicom" and raw is not None:
        v = float(raw[y, x])
        number = f"{v:.0f}" if abs(v - round(v)) < 1e-3 else f"{v:.4g}"
        return f"{number} HU" if is_ct(meta) else f"value {number}"
    # PNG, JPEG, TIFF: the grey level as the file stores it (0-255 for 8 bit).
    return f"grey {float(pixels[y, x]) * 255:.0f}"


def load_frame(path: str | Path, frame: int) -> Any:
    """Frame ``frame`` (0-based) of the image at ``path`` as a ``LoadedImage`` whose ``meta``
    has ``frames`` (the count) and ``frame``.

    Raises:
        core.cases.images.ImageError: the file cannot be read, or has no such frame.
    """
    from core.cases.images import ImageError, is_dicom_file, load_image

    p = Path(path)
    if frame == 0 or not is_dicom_file(p):
        image = load_image(p)
        if frame != 0:
            raise ImageError(
                p, f"frame {frame + 1} does not exist: only DICOM frames can be scrolled"
            )
        return image
    import pydicom

    from core.cases.dicom import decode_dataset, flatten_functional_groups, read_dataset

    ds = read_dataset(p)
    frames = int(ds.get("NumberOfFrames") or 1)
    if not 0 <= frame < frames:
        raise ImageError(p, f"frame {frame + 1} does not exist (the file has {frames})")
    flatten_functional_groups(ds)
    try:
        arr = pydicom.pixels.pixel_array(ds, index=frame)
    except Exception as exc:  # noqa: BLE001 (pydicom raises many kinds; said in words)
        raise ImageError(p, f"cannot decode frame {frame + 1}: {exc}") from exc
    _one_frame(ds, np.ascontiguousarray(arr))
    image = decode_dataset(ds, p)
    return dataclasses.replace(image, meta={**image.meta, "frames": frames, "frame": frame})


def _one_frame(ds: Any, arr: np.ndarray) -> None:
    """Make ``ds`` a one-frame, uncompressed data set holding ``arr`` (in place)."""
    from pydicom.uid import ExplicitVRLittleEndian

    for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if kw in ds:
            del ds[kw]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.NumberOfFrames = 1
    if arr.ndim == 3:  # pydicom has converted YBR to RGB
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.SamplesPerPixel = 3
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    if arr.dtype.kind == "f":
        setattr(
            ds,
            "FloatPixelData" if arr.dtype.itemsize == 4 else "DoubleFloatPixelData",
            little.tobytes(),
        )
        return
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = min(int(ds.get("BitsStored") or bits), bits)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    ds.PixelData = little.tobytes()


def describe_image(path: str | Path, image: Any) -> list[tuple[str, str]]:
    """(name, value) rows for the image info panel: format, size, frames, spacing, and for a
    DICOM file every tag its workspace copy holds. Import keeps only an allowlist of display
    and provenance tags (``core.cases.dicom_deid``), so this list is exactly what was kept."""
    meta = getattr(image, "meta", {}) or {}
    w, h = image.size
    rows = [("Format", str(meta.get("format", "?")).upper()), ("Size", f"{w} × {h} pixels")]
    if int(meta.get("frames", 1) or 1) > 1:
        rows.append(("Frames", str(meta["frames"])))
    spacing = meta.get("pixel_spacing")
    if spacing:
        rows.append(("Pixel spacing", f"{spacing[0]:.4g} × {spacing[1]:.4g} mm (row × column)"))
    if meta.get("format") != "dicom":
        rows.append(("Tags", "none: only the pixels are stored"))
        return rows
    from core.cases.dicom import read_dataset
    from core.cases.images import ImageError

    try:
        ds = read_dataset(Path(path), defer=True)
    except ImageError as exc:
        return [*rows, ("Tags", f"cannot be read: {exc.reason}")]
    rows.append(("Kept tags", "the de-identified copy holds only these"))
    for elem in ds:
        if (
            elem.keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
            or not elem.keyword
        ):
            continue
        rows.append((elem.keyword, _short(elem)))
    return rows


def _short(elem: Any) -> str:
    if elem.VR == "SQ":
        return f"({len(elem.value)} item{'s' if len(elem.value) != 1 else ''})"
    value = elem.value
    if isinstance(value, bytes):
        return f"({len(value)} bytes)"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "…"
