"""De-identified DICOM copies: an allowlist, not a blocklist.

The stored copy holds only the pixel module, the modality and VOI LUT modules, the modality, pixel
spacing and study date. Every name, id, UID, date of birth, institution, physician, private tag
and overlay is dropped; the instance UID is replaced by one derived from the pixel bytes, so the
same image always gives the same file. Text burned into the pixels cannot be removed this way
(docs/cases.md).
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from core.dicom import PIXEL_KEYWORDS, flatten_functional_groups, read_dataset
from core.images import ImageError

# What the de-identified copy keeps: display and provenance, nothing about the patient.
# fmt: off
KEEP_KEYWORDS: tuple[str, ...] = (
    # Image pixel module
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration", "PixelAspectRatio",
    "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue",
    "PixelPaddingRangeLimit", "NumberOfFrames", "FrameIncrementPointer",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData", "ICCProfile", "ColorSpace",
    "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod",
    "BurnedInAnnotation",
    # Modality LUT, VOI LUT, presentation
    "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence", "WindowCenter",
    "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction", "VOILUTSequence",
    "PresentationLUTShape",
    # Provenance
    "SOPClassUID", "Modality", "StudyDate", "PixelSpacing", "ImagerPixelSpacing",
)
# fmt: on
SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")


def deidentified_bytes(path: str | os.PathLike[str]) -> bytes:
    """A DICOM file holding only ``KEEP_KEYWORDS`` and the pixels of the file at ``path``.

    Compressed pixel data is kept as it is (same transfer syntax); native data is written as
    Explicit VR Little Endian (big-endian samples byte-swapped).
    The SOP Instance UID is derived from the pixel bytes, so the output is deterministic.

    Raises:
        ImageError: the file cannot be read, or has no pixel data.
    """
    p = Path(path)
    src = read_dataset(p)
    if not any(k in src for k in PIXEL_KEYWORDS):
        raise ImageError(p, "DICOM file has no pixel data: not an image")
    flatten_functional_groups(src)
    ts = UID(str(src.file_meta.TransferSyntaxUID))
    out = Dataset()
    for kw in KEEP_KEYWORDS:
        if kw in src:
            out[kw] = copy.deepcopy(src[kw])
    try:
        for kw in PIXEL_KEYWORDS:
            if kw in src:
                out[kw] = _pixel_element(src, kw, ts)
    except Exception as exc:
        raise ImageError(p, f"cannot copy the pixel data ({type(exc).__name__}: {exc})") from exc
    out_ts = ts if ts.is_encapsulated else ExplicitVRLittleEndian
    digest = hashlib.sha256(_pixel_bytes(out)).hexdigest()
    uid = pydicom.uid.generate_uid(entropy_srcs=[digest])
    sop_class = UID(str(out.get("SOPClassUID") or SECONDARY_CAPTURE))
    out.SOPClassUID = sop_class
    out.SOPInstanceUID = uid
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = "MedGemma Reviewer allowlist: pixels, LUTs, modality, spacing"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = out_ts
    out.file_meta = meta
    buf = io.BytesIO()
    out.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _pixel_element(src: Dataset, kw: str, ts: UID) -> DataElement:
    """The pixel element, little-endian with an explicit VR unless it is encapsulated."""
    elem = copy.deepcopy(src[kw])
    if ts.is_encapsulated:
        return elem
    if kw == "PixelData" and elem.VR not in ("OB", "OW"):
        elem.VR = "OW" if int(src.get("BitsAllocated", 8)) > 8 else "OB"
    if not ts.is_little_endian:
        # Swap each sample the way pydicom reads it (one unit of Bits Allocated / 8 bytes).
        # OW data is swapped by at least 16-bit words, even for 8-bit samples; OB never.
        bits = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}.get(kw)
        size = (bits or int(src.get("BitsAllocated", 8))) // 8
        if elem.VR == "OW":
            size = max(size, 2)
        elif elem.VR == "OB":
            size = 1
        if size > 1 and len(elem.value) % size == 0:
            raw = np.frombuffer(elem.value, dtype=f">u{size}")
            elem.value = raw.astype(f"<u{size}").tobytes()
    return elem


def _pixel_bytes(ds: Dataset) -> bytes:
    for kw in PIXEL_KEYWORDS:
        if kw in ds:
            value = ds[kw].value
            return value if isinstance(value, bytes) else bytes(str(value), "ascii")
    return b""
