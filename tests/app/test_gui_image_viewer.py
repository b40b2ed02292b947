"""The image viewer's window/level on raw (DICOM-like) values and on large images."""

from __future__ import annotations

import numpy as np
import pytest

from app.gui.image_viewer import PREVIEW_SIDE, ImageViewer, apply_window


@pytest.fixture
def viewer(qtbot):
    v = ImageViewer()
    qtbot.addWidget(v)
    v.resize(400, 400)
    v.show()
    return v


def _grey_at(viewer, x: int, y: int) -> int:
    from app.qt import QColor

    return QColor(viewer._item.pixmap().toImage().pixel(x, y)).red()


def test_apply_window_maps_and_inverts() -> None:
    values = np.array([[-1000.0, 40.0, 1000.0]], dtype=np.float32)
    assert apply_window(values, 40, 400).tolist() == [[0, 127, 255]]
    assert apply_window(values, 40, 400, invert=True).tolist() == [[255, 128, 0]]


def test_raw_values_are_rewindowed_from_the_file_window(viewer) -> None:
    raw = np.tile(np.linspace(-1000, 1000, 201, dtype=np.float32), (10, 1))  # HU-like
    pixels = np.clip((raw - (40 - 200)) / 400, 0, 1).astype(np.float32)  # the file's window
    viewer.set_image(pixels, True, window=(40.0, 400.0), raw=raw)
    assert viewer.display_window == pytest.approx((40.0, 400.0))
    assert _grey_at(viewer, 0, 5) == 0 and _grey_at(viewer, 200, 5) == 255  # clipped at first
    viewer.set_window(0.0, 2000.0)  # a wide window shows what the first one clipped
    assert 0 < _grey_at(viewer, 40, 5) < _grey_at(viewer, 160, 5) < 255
    viewer.reset()
    assert viewer.display_window == pytest.approx((40.0, 400.0))


def test_monochrome1_is_inverted(viewer) -> None:
    raw = np.tile(np.linspace(0, 100, 11, dtype=np.float32), (4, 1))
    viewer.set_image(raw / 100, True, window=(50.0, 100.0), raw=raw, invert=True)
    assert _grey_at(viewer, 0, 0) == 255 and _grey_at(viewer, 10, 0) == 0


def test_large_image_drag_uses_a_preview_and_release_renders_full(viewer) -> None:
    side = PREVIEW_SIDE * 4
    viewer.set_image(np.random.default_rng(0).random((side, side), dtype=np.float32), True)
    viewer.set_window(0.4, 0.5, full=False)
    assert viewer._item.pixmap().width() <= PREVIEW_SIDE
    assert viewer._item.sceneBoundingRect().width() == pytest.approx(side)  # same size on screen
    viewer.set_window(0.4, 0.5, full=True)
    assert viewer._item.pixmap().width() == side


def test_colour_images_have_no_window_level(viewer) -> None:
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    viewer.set_image(rgb, False)
    assert not viewer.is_greyscale
    assert viewer._item.pixmap().width() == 30


def test_dicom_opens_in_its_own_window_and_rewindows_in_its_units(qtbot, window) -> None:
    """A real DICOM (pydicom's CT test file) through core.cases.images into the review's image pane."""
    from pydicom.data import get_testdata_file

    from core.cases.images import load_image

    path = get_testdata_file("CT_small.dcm", download=False)
    if path is None:
        pytest.skip("pydicom's CT_small.dcm is not available offline")
    image = load_image(path)
    pane = window.review_view.image
    pane._show_image("dicom-case", image, "")
    viewer = pane.viewer
    assert viewer.is_greyscale
    center, width = image.meta["window_center"], image.meta["window_width"]
    assert viewer.display_window == pytest.approx((center, width))
    expected = np.round(np.clip(image.pixels, 0, 1) * 255)
    y, x = np.unravel_index(np.argmax(image.pixels > 0.5), image.pixels.shape)
    assert abs(_grey_at(viewer, int(x), int(y)) - expected[y, x]) <= 1
    viewer.set_window(center, width * 2)
    assert f"W {width * 2:.4g}" in pane.viewer.corner_text["top-right"]
