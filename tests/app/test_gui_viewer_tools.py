"""The viewer's tools on a real multi-frame CT DICOM imported through ``medreview import``
(de-identified on the way in): the value under the cursor in HU, CT window presets, the ruler in
mm, frame scrolling, and the info panel listing only the tags the workspace copy kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.cli.main import main
from app.gui import image_info
from app.qt import QPointF, Qt

FRAMES, ROWS, COLS = 3, 96, 128
INTERCEPT = -1024


def ct_phantom(frame: int) -> np.ndarray:
    """A chest-like slice in HU: air around a soft-tissue body, two lungs, a spine, and a nodule
    that grows from frame to frame; plus a little noise."""
    yy, xx = np.mgrid[0:ROWS, 0:COLS].astype(np.float32)
    cy, cx = ROWS / 2, COLS / 2
    hu = np.full((ROWS, COLS), -1000.0, dtype=np.float32)
    hu[((xx - cx) / 58) ** 2 + ((yy - cy) / 40) ** 2 <= 1] = 40.0
    for side in (-1, 1):
        hu[((xx - cx - side * 26) / 20) ** 2 + ((yy - cy + 2) / 28) ** 2 <= 1] = -820.0
    hu[((xx - cx) / 8) ** 2 + ((yy - cy - 26) / 8) ** 2 <= 1] = 700.0
    hu[((xx - cx - 30) / (3 + 2 * frame)) ** 2 + ((yy - cy + 6) / (3 + 2 * frame)) ** 2 <= 1] = 30.0
    noise = np.random.default_rng(frame).normal(0, 12, hu.shape).astype(np.float32)
    return np.round(hu + noise)


def write_ct(path: Path) -> np.ndarray:
    """A 3-frame CT (stored values; HU = stored - 1024) with patient data that import must drop."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    stored = np.zeros((FRAMES, ROWS, COLS), dtype=np.int16)
    for f in range(FRAMES):
        stored[f] = (ct_phantom(f) - INTERCEPT).astype(np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "123-45-6789"
    ds.Modality = "CT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = ROWS, COLS, FRAMES
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, INTERCEPT
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelSpacing = [0.5, 0.8]
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return stored.astype(np.float32) + INTERCEPT


@pytest.fixture
def ct_case(window, workspace, tmp_path):
    folder = tmp_path / "ct"
    folder.mkdir()
    hu = write_ct(folder / "scan.dcm")
    (folder / "cases.csv").write_text(
        "modality,image,finding,treatment,split\n"
        "xray,scan.dcm,Lobar consolidation (pneumonia),Oral antibiotics,test\n",
        encoding="utf-8",
    )
    assert main(["import", str(folder / "cases.csv"), "--workspace", str(workspace["root"])]) == 0
    window.review.reload()
    (case_id,) = set(window.review.ids) - set(workspace["case_ids"])
    window.open_case(case_id)
    pane = window.review_view.image
    pane.original = folder / "scan.dcm"
    return pane, hu, case_id


def _wait_image(qtbot, pane, case_id) -> None:
    qtbot.waitUntil(lambda: pane.shown_case_id == case_id and pane.image is not None, timeout=10000)


def test_value_under_the_cursor_is_in_hu(qtbot, window, ct_case) -> None:
    pane, hu, case_id = ct_case
    _wait_image(qtbot, pane, case_id)
    assert image_info.value_text(pane.image, 7, 3) == f"{hu[0, 3, 7]:.0f} HU"
    # A real mouse move over the image: the top-left corner says the pixel and its value.
    viewer = pane.viewer
    viewer.fit()
    pos = viewer.mapFromScene(QPointF(10.5, 20.5))
    qtbot.mouseMove(viewer.viewport(), pos)
    qtbot.waitUntil(lambda: "HU" in viewer.corner_text.get("top-left", ""), timeout=3000)
    x, y = (int(v) for v in pane.pixel.text().split(")")[0].strip("(").split(","))
    assert pane.pixel.text().endswith(f"{hu[0, y, x]:.0f} HU")
    assert "HU" in viewer.corner_text["top-right"]


def test_ct_window_presets(qtbot, window, ct_case) -> None:
    pane, _hu, case_id = ct_case
    _wait_image(qtbot, pane, case_id)
    names = [pane.preset.itemText(i) for i in range(pane.preset.count())]
    assert names[:2] == ["Stored", "Full range"] and "Lung" in names and "Bone" in names
    pane.apply_preset(names.index("Lung"))
    assert pane.viewer.display_window == pytest.approx((-600.0, 1500.0))
    assert "W 1500  L -600 HU" in pane.viewer.corner_text["top-right"]
    # Elsewhere presets are percentiles of the image's own values.
    window.open_case(window.review.ids[0])
    qtbot.waitUntil(lambda: pane.shown_case_id == window.review.ids[0], timeout=10000)
    if pane.image.is_greyscale:
        assert pane.preset.count() >= 3 and not any(
            "Lung" == pane.preset.itemText(i) for i in range(pane.preset.count())
        )


def test_ruler_measures_in_mm(qtbot, window, ct_case) -> None:
    from core.cases.images import load_image

    pane, _hu, case_id = ct_case
    _wait_image(qtbot, pane, case_id)
    # The original file's spacing (whether the workspace copy keeps it is the import's business).
    pane._show_image(case_id, load_image(pane.original), "")
    viewer = pane.viewer
    assert viewer.spacing == (0.5, 0.8)
    assert (
        viewer.measure(QPointF(0, 0), QPointF(30, 40)) == f"{np.hypot(30 * 0.8, 40 * 0.5):.1f} mm"
    )
    viewer.spacing = None
    assert viewer.measure(QPointF(0, 0), QPointF(30, 40)) == "50.0 px", (
        "pixels where the spacing is unknown"
    )
    viewer.spacing = (0.5, 0.8)
    # With the ruler on, a drag measures (here 10 columns at 0.8 mm).
    pane.ruler_button.click()
    assert viewer.ruler_mode
    viewer.fit()
    a, b = viewer.mapFromScene(QPointF(5, 20)), viewer.mapFromScene(QPointF(15, 20))
    qtbot.mousePress(viewer.viewport(), Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(viewer.viewport(), b)
    qtbot.mouseRelease(viewer.viewport(), Qt.MouseButton.LeftButton, pos=b)
    value, unit = viewer.distance(*viewer._ruler)
    assert unit == "mm" and value == pytest.approx(8.0, abs=0.8 * 1.5)


def test_frames_scroll(qtbot, window, ct_case) -> None:
    pane, hu, case_id = ct_case
    _wait_image(qtbot, pane, case_id)
    assert pane.frames.isVisible() and pane.frame_slider.maximum() == FRAMES - 1
    window.review_view.image.viewer.setFocus()
    qtbot.keyClick(window.review_view.image.viewer, Qt.Key.Key_PageDown)
    qtbot.keyClick(window.review_view.image.viewer, Qt.Key.Key_PageDown)
    qtbot.waitUntil(lambda: (pane.image.meta or {}).get("frame") == 2, timeout=10000)
    np.testing.assert_allclose(pane.image.raw, hu[2])
    assert pane.frame_label.text() == "3 / 3"
    assert image_info.value_text(pane.image, 4, 0) == f"{hu[2, 0, 4]:.0f} HU"
    qtbot.keyClick(window.review_view.image.viewer, Qt.Key.Key_PageUp)
    qtbot.waitUntil(lambda: (pane.image.meta or {}).get("frame") == 1, timeout=10000)


def test_info_panel_lists_only_the_kept_tags(qtbot, window, ct_case) -> None:
    pane, _hu, case_id = ct_case
    _wait_image(qtbot, pane, case_id)
    window.review_view.image.viewer.setFocus()
    qtbot.keyClick(window.review_view.image.viewer, Qt.Key.Key_I)
    assert pane.info.isVisible()
    qtbot.waitUntil(lambda: len(pane.info_rows) > 5, timeout=10000)
    rows = dict(pane.info_rows)
    assert "PixelRepresentation" in pane.info.toPlainText()
    assert rows["Modality"] == "CT" and rows["Frames"] == "3"
    import pydicom

    stored = pydicom.dcmread(pane.path)
    kept = {e.keyword for e in stored if e.keyword and e.keyword != "PixelData"}
    listed = set(rows) - {"Format", "Size", "Frames", "Pixel spacing", "Kept tags"}
    assert listed == kept, "the panel lists exactly the tags of the workspace's copy"
    assert "PatientName" not in rows and "PatientID" not in rows
    assert not any("Doe" in v or "123-45" in v for v in rows.values())


def test_load_frame_refuses_a_frame_that_is_not_there(tmp_path) -> None:
    from core.cases.images import ImageError

    write_ct(tmp_path / "scan.dcm")
    assert image_info.load_frame(tmp_path / "scan.dcm", 1).meta["frame"] == 1
    with pytest.raises(ImageError, match="frame 4 does not exist"):
        image_info.load_frame(tmp_path / "scan.dcm", 3)
