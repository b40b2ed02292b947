from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset

from core.cases.dicom import load_dicom_bytes
from core.cases.dicom_deid import KEEP_KEYWORDS, REPLACED_UIDS, deidentified_bytes
from core.cases.images import ImageError, load_image, to_png_bytes

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
# What a refusal may say; anything else would be an unexplained failure.
CLEAR_REASON = re.compile(
    r"no decoder installed|decoders failed|truncated pixel data|cannot decode the pixel data|"
    r"cannot apply the display transforms|unsupported photometric|no pixel data"
)


def _local(name: str) -> Path:
    """A pydicom test file that ships with the package (never downloaded)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not available offline")
    return Path(path)


def _pixel_files() -> list[Path]:
    """Every local pydicom test file that carries pixel data (downloads are not attempted)."""
    roots = [TEST_FILES]
    try:
        from pydicom.data.download import get_data_dir

        roots.append(Path(get_data_dir()))  # files fetched earlier, if any
    except Exception:  # noqa: BLE001 - the cache is optional
        pass
    out = []
    for root in roots:
        for p in sorted(root.rglob("*")):
            if not p.is_file():
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pydicom.dcmread(p, force=True, stop_before_pixels=False, defer_size="1 KB")
            except Exception:  # noqa: BLE001 - not DICOM at all
                continue
            if any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
                out.append(p)
    return out


def test_every_pydicom_test_file_with_pixels_loads_or_says_why() -> None:
    files = _pixel_files()
    assert len(files) >= 50
    loaded = 0
    for p in files:
        try:
            img = load_image(p)
        except ImageError as exc:
            assert exc.path == p
            assert CLEAR_REASON.search(exc.reason), f"{p.name}: unclear reason {exc.reason!r}"
            continue
        loaded += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(p, force=True, stop_before_pixels=True)
        assert img.pixels.shape[:2] == (ds.Rows, ds.Columns), p.name
        if img.is_greyscale:
            assert img.pixels.dtype == np.float32 and img.pixels.ndim == 2
            assert (
                np.isfinite(img.pixels).all() and 0.0 <= img.pixels.min() <= img.pixels.max() <= 1.0
            )
        else:
            assert img.pixels.dtype == np.uint8 and img.pixels.shape[2] == 3
        assert not {"PatientName", "PatientID"} & set(img.meta)
    assert loaded >= 40


def test_rescale_is_applied_and_orientation_kept() -> None:
    path = _local("CT_small.dcm")
    ds = pydicom.dcmread(path)
    img = load_image(path)
    assert ds.RescaleIntercept == -1024
    expected = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(
        ds.RescaleIntercept
    )
    np.testing.assert_array_equal(img.raw, expected)  # same values, same place: no flip
    # No window in the file: the frame's own range is shown.
    assert img.pixels.min() == 0.0 and img.pixels.max() == 1.0
    assert img.meta["modality"] == "CT" and img.meta["pixel_spacing"] == [0.661468, 0.661468]


def test_window_centre_and_width_are_applied() -> None:
    path = _local("MR_small.dcm")
    ds = pydicom.dcmread(path)
    img = load_image(path)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    expected = np.clip((ds.pixel_array.astype(np.float32) - (c - w / 2)) / w, 0, 1)
    np.testing.assert_allclose(img.pixels, expected, atol=1e-6)
    assert (img.meta["window_center"], img.meta["window_width"]) == (c, w)
    np.testing.assert_allclose(img.windowed(c, w), img.pixels, atol=1e-6)


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    src = _local("MR_small.dcm")
    ds = pydicom.dcmread(src)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    normal, inverted = load_image(src), load_image(tmp_path / "m1.dcm")
    np.testing.assert_allclose(inverted.pixels, 1.0 - normal.pixels, atol=1e-6)
    assert inverted.invert and not normal.invert


def test_big_endian_matches_little_endian() -> None:
    np.testing.assert_array_equal(
        load_image(_local("MR_small_bigendian.dcm")).pixels,
        load_image(_local("MR_small.dcm")).pixels,
    )


def test_multi_frame_gives_its_first_frame() -> None:
    path = _local("SC_rgb_rle_2frame.dcm")
    frames = pydicom.dcmread(path).pixel_array
    img = load_image(path)
    assert img.meta["frames"] == 2
    np.testing.assert_array_equal(img.pixels, frames[0])
    assert not np.array_equal(img.pixels, frames[1])
    dose = load_image(_local("rtdose.dcm"))
    assert dose.meta["frames"] == 15
    np.testing.assert_array_equal(dose.raw, pydicom.dcmread(_local("rtdose.dcm")).pixel_array[0])


def test_colour_stays_rgb_and_ybr_is_converted() -> None:
    rgb = load_image(_local("SC_rgb_rle.dcm"))
    assert not rgb.is_greyscale and rgb.pixels.dtype == np.uint8
    np.testing.assert_array_equal(rgb.pixels, pydicom.dcmread(_local("SC_rgb_rle.dcm")).pixel_array)
    ybr = load_image(_local("SC_ybr_full_422_uncompressed.dcm"))
    assert np.abs(ybr.pixels.astype(int) - rgb.pixels.astype(int)).mean() < 5  # same picture
    wide = load_image(_local("SC_rgb_rle_16bit.dcm"))  # 16 bits per sample, scaled to 8
    assert np.abs(wide.pixels.astype(int) - rgb.pixels.astype(int)).max() <= 1
    palette = load_image(_local("examples_palette.dcm"))
    assert not palette.is_greyscale and palette.pixels.shape[2] == 3


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("MR_truncated.dcm", "truncated pixel data"),
        ("rtplan.dcm", r"no pixel data \(RT Plan Storage\)"),
        ("MR_small_jpeg_ls_lossless.dcm", "no decoder installed for the transfer syntax 'JPEG-LS"),
    ],
)
def test_refusals_name_file_and_reason(name: str, reason: str) -> None:
    path = _local(name)
    try:
        load_image(path)
    except ImageError as exc:
        assert re.search(reason, exc.reason) and name in str(exc)
    else:
        if "jpeg_ls" in name:
            pytest.skip("a JPEG-LS decoder is installed here")
        pytest.fail(f"{name} should not load")


def test_dicom_without_preamble_or_suffix_is_recognised(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_local("MR_small.dcm"))
    ds.preamble, ds.file_meta = None, FileMetaDataset()  # a bare data set, as old scanners wrote
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=True, little_endian=True)
    assert buf.getvalue()[128:132] != b"DICM"
    (tmp_path / "IM0001").write_bytes(buf.getvalue())
    img = load_image(tmp_path / "IM0001")
    np.testing.assert_array_equal(img.pixels, load_image(_local("MR_small.dcm")).pixels)


def _identified(tmp_path: Path) -> Path:
    ds = pydicom.dcmread(_local("CT_small.dcm"))
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-0042-XYZ"
    ds.PatientBirthDate = "19700101"
    ds.AccessionNumber = "ACC-998877"
    ds.InstitutionName = "St Example Hospital"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.add_new(0x00091001, "LO", "private secret")
    path = tmp_path / "identified.dcm"
    ds.save_as(path)
    return path


def test_deidentified_copy_keeps_pixels_and_drops_identity(tmp_path: Path) -> None:
    path = _identified(tmp_path)
    original = pydicom.dcmread(path)
    data = deidentified_bytes(path, secret=b"k" * 32)
    for secret in (
        original.StudyInstanceUID.encode(),
        original.SeriesInstanceUID.encode(),
        original.SOPInstanceUID.encode(),
        original.StudyDate.encode(),
        b"Doe^Jane",
        b"MRN-0042-XYZ",
        b"ACC-998877",
        b"St Example",
        b"House^",
        b"private secret",
    ):
        assert secret not in data
    out = pydicom.dcmread(io.BytesIO(data))
    for kw in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "AccessionNumber",
        "InstitutionName",
        "ReferringPhysicianName",
        "StudyDate",
    ):
        assert kw not in out, kw
    assert not any(elem.tag.is_private for elem in out)
    assert {e.keyword for e in out} <= set(KEEP_KEYWORDS) | set(REPLACED_UIDS) | {
        "SOPClassUID",
        "PatientIdentityRemoved",
        "LongitudinalTemporalInformationModified",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "PixelData",
    }
    assert out.SOPInstanceUID != original.SOPInstanceUID and out.PatientIdentityRemoved == "YES"
    assert (
        out.StudyInstanceUID.startswith("2.25.")
        and out.StudyInstanceUID != original.StudyInstanceUID
    )
    np.testing.assert_array_equal(load_dicom_bytes(data, "x").pixels, load_image(path).pixels)
    # Deterministic within a workspace (same key), different in another.
    assert deidentified_bytes(path, secret=b"k" * 32) == data
    assert deidentified_bytes(path, secret=b"j" * 32) != data


def test_png_rendering_of_dicom_for_export(tmp_path: Path) -> None:
    path = _identified(tmp_path)
    data, ext = to_png_bytes(path)
    assert ext == ".png" and b"Doe^Jane" not in data and b"MRN-0042-XYZ" not in data
    png = Image.open(io.BytesIO(data))
    assert png.mode == "L" and not png.text
    np.testing.assert_array_equal(np.asarray(png), np.asarray(load_image(path).to_pil()))
