"""DICOM through pydicom: decode the first frame for display (``core.cases.dicom_deid`` writes the
de-identified copies).

Decoding follows the display pipeline of PS3.3 C.11: stored values -> modality LUT or rescale
slope/intercept -> VOI LUT or window centre/width (else the frame's own range) -> MONOCHROME1 /
Presentation LUT inversion. Colour stays colour: YBR is converted to RGB by pydicom, palette
colour goes through its LUT, and more than 8 bits are scaled down to 8.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from core.cases.pixels import DEFAULT_MAX_PIXELS, ImageError, LoadedImage, apply_window, over_budget

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def looks_like_dicom(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` parses as a DICOM data set with image rows (a file with no preamble)."""
    try:
        ds = read_dataset(Path(path), defer=True)
    except ImageError:
        return False
    return "Rows" in ds and any(k in ds for k in PIXEL_KEYWORDS)


def load_dicom(
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Decode the first frame of the DICOM file at ``path`` for display.

    The header is read first: a frame of more than ``max_pixels`` pixels is refused before the
    pixel data is read.

    Raises:
        ImageError: not DICOM, no pixel data, over the pixel budget, a transfer syntax with no
            installed decoder, truncated pixel data, or an unsupported photometric interpretation.
    """
    p = Path(path)
    check_budget(read_dataset(p, defer=True), p, max_pixels)
    return decode_dataset(read_dataset(p), p, max_pixels=max_pixels)


def load_dicom_bytes(
    data: bytes, name: str, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """``load_dicom`` for bytes in memory; ``name`` is used in error messages."""
    return decode_dataset(
        _read_from(io.BytesIO(data), Path(name)), Path(name), max_pixels=max_pixels
    )


def check_budget(ds: Dataset, p: Path, max_pixels: int) -> None:
    """Refuse a frame of more than ``max_pixels`` pixels (from Rows and Columns).

    Raises:
        ImageError: over the budget, or Rows/Columns that are not numbers.
    """
    try:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    except (TypeError, ValueError) as exc:
        raise ImageError(p, "DICOM Rows/Columns are not numbers") from exc
    refusal = over_budget(cols, rows, max_pixels)
    if refusal:
        raise ImageError(p, refusal)


def declares_burned_in(ds: Dataset) -> bool:
    """True when the data set says text or a face may be visible in its pixels
    (Burned In Annotation or Recognizable Visual Features YES)."""
    return any(
        str(ds.get(kw, "") or "").strip().upper() == "YES"
        for kw in ("BurnedInAnnotation", "RecognizableVisualFeatures")
    )


def read_dataset(p: Path, defer: bool = False) -> Dataset:
    """The data set of the DICOM file at ``p`` (forced read; a missing transfer syntax is
    inferred from the encoding). ``defer`` leaves large values unread.

    Raises:
        ImageError: the file cannot be read or parsed.
    """
    try:
        with open(p, "rb") as fh:
            return _read_from(fh, p, defer)
    except OSError as exc:
        raise ImageError(p, f"cannot read the file: {exc.strerror or exc}") from exc


def _read_from(fh: Any, p: Path, defer: bool = False) -> Dataset:
    try:
        with warnings.catch_warnings():
            # pydicom warns about every oddity of a forced read; errors below say what matters.
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(fh, force=True, defer_size="4 KB" if defer else None)
    except (InvalidDicomError, EOFError, ValueError, KeyError, OSError, TypeError) as exc:
        raise ImageError(p, f"not a readable DICOM file ({exc})") from exc
    except Exception as exc:  # pydicom raises many kinds on garbage input
        raise ImageError(p, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
    _ensure_transfer_syntax(ds)
    return ds


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Files written without a file meta header still say how they were encoded."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    if meta.get("TransferSyntaxUID"):
        return
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def flatten_functional_groups(ds: Dataset) -> None:
    """Enhanced multi-frame objects keep rescale, window and spacing per frame; copy frame 0's
    to the top level (where the display pipeline and the de-identified copy look), in place."""
    wanted = {
        "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
        "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction"),
        "PixelMeasuresSequence": ("PixelSpacing",),
    }
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(group)
        if not seq:
            continue
        for macro, keywords in wanted.items():
            items = seq[0].get(macro)
            if not items:
                continue
            for kw in keywords:
                if kw in items[0] and kw not in ds:
                    setattr(ds, kw, items[0][kw].value)


def decode_dataset(ds: Dataset, p: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """The first frame of ``ds`` as a ``LoadedImage`` (see the module docstring)."""
    if not any(k in ds for k in PIXEL_KEYWORDS):
        sop = ds.get("SOPClassUID")
        kind = f" ({UID(str(sop)).name})" if sop else ""
        raise ImageError(p, f"DICOM file has no pixel data{kind}: not an image")
    check_budget(ds, p, max_pixels)
    flatten_functional_groups(ds)
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = pydicom.pixels.pixel_array(ds, index=0)
    except Exception as exc:
        raise ImageError(p, _decode_reason(ts, exc)) from exc
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    meta = _meta(ds)
    try:
        if photometric in ("MONOCHROME1", "MONOCHROME2") or (not photometric and arr.ndim == 2):
            return _greyscale(ds, arr, photometric, meta, p)
        if photometric == "PALETTE COLOR":
            rgb = pydicom.pixels.apply_color_lut(arr, ds)
            return LoadedImage(_to_uint8(rgb, 16 if rgb.dtype.itemsize > 1 else 8), False, meta)
        if arr.ndim == 3 and arr.shape[-1] == 3:
            # pydicom has already converted YBR_* to RGB.
            return LoadedImage(_to_uint8(arr, int(ds.get("BitsStored", 8))), False, meta)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(
            p, f"cannot apply the display transforms ({type(exc).__name__}: {exc})"
        ) from exc
    raise ImageError(p, f"unsupported photometric interpretation {photometric or 'missing'!r}")


def _decode_reason(ts: UID, exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    first = lines[0] if lines else type(exc).__name__
    detail = " ".join(lines[1:3])
    name = ts.name if ts.is_valid else str(ts)
    if "missing dependencies" in first or "no pixel data decoders" in first.lower():
        return (
            f"no decoder installed for the transfer syntax '{name}' ({ts}); "
            "install pylibjpeg with its plugins, or python-gdcm"
        )
    if "exceptions were raised" in first:
        return f"the installed decoders failed on this '{name}' data ({detail or first})"
    if "less than expected" in first or "truncat" in first.lower():
        return f"truncated pixel data ({first})"
    return f"cannot decode the pixel data, transfer syntax '{name}' ({first})"


def _greyscale(
    ds: Dataset, arr: np.ndarray, photometric: str, meta: dict[str, Any], p: Path
) -> LoadedImage:
    if arr.ndim != 2:
        raise ImageError(p, f"expected a 2-D greyscale frame, got shape {arr.shape}")
    modality_values = pydicom.pixels.apply_modality_lut(arr, ds)
    raw = np.asarray(modality_values, dtype=np.float32)
    if not np.isfinite(raw).all():
        raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(raw.min()), float(raw.max())
    center, width = _window(ds)
    if ds.get("VOILUTSequence") and _valid_lut(ds.VOILUTSequence[0]):
        ints = np.round(modality_values).astype(np.int64)
        voi = pydicom.pixels.apply_voi(ints, ds, index=0).astype(np.float32)
        lut = np.asarray(_lut_values(ds.VOILUTSequence[0]), dtype=np.float32)
        top, bottom = float(lut.max()), float(lut.min())
        grey = (voi - bottom) / (top - bottom) if top > bottom else np.zeros_like(voi)
        grey = np.clip(grey, 0.0, 1.0)
    elif center is not None and width is not None:
        if str(ds.get("VOILUTFunction", "LINEAR")).upper() == "SIGMOID":
            grey = (1.0 / (1.0 + np.exp(-4.0 * (raw - center) / width))).astype(np.float32)
        else:
            grey = apply_window(raw, center, width)
    else:
        grey = (raw - lo) / (hi - lo) if hi > lo else np.zeros_like(raw)
    if center is None or width is None:
        center, width = (lo + hi) / 2.0, max(hi - lo, 1.0)
    meta.update(window_center=float(center), window_width=float(width))
    invert = photometric == "MONOCHROME1" or (
        str(ds.get("PresentationLUTShape", "")).strip().upper() == "INVERSE"
    )
    if invert:
        grey = 1.0 - grey
    return LoadedImage(grey.astype(np.float32), True, meta, raw=raw, invert=invert)


def _valid_lut(item: Dataset) -> bool:
    return item.get("LUTDescriptor") is not None and item.get("LUTData") is not None


def _lut_values(item: Dataset) -> np.ndarray:
    data = item.LUTData
    if isinstance(data, bytes):
        depth = int(item.LUTDescriptor[2])
        return np.frombuffer(data, dtype="<u2" if depth > 8 else "u1")
    return np.asarray(data if isinstance(data, list | tuple) else [data])


def _window(ds: Dataset) -> tuple[float | None, float | None]:
    """The first window centre/width, or (None, None) when absent or unusable."""
    try:
        c, w = ds.get("WindowCenter"), ds.get("WindowWidth")
        if c is None or w is None:
            return None, None
        c = c[0] if isinstance(c, pydicom.multival.MultiValue) else c
        w = w[0] if isinstance(w, pydicom.multival.MultiValue) else w
        center, width = float(c), float(w)
    except (TypeError, ValueError, IndexError):
        return None, None
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        return None, None
    return center, width


def _to_uint8(rgb: np.ndarray, bits: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    top = float(2 ** min(max(bits, 1), 32) - 1)
    scaled = np.clip(rgb.astype(np.float64) / top * 255.0, 0, 255)
    return np.round(scaled).astype(np.uint8)


def _meta(ds: Dataset) -> dict[str, Any]:
    meta: dict[str, Any] = {"format": "dicom", "frames": int(ds.get("NumberOfFrames") or 1)}
    modality = str(ds.get("Modality", "") or "").strip()
    if modality:
        meta["modality"] = modality
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        if spacing is not None and len(spacing) == 2:
            meta["pixel_spacing"] = [float(spacing[0]), float(spacing[1])]
    except (TypeError, ValueError):
        pass  # a malformed spacing is dropped: display falls back to pixels
    # The year at most: a full date helps to identify a patient (HIPAA Safe Harbor keeps years).
    date = str(ds.get("StudyDate", "") or "").strip()
    if len(date) >= 4 and date[:4].isdigit():
        meta["study_year"] = int(date[:4])
    if declares_burned_in(ds):
        meta["burned_in"] = True
    return meta
