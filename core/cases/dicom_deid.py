"""De-identified DICOM copies: a recursive allowlist, not a blocklist.

The stored copy is built from nothing: ``ALLOWLIST`` names every attribute it may hold, and a
sequence is rebuilt item by item from its own allowlist, so nothing nested (a patient name or a
private tag inside a VOI LUT item) survives. What is kept: the image pixel module, the modality
LUT and VOI LUT (descriptors and tables, never their explanations), Presentation LUT Shape,
Modality, pixel spacing, the lossy-compression facts, Burned In Annotation and Recognizable
Visual Features, and the pixels. Values are checked too: a coded string is kept only when it is
one of its defined terms (``RescaleType`` "HU", not a sentence), and no text, person name, date,
time or age value is kept at all. Dates are dropped (``core.cases.dicom`` keeps the study year in the
case's meta, no more). The study, series, instance and frame-of-reference UIDs are replaced by
``2.25.`` UIDs derived with HMAC-SHA256 from the original and a per-workspace secret
(``workspace_secret``): the same source gives the same UID within a workspace, so images of one
study still group, and nothing links the copy to the source outside it.

A file that declares text or a face in its pixels (Burned In Annotation or Recognizable Visual
Features YES) is refused unless ``allow_burned_in`` is given; then it is stored with Patient
Identity Removed NO and flagged (``core.cases.dicom.declares_burned_in``), and the store withholds it
from exports until a clinician confirms the image shows no identifier. Text burned into the
pixels of a file that does not declare it is not found (docs/cases.md).

Libraries considered: pydicom supplies the reading, writing and data dictionary used here.
``deid`` (pydicom/deid) and ``dicognito`` are blocklists (they clean the attributes they know and
keep the rest), the opposite of what this module guarantees; ``deid``'s header screen for burned-in
pixels flags 57 of pydicom's 93 test files, mostly for a missing ImageType, too blunt to refuse on.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import os
import re
import secrets
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, UID_dictionary

from core.cases.dicom import (
    PIXEL_KEYWORDS,
    declares_burned_in,
    flatten_functional_groups,
    read_dataset,
)
from core.cases.images import ImageError

SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
SECRET_FILE = ".deid-secret"

# A rule: None keeps a binary or numeric value as it is; a frozenset keeps a coded string only
# when every value is one of these terms; a mapping rebuilds each item of a sequence from it.
Rule: TypeAlias = "None | frozenset[str] | Mapping[str, Rule]"

_YES_NO = frozenset({"YES", "NO"})
_RESCALE_TYPES = frozenset({"OD", "HU", "US", "MGML", "Z_EFF", "ED", "EDW", "HU_MOD", "PCT"})
_LUT_ITEM: Mapping[str, Rule] = {"LUTDescriptor": None, "LUTData": None}
_CODED = re.compile(r"^[A-Z0-9 _]{1,16}$")  # a CS value: a code, never a sentence or a name

# fmt: off
ALLOWLIST: Mapping[str, Rule] = {
    # Image pixel module
    "SamplesPerPixel": None, "Rows": None, "Columns": None, "BitsAllocated": None,
    "BitsStored": None, "HighBit": None, "PixelRepresentation": None,
    "PlanarConfiguration": None, "PixelAspectRatio": None, "SmallestImagePixelValue": None,
    "LargestImagePixelValue": None, "PixelPaddingValue": None, "PixelPaddingRangeLimit": None,
    "NumberOfFrames": None, "FrameIncrementPointer": None,
    "PhotometricInterpretation": frozenset({
        "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL",
        "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB",
    }),
    "RedPaletteColorLookupTableDescriptor": None, "GreenPaletteColorLookupTableDescriptor": None,
    "BluePaletteColorLookupTableDescriptor": None, "RedPaletteColorLookupTableData": None,
    "GreenPaletteColorLookupTableData": None, "BluePaletteColorLookupTableData": None,
    "SegmentedRedPaletteColorLookupTableData": None,
    "SegmentedGreenPaletteColorLookupTableData": None,
    "SegmentedBluePaletteColorLookupTableData": None,
    "ExtendedOffsetTable": None, "ExtendedOffsetTableLengths": None,
    "LossyImageCompression": frozenset({"00", "01"}), "LossyImageCompressionRatio": None,
    "LossyImageCompressionMethod": frozenset({
        "ISO_10918_1", "ISO_14495_1", "ISO_15444_1", "ISO_15444_15", "ISO_13818_2",
        "ISO_14496_10", "ISO_23008_2", "ISO_18181_1",
    }),
    "BurnedInAnnotation": _YES_NO, "RecognizableVisualFeatures": _YES_NO,
    # Modality LUT, VOI LUT, presentation: tables and numbers, never their explanations
    "RescaleSlope": None, "RescaleIntercept": None, "RescaleType": _RESCALE_TYPES,
    "ModalityLUTSequence": {**_LUT_ITEM, "ModalityLUTType": _RESCALE_TYPES},
    "WindowCenter": None, "WindowWidth": None,
    "VOILUTFunction": frozenset({"LINEAR", "LINEAR_EXACT", "SIGMOID"}),
    "VOILUTSequence": _LUT_ITEM,
    "PresentationLUTShape": frozenset({"IDENTITY", "INVERSE"}),
    # What the image is
    "Modality": None, "PixelSpacing": None, "ImagerPixelSpacing": None,
    # Image Type (PS3.3 C.7.6.1.1.2): kept only when every value is a standard defined term,
    # so a site's own codes (which could be anything) drop the whole element.
    "ImageType": frozenset({
        "ORIGINAL", "DERIVED", "PRIMARY", "SECONDARY", "AXIAL", "LOCALIZER", "OTHER",
        "PROJECTION", "VOLUME", "REFORMATTED", "MPR", "MIP", "MINIP", "CURVED", "SUBTRACTION",
        "MAGNITUDE", "PHASE", "REAL", "IMAGINARY", "NONE",
    }),
}
# fmt: on
# UIDs that are replaced (consistently within a workspace), never copied.
REPLACED_UIDS: tuple[str, ...] = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
)
# Values that are free text, names, dates, times, ages or identifiers, whatever their attribute.
_TEXT_VRS = frozenset(
    {"AE", "AS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UN", "UR", "UT"}
)
# Kept for backward compatibility of callers that list what the copy holds.
KEEP_KEYWORDS: tuple[str, ...] = tuple(ALLOWLIST)


def workspace_secret(root: str | os.PathLike[str]) -> bytes:
    """The workspace's de-identification key (``<root>/.deid-secret``), made on first use.

    32 random bytes, hex-encoded, readable by the owner only. UIDs in stored copies are HMACs
    under it, so a workspace copied whole keeps its UIDs, and another workspace makes other ones.

    Raises:
        ImageError: the key file exists but cannot be read or is malformed.
    """
    path = Path(root) / SECRET_FILE
    Path(root).mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise ImageError(path, f"unreadable de-identification key ({exc}); restore it") from exc
    if len(key) < 16:
        raise ImageError(path, "the de-identification key is too short; restore it")
    return key


def replacement_uid(original: str, secret: bytes) -> str:
    """A ``2.25.`` UID for ``original``: HMAC-SHA256 under ``secret``, as a version-4 UUID."""
    digest = hmac.new(secret, original.strip().encode("ascii", "replace"), hashlib.sha256).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


def _values(elem: DataElement) -> list[Any]:
    """An element's values as a list: pydicom's MultiValue (PixelSpacing, ImageType) is neither a
    list nor a tuple, so a multi-valued element must not be read as one value."""
    value = elem.value
    if isinstance(value, str | bytes) or value is None:
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _value_ok(elem: DataElement, rule: frozenset[str]) -> bool:
    values = _values(elem)
    try:
        return all(str(v).strip().upper() in rule for v in values) and bool(values)
    except (TypeError, ValueError):
        return False


def filter_dataset(src: Dataset, allow: Mapping[str, Rule]) -> Dataset:
    """A new data set holding only what ``allow`` names, sequences rebuilt item by item.

    Private tags, free text, names, dates and UIDs are never kept, even when an allowlisted
    keyword carries them (a wrong VR in the file): the VR is checked, not just the name.
    """
    out = Dataset()
    for kw, rule in allow.items():
        if kw not in src:
            continue
        elem = src[kw]
        if elem.tag.is_private:
            continue
        if isinstance(rule, Mapping):
            if elem.VR != "SQ" or not elem.value:
                continue
            items = [filter_dataset(item, rule) for item in elem.value]
            items = [item for item in items if len(item)]
            if items:
                out[kw] = DataElement(elem.tag, "SQ", Sequence(items))
            continue
        if isinstance(rule, frozenset):
            if elem.VR == "CS" and _value_ok(elem, rule):
                out[kw] = copy.deepcopy(elem)
            continue
        if elem.VR == "CS":
            values = _values(elem)
            if values and all(_CODED.match(str(v).strip().upper() or "-") for v in values):
                out[kw] = copy.deepcopy(elem)
            continue
        if elem.VR in _TEXT_VRS or elem.VR == "SQ":
            continue
        if elem.VR in ("DS", "IS") and not _numeric(elem):
            continue
        out[kw] = copy.deepcopy(elem)
    return out


def _numeric(elem: DataElement) -> bool:
    """A decimal or integer string that really holds numbers (a forced read keeps any text)."""
    values = _values(elem)
    try:
        return all(v is None or v == "" or np.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


def deidentified_bytes(
    path: str | os.PathLike[str], *, secret: bytes, allow_burned_in: bool = False
) -> bytes:
    """A DICOM file holding only ``ALLOWLIST``, new UIDs and the pixels of the file at ``path``.

    Compressed pixel data is kept as it is (same transfer syntax); native data is written as
    Explicit VR Little Endian (big-endian samples byte-swapped). Same file and ``secret``, same
    bytes. Patient Identity Removed is YES, or NO for a burned-in file kept by ``allow_burned_in``.

    Raises:
        ImageError: the file cannot be read, has no pixel data, or declares burned-in text or
            recognisable features and ``allow_burned_in`` is false.
    """
    p = Path(path)
    src = read_dataset(p)
    if not any(k in src for k in PIXEL_KEYWORDS):
        raise ImageError(p, "DICOM file has no pixel data: not an image")
    burned_in = declares_burned_in(src)
    if burned_in and not allow_burned_in:
        raise ImageError(
            p,
            "the file declares text or a face burned into its pixels (Burned In Annotation or "
            "Recognizable Visual Features YES), which may identify the patient; refused "
            "(import with --allow-burned-in to keep it, flagged for a clinician to check)",
        )
    flatten_functional_groups(src)
    ts = UID(str(src.file_meta.TransferSyntaxUID))
    out = filter_dataset(src, ALLOWLIST)
    try:
        for kw in PIXEL_KEYWORDS:
            if kw in src:
                out[kw] = _pixel_element(src, kw, ts)
    except Exception as exc:
        raise ImageError(p, f"cannot copy the pixel data ({type(exc).__name__}: {exc})") from exc
    out_ts = ts if ts.is_encapsulated else ExplicitVRLittleEndian
    pixel_key = hashlib.sha256(_pixel_bytes(out)).hexdigest()
    for kw in REPLACED_UIDS:
        original = str(src.get(kw, "") or "").strip()
        if original or kw == "SOPInstanceUID":
            setattr(out, kw, replacement_uid(original or f"pixels:{pixel_key}", secret))
    sop_class = str(src.get("SOPClassUID", "") or "").strip()
    out.SOPClassUID = UID(sop_class) if sop_class in UID_dictionary else SECONDARY_CAPTURE
    out.PatientIdentityRemoved = "NO" if burned_in else "YES"
    out.LongitudinalTemporalInformationModified = "REMOVED"
    out.DeidentificationMethod = "MedGemma Reviewer recursive allowlist (docs/cases.md)"
    out.DeidentificationMethodCodeSequence = Sequence(
        [
            _code("113100", "Basic Application Confidentiality Profile"),
            _code("113105", "Clean Descriptors Option"),
        ]
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = out.SOPClassUID
    meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    meta.TransferSyntaxUID = out_ts
    out.file_meta = meta
    buf = io.BytesIO()
    out.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


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
