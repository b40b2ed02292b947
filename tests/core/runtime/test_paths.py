"""Manifest images stay inside their images root; size and nesting limits (issue 11).

Hand-made hostile manifests: ``../`` and absolute paths, a symlink out of the folder, a PNG whose
header claims 169 megapixels, and JSON nested 100,000 deep. Each was accepted (or ended in a
traceback) before: ``/etc/shadow`` was opened, and the message told whether it existed.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from core.cases.images import ImageError, load_image
from core.manifests.manifest import ImportOptions
from core.manifests.reader import read_manifest
from core.runtime.paths import OutsideRoot, resolve_inside

_OPENED: list[str] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if (
        _OPENED is not None
        and event == "open"
        and args
        and isinstance(args[0], str | bytes | os.PathLike)
    ):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def opened() -> Iterator[list[str]]:
    """Every path the code under test opens (an audit hook: the OS-level truth)."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def _png(path: Path, shade: int = 90) -> Path:
    Image.new("L", (16, 16), shade).save(path)
    return path


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """``incoming/`` with a manifest and an image; ``outside/`` with a secret image beside it."""
    incoming, outside = tmp_path / "incoming", tmp_path / "outside"
    (incoming / "imgs").mkdir(parents=True)
    outside.mkdir()
    _png(incoming / "imgs" / "ok.png")
    _png(outside / "secret.png", 200)
    (incoming / "imgs" / "link.png").symlink_to(outside / "secret.png")
    (incoming / "imgs" / "dirlink").symlink_to(outside)
    return {"incoming": incoming, "outside": outside, "ws": tmp_path / "ws"}


def _manifest(folder: Path, images: list[str]) -> Path:
    rows = "".join(f"xray,{img},Pneumothorax,Chest tube insertion\n" for img in images)
    path = folder / "m.csv"
    path.write_text("modality,image,finding,treatment\n" + rows)
    return path


def test_traversal_absolute_and_links_out_are_refused_without_a_look(
    layout: dict[str, Path], opened: list[str]
) -> None:
    outside = layout["outside"]
    hostile = [
        "../outside/secret.png",
        "../outside/missing.png",
        str(outside / "secret.png"),
        str(outside / "missing.png"),
        "/etc/shadow",
        "imgs/../../outside/secret.png",
        "imgs/link.png",
        "imgs/dirlink/secret.png",
        "imgs/dirlink/missing.png",
    ]
    path = _manifest(layout["incoming"], ["imgs/ok.png", *hostile])
    res = read_manifest(path, layout["ws"] / "images")
    assert [c.meta["format"] for c in res.cases] == ["png"]
    assert [e.line for e in res.errors] == list(range(3, 3 + len(hostile)))
    for err, ref in zip(res.errors, hostile, strict=True):
        # One sentence, the same whether the target exists or not.
        assert err.message == (
            f"image {ref!r} is outside the images root {layout['incoming']}; not opened "
            "(move it there, or give another images root)"
        )
    assert not [p for p in opened if p.startswith(str(outside)) or p == "/etc/shadow"]


def test_images_root_widens_the_bounds_and_links_inside_it_resolve(layout: dict[str, Path]) -> None:
    root = layout["incoming"].parent
    path = _manifest(layout["incoming"], ["outside/secret.png", "incoming/imgs/link.png"])
    res = read_manifest(path, layout["ws"] / "images", options=ImportOptions(images_root=root))
    assert res.errors == [] and len(res.cases) == 2
    assert res.cases[0].image == res.cases[1].image  # the link resolved to the same file


def test_resolve_inside_is_the_same_in_core_and_feedback_db(layout: dict[str, Path]) -> None:
    from feedback_db.images import OutsideRoot as DbOutside
    from feedback_db.images import resolve_inside as db_resolve

    root = layout["incoming"]
    (root / "loop").symlink_to(root / "loop")
    (root / "up").symlink_to("..")
    refs = [
        "imgs/ok.png",
        "imgs/./ok.png",
        "imgs/x/../ok.png",
        "imgs/link.png",
        "loop",
        "up/outside",
        "up/incoming/imgs/ok.png",
        "nope/../../x",
        "nope/../imgs/ok.png",
        str(root / "imgs" / "ok.png"),
        "/etc/passwd",
        "..",
        ".",
    ]
    for ref in refs:
        try:
            core_result: object = resolve_inside(root, ref)
        except OutsideRoot:
            core_result = "outside"
        try:
            db_result: object = db_resolve(root, ref)
        except DbOutside:
            db_result = "outside"
        assert core_result == db_result, ref
    assert resolve_inside(root, "imgs/x/../ok.png") == (root / "imgs" / "ok.png").resolve()
    with pytest.raises(OutsideRoot):
        resolve_inside(root, "up/incoming/imgs/ok.png")  # out through a link, then back in


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` greyscale pixels with a few bytes of data: what a
    decompression bomb looks like before it is decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def test_a_png_over_the_pixel_budget_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = _png_header_only(
        tmp_path / "bomb.png", 13000, 13000
    )  # 169 Mpx: Pillow's own warning too
    with pytest.raises(ImageError) as info:
        load_image(bomb)
    assert "169 megapixels" in info.value.reason and "not decoded" in info.value.reason
    big = _png_header_only(
        tmp_path / "big.png", 9000, 8000
    )  # 72 Mpx: over our 64, under Pillow's 89
    with pytest.raises(
        ImageError, match="9000x8000 pixels \\(72 megapixels\\) is above the pixel budget of 64"
    ):
        load_image(big)
    # The budget is a setting: a smaller one refuses a small image, in the manifest's words.
    (tmp_path / "m.csv").write_text(
        "modality,image,finding,treatment\nxray,ok.png,Pneumothorax,Chest tube\n"
    )
    _png(tmp_path / "ok.png")
    res = read_manifest(
        tmp_path / "m.csv", tmp_path / "ws" / "images", options=ImportOptions(max_pixels=100)
    )
    assert res.cases == [] and "16x16 pixels" in res.errors[0].message and res.errors[0].line == 2
    # With a budget above Pillow's limit its decompression-bomb warning is still an error.
    with pytest.raises(ImageError, match="decompression-bomb"):
        load_image(bomb, max_pixels=400_000_000)


def test_a_dicom_over_the_pixel_budget_is_refused_from_its_header(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    big = tmp_path / "big.dcm"
    ds.Rows = ds.Columns = 20000  # 400 Mpx claimed; the pixel data is never read
    ds.save_as(big)
    with pytest.raises(
        ImageError, match="20000x20000 pixels \\(400 megapixels\\) is above the pixel budget"
    ):
        load_image(big)


def test_json_nested_100000_deep_is_refused_in_words(tmp_path: Path) -> None:
    good = '{"modality": "xray", "image": "ok.png", "finding": "Pneumothorax", "treatment": "Chest tube"}'
    _png(tmp_path / "ok.png")
    deep_line = '{"meta": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (tmp_path / "m.jsonl").write_text("\n".join([good, deep_line, "[" * 100_000, good]) + "\n")
    res = read_manifest(tmp_path / "m.jsonl", tmp_path / "ws" / "images")
    assert len(res.cases) == 2
    assert [(e.line, e.message) for e in res.errors] == [
        (2, "JSON nested deeper than 64 levels; not read"),
        (3, "JSON nested deeper than 64 levels; not read"),
    ]
    (tmp_path / "m.json").write_text("[\n" + good + ",\n" + "[" * 100_000 + "\n]")
    res = read_manifest(tmp_path / "m.json", tmp_path / "ws" / "images")
    assert (
        res.cases == []
        and res.errors[0].line == 3
        and "nested deeper than 64" in res.errors[0].message
    )
    # Brackets inside strings are text, not nesting.
    texty = (
        '{"modality": "xray", "image": "ok.png", "finding": "' + "[" * 500 + '", "treatment": "x"}'
    )
    (tmp_path / "t.jsonl").write_text(texty + "\n")
    assert read_manifest(tmp_path / "t.jsonl", tmp_path / "ws" / "images").errors == []


def test_a_link_in_a_folder_import_is_not_followed_out(
    layout: dict[str, Path], opened: list[str]
) -> None:
    folder = layout["incoming"]
    (folder / "xray").mkdir()
    _png(folder / "xray" / "a.png")
    (folder / "xray" / "b.png").symlink_to(layout["outside"] / "secret.png")
    (folder / "cases.csv").write_text(
        "image,finding,treatment\nxray/a.png,Pneumothorax,Chest tube\n"
        "xray/b.png,Pneumothorax,Chest tube\n"
    )
    res = read_manifest(folder, layout["ws"] / "images")
    assert len(res.cases) == 1
    messages = [str(e) for e in res.errors]
    assert any("cases.csv:3: image 'xray/b.png' is outside the images root" in m for m in messages)
    assert not [p for p in opened if p.startswith(str(layout["outside"]))]
    assert (
        np.asarray(Image.open(io.BytesIO((layout["ws"] / res.cases[0].image).read_bytes()))).mean()
        == 90
    )
