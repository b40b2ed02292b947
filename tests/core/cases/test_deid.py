"""De-identification by a recursive allowlist, with hand-made hostile DICOM files (issue 11).

Each test here fails on the blocklist-in-disguise it replaced: sequences were copied whole (a
patient name nested in a VOI LUT item survived), free-text explanations and the study date were
kept, and a file declaring burned-in text imported without a word.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from core.cases.dicom_deid import deidentified_bytes, workspace_secret
from core.cases.images import load_image
from core.manifests.manifest import ImportOptions
from core.manifests.reader import read_manifest

NAME, MRN, BIRTH, DATE = "Nested^Patient", "MRN-31337-Q", "19610203", "19990317"
PRIVATE = "private-nested-secret"
FREE_TEXT = "window chosen for Doe^John at St Elsewhere"
# Every value the stored copy must not hold, anywhere, in any form.
SECRETS = (NAME, MRN, BIRTH, DATE, PRIVATE, FREE_TEXT, "Smith^Jane", "St Elsewhere", "Doe^John")
TEXT_VRS = {"AE", "AS", "DA", "DT", "LT", "PN", "ST", "TM", "UC", "UR", "UT", "UN"}


def _hostile(path: Path, *, burned_in: str | None = None, sop: str | None = None) -> Path:
    """CT_small with patient data at the top, nested in sequences, in private tags, and hidden in
    attributes the old allowlist kept (explanations, a coded value holding a name, the date)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.StudyDate = NAME, MRN, BIRTH, DATE
    ds.WindowCenterWidthExplanation = FREE_TEXT
    ds.RescaleType = "Smith^Jane"  # an LO the old copy kept verbatim
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [2, 0, 16])
    item.add_new("LUTData", "US", [0, 65535])
    item.LUTExplanation = FREE_TEXT
    item.PatientName = NAME
    item.add_new(0x00091001, "LO", PRIVATE)
    item.add_new(0x00090010, "LO", "ACME PRIVATE")
    ds.VOILUTSequence = Sequence([item])
    inner = Dataset()
    inner.PatientID = MRN
    inner.InstitutionName = "St Elsewhere"
    ds.ReferencedImageSequence = Sequence([inner])
    ds.add_new(0x00291010, "OB", PRIVATE.encode())
    if burned_in:
        ds.BurnedInAnnotation = burned_in
    if sop:
        ds.SOPInstanceUID = sop
    ds.save_as(path)
    return path


def _walk_vrs(ds: Dataset) -> list[tuple[str, str]]:
    out = []
    for elem in ds:
        out.append((elem.keyword or str(elem.tag), elem.VR))
        if elem.VR == "SQ":
            for item in elem.value:
                out.extend(_walk_vrs(item))
    return out


def test_nested_phi_private_tags_free_text_and_dates_never_reach_the_copy(tmp_path: Path) -> None:
    path = _hostile(tmp_path / "hostile.dcm")
    original = pydicom.dcmread(path)
    data = deidentified_bytes(path, secret=b"s" * 32)
    for secret in SECRETS + (original.StudyInstanceUID, original.SOPInstanceUID):
        assert secret.encode() not in data, secret
    out = pydicom.dcmread(io.BytesIO(data))
    assert not any(e.tag.is_private for e in out.iterall())
    # The VOI LUT survives, rebuilt: its table only.
    (lut,) = out.VOILUTSequence
    assert set(lut.dir()) == {"LUTData", "LUTDescriptor"}
    assert "ReferencedImageSequence" not in out and "WindowCenterWidthExplanation" not in out
    assert "RescaleType" not in out and "StudyDate" not in out
    # What we write ourselves is the only text: the method, its codes, and the new UIDs.
    ours = {"DeidentificationMethod", "CodeValue", "CodingSchemeDesignator", "CodeMeaning"}
    for keyword, vr in _walk_vrs(out):
        assert vr not in TEXT_VRS or keyword in ours, (keyword, vr)
    assert (
        out.PatientIdentityRemoved == "YES"
        and out.LongitudinalTemporalInformationModified == "REMOVED"
    )
    # The image still shows the same.
    np.testing.assert_array_equal(
        load_image(_saved(tmp_path, data)).pixels, load_image(path).pixels
    )


def _saved(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "copy.dcm"
    p.write_bytes(data)
    return p


def test_imported_case_keeps_the_study_year_only(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _hostile(src / "scan.dcm")
    (src / "m.csv").write_text(
        "modality,image,finding,treatment\nxray,scan.dcm,Pneumothorax,Chest tube\n"
    )
    res = read_manifest(src / "m.csv", tmp_path / "ws" / "images")
    (case,) = res.cases
    assert case.meta["study_year"] == 1999 and "study_date" not in case.meta
    assert DATE not in repr(case.meta) and "1999-03-17" not in repr(case.meta)
    stored = (tmp_path / "ws" / case.image).read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in stored, secret


def test_uids_are_replaced_consistently_within_a_workspace(tmp_path: Path) -> None:
    one = _hostile(tmp_path / "one.dcm", sop="1.2.826.0.1.3680043.2.1125.1.1")
    two = _hostile(tmp_path / "two.dcm", sop="1.2.826.0.1.3680043.2.1125.1.2")
    key = workspace_secret(tmp_path / "ws")
    assert workspace_secret(tmp_path / "ws") == key  # made once, then read
    assert (tmp_path / "ws" / ".deid-secret").stat().st_mode & 0o077 == 0
    a, b = (pydicom.dcmread(io.BytesIO(deidentified_bytes(p, secret=key))) for p in (one, two))
    original = pydicom.dcmread(one)
    assert a.StudyInstanceUID == b.StudyInstanceUID != original.StudyInstanceUID  # still one study
    assert a.SeriesInstanceUID == b.SeriesInstanceUID and a.SOPInstanceUID != b.SOPInstanceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert all(uid.startswith("2.25.") for uid in (a.StudyInstanceUID, a.SOPInstanceUID))
    other = pydicom.dcmread(
        io.BytesIO(deidentified_bytes(one, secret=workspace_secret(tmp_path / "ws2")))
    )
    assert other.StudyInstanceUID != a.StudyInstanceUID  # nothing links two workspaces


@pytest.mark.parametrize("flag", ["BurnedInAnnotation", "RecognizableVisualFeatures"])
def test_declared_burned_in_is_refused_by_default_and_flagged_when_allowed(
    tmp_path: Path, flag: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    path = _hostile(src / "scan.dcm")
    ds = pydicom.dcmread(path)
    setattr(ds, flag, "YES")
    ds.save_as(path)
    (src / "m.csv").write_text(
        "modality,image,finding,treatment\nus,scan.dcm,Simple cyst,Surveillance\n"
    )
    images = tmp_path / "ws" / "images"
    res = read_manifest(src / "m.csv", images)
    assert res.cases == [] and len(res.errors) == 1
    err = res.errors[0]
    assert (
        err.line == 2
        and "burned into its pixels" in err.message
        and "--allow-burned-in" in err.message
    )
    assert not images.exists() or not any(images.iterdir())  # nothing stored
    res = read_manifest(src / "m.csv", images, options=ImportOptions(allow_burned_in=True))
    (case,) = res.cases
    assert case.meta["burned_in"] is True
    stored = pydicom.dcmread(tmp_path / "ws" / case.image)
    assert stored.PatientIdentityRemoved == "NO" and getattr(stored, flag) == "YES"
    assert "burned_in" not in load_image(get_testdata_file("CT_small.dcm", download=False)).meta


def test_multi_valued_numbers_and_codes_are_kept() -> None:
    """PixelSpacing (two numbers) and ImageType (several codes) are pydicom MultiValues: the copy
    keeps them, so the viewer's ruler knows the pixel size of an imported scan."""
    import io

    import pydicom
    from pydicom.data import get_testdata_file

    from core.cases.dicom_deid import deidentified_bytes

    path = get_testdata_file("CT_small.dcm")
    src = pydicom.dcmread(path)
    out = pydicom.dcmread(io.BytesIO(deidentified_bytes(path, secret=b"k" * 32)))
    assert [float(v) for v in out.PixelSpacing] == [float(v) for v in src.PixelSpacing]
    assert list(src.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"] and list(out.ImageType) == list(
        src.ImageType
    )
    assert "PatientName" not in out
