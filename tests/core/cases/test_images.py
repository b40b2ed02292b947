from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cases.images import ImageError, LoadedImage, load_image, to_png_bytes
from core.cases.pixels import apply_window


def _ramp(dtype: type, top: int) -> np.ndarray:
    return (np.linspace(0, top, 48 * 64).reshape(48, 64)).astype(dtype)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_8_bit_greyscale_round_trip(tmp_path: Path, suffix: str) -> None:
    arr = _ramp(np.uint8, 255)
    path = tmp_path / f"g8{suffix}"
    Image.fromarray(arr).save(path)
    img = load_image(path)
    assert img.is_greyscale and img.pixels.dtype == np.float32 and img.pixels.shape == (48, 64)
    np.testing.assert_array_equal(np.round(img.pixels * 255).astype(np.uint8), arr)
    np.testing.assert_array_equal(np.asarray(img.to_pil()), arr)
    assert img.to_pil().mode == "L"


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_greyscale_keeps_its_precision(tmp_path: Path, suffix: str) -> None:
    arr = _ramp(np.uint16, 65535)
    path = tmp_path / f"g16{suffix}"
    Image.fromarray(arr).save(path)
    img = load_image(path)
    assert img.is_greyscale
    np.testing.assert_allclose(img.pixels, arr / 65535.0, atol=1e-6)
    # 16 bit holds steps 8-bit cannot: neighbouring values stay distinct.
    assert len(np.unique(img.pixels)) > 256


def test_float_tiff_is_scaled_by_its_range(tmp_path: Path) -> None:
    arr = np.linspace(-5.0, 20.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    path = tmp_path / "f.tif"
    Image.fromarray(arr).save(path)
    img = load_image(path)
    assert img.pixels.min() == 0.0 and img.pixels.max() == 1.0


def test_rgb_png_and_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    png = load_image(tmp_path / "c.png")
    assert not png.is_greyscale and png.pixels.dtype == np.uint8
    np.testing.assert_array_equal(png.pixels, rgb)
    assert png.to_pil().mode == "RGB"
    smooth = np.zeros((40, 30, 3), np.uint8)
    smooth[..., 0], smooth[..., 2] = 200, 40
    Image.fromarray(smooth).save(tmp_path / "c.jpg", quality=95)
    jpg = load_image(tmp_path / "c.jpg")
    assert jpg.meta["format"] == "jpeg" and jpg.pixels.shape == (40, 30, 3)
    assert np.abs(jpg.pixels.astype(int) - smooth).max() < 8


def test_greyscale_jpeg(tmp_path: Path) -> None:
    arr = np.full((16, 16), 100, np.uint8)
    Image.fromarray(arr).save(tmp_path / "g.jpeg")
    img = load_image(tmp_path / "g.jpeg")
    assert img.is_greyscale and abs(float(img.pixels.mean()) - 100 / 255) < 0.01


def test_rgba_and_palette_become_rgb(tmp_path: Path) -> None:
    Image.new("RGBA", (8, 8), (10, 20, 30, 128)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").pixels[0, 0].tolist() == [10, 20, 30]
    Image.new("RGB", (8, 8), (204, 0, 0)).convert("P").save(tmp_path / "p.png")
    p = load_image(tmp_path / "p.png")
    assert not p.is_greyscale and p.pixels[0, 0].tolist() == [204, 0, 0]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40), np.uint8)
    arr[:, :20] = 255  # left half white
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    im.save(tmp_path / "o.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "o.jpg")
    assert img.pixels.shape == (40, 20)
    assert img.pixels[:20].mean() > 0.9 and img.pixels[20:].mean() < 0.1  # white is now on top


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "file not found"),
        (b"", "empty file"),
        (b"hello, this is not an image at all" * 10, "not an image"),
    ],
)
def test_bad_files_raise_image_error_with_name(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=reason) as info:
        load_image(path)
    assert "bad.png" in str(info.value) and info.value.path == path
    assert isinstance(info.value, ValueError)


def test_truncated_png_is_an_image_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)).save(
        buf, "PNG"
    )
    (tmp_path / "t.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt") as info:
        load_image(tmp_path / "t.png")
    assert "t.png" in str(info.value)


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(tmp_path)


def test_to_png_bytes_is_deterministic_8_bit_without_metadata(tmp_path: Path) -> None:
    arr = _ramp(np.uint16, 65535)
    Image.fromarray(arr).save(tmp_path / "g16.tif")
    data, ext = to_png_bytes(tmp_path / "g16.tif")
    assert ext == ".png" and data == to_png_bytes(tmp_path / "g16.tif")[0]
    out = Image.open(io.BytesIO(data))
    assert out.mode == "L" and out.size == (64, 48) and not out.text


def test_window_and_windowed() -> None:
    values = np.array([-100.0, 0.0, 50.0, 100.0, 200.0], dtype=np.float32)
    np.testing.assert_allclose(apply_window(values, 50.0, 100.0), [0, 0, 0.5, 1, 1])
    with pytest.raises(ValueError, match="width"):
        apply_window(values, 0.0, 0.0)
    img = LoadedImage(np.zeros((1, 5), np.float32), True, {}, raw=values[None, :], invert=True)
    np.testing.assert_allclose(img.windowed(50.0, 100.0), [[1, 1, 0.5, 0, 0]])
    colour = LoadedImage(np.zeros((2, 2, 3), np.uint8), False)
    with pytest.raises(ValueError, match="greyscale"):
        colour.windowed(0.5, 1.0)


def test_misnamed_files_are_read_by_content(tmp_path: Path) -> None:
    arr = _ramp(np.uint8, 255)
    Image.fromarray(arr).save(tmp_path / "really_png.dcm", format="PNG")
    img = load_image(tmp_path / "really_png.dcm")
    assert img.meta["format"] == "png"
    np.testing.assert_array_equal(np.asarray(img.to_pil()), arr)
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 300)
    with pytest.raises(ImageError, match=r"junk\.dcm"):
        load_image(tmp_path / "junk.dcm")
