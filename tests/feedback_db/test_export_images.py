"""Export images through an allowlist; ratings-file images stay in the file's folder (issue 11).

Hand-made hostile inputs: a PNG with a private chunk (and text, an ICC profile, data after IEND),
JPEGs with comments, vendor segments, a thumbnail and a second picture after EOI, and ratings
lines whose images point at ``../../etc/passwd``, ``/etc/passwd``, ``images/../../x`` or a link
out of the folder. Before, the PNG strip was a blocklist, and those ratings lines were accepted.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from feedback_db import Store, open_store
from feedback_db.export import export_feedback
from feedback_db.images import (
    ImageError,
    ImageExporter,
    deidentified,
    orientation,
    strip_jpeg,
    strip_png,
)
from feedback_db.import_jsonl import import_feedback, looks_like_feedback
from tests.feedback_db.factory import Seeded

SECRET = b"Doe^Jane MRN-0042"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _hostile_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), 77).save(buf, format="PNG")
    png = buf.getvalue()
    iend = png.rindex(b"IEND") - 4
    extra = (
        _chunk(b"prVt", SECRET)  # a private ancillary chunk: no blocklist knows its name
        + _chunk(b"tEXt", b"Comment\0" + SECRET)
        + _chunk(b"iCCP", b"Doe^Jane profile\0\0" + zlib.compress(SECRET))
        + _chunk(b"sBIT", b"\x08")
    )
    return png[:iend] + extra + png[iend:] + SECRET  # and data after IEND


def _hostile_jpeg(progressive: bool = False) -> bytes:
    img = Image.new("RGB", (32, 32), (120, 60, 30))
    exif = Image.Exif()
    exif[0x010E] = SECRET.decode()
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), progressive=progressive, comment=SECRET)
    data = buf.getvalue()
    app13 = b"\xff\xed" + struct.pack(">H", 2 + len(SECRET)) + SECRET  # Photoshop IPTC
    data = data[:2] + app13 + data[2:]
    if progressive:  # a comment between scans
        second = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
        com = b"\xff\xfe" + struct.pack(">H", 2 + len(SECRET)) + SECRET
        data = data[:second] + com + data[second:]
    return data + data  # a second picture (with its own EXIF) after EOI


def test_png_keeps_only_the_chunks_that_display() -> None:
    png = _hostile_png()
    clean = strip_png(png)
    assert SECRET in png and SECRET not in clean and b"prVt" not in clean and b"iCCP" not in clean
    assert b"sBIT" in clean  # what display needs stays
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(clean))), np.asarray(Image.open(io.BytesIO(png)))
    )
    with pytest.raises(ImageError, match="no IHDR"):
        strip_png(b"\x89PNG\r\n\x1a\n" + _chunk(b"prVt", SECRET) + _chunk(b"IEND", b""))


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_keeps_only_what_decodes(progressive: bool) -> None:
    jpg = _hostile_jpeg(progressive)
    clean = strip_jpeg(jpg)
    assert SECRET in jpg and SECRET not in clean
    assert clean.count(b"\xff\xd8") == 1 and clean.endswith(b"\xff\xd9")
    assert b"Exif" not in clean and b"\xff\xfe" not in clean
    original = np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB"))
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(clean)).convert("RGB")), original
    )
    assert strip_jpeg(clean) == clean  # stable: export -> import -> export


def test_a_rotated_jpeg_goes_through_the_converter_upright(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to show
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes())
    assert orientation(path.read_bytes()) == 6
    calls = []

    def converter(p: Path) -> tuple[bytes, str]:
        calls.append(p)
        buf = io.BytesIO()
        Image.new("L", (20, 40), 5).save(buf, format="PNG")
        return buf.getvalue(), ".png"

    data, ext = deidentified(path, converter)
    assert ext == "png" and calls == [path] and Image.open(io.BytesIO(data)).size == (20, 40)


def test_the_exporter_never_reads_outside_its_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "images").mkdir(parents=True)
    outside.mkdir()
    (outside / "x.png").write_bytes(_hostile_png())
    (root / "images" / "link.png").symlink_to(outside / "x.png")
    exporter = ImageExporter(tmp_path / "out", root)
    for ref in (
        "images/link.png",
        str(outside / "x.png"),
        "../outside/x.png",
        "../outside/none.png",
    ):
        with pytest.raises(ImageError, match="leads outside"):
            exporter.export(ref)


def test_an_export_holds_no_chunk_outside_the_allowlist(seeded: Seeded, tmp_path: Path) -> None:
    (seeded.root / "images" / "c-xray-1.png").write_bytes(_hostile_png())
    store = seeded.store
    a, b = seeded.preds["c-xray-1"]
    from feedback_db import RatingIn

    store.add_rating(RatingIn("c-xray-1", seeded.reviewer.id, a.id, b.id, "a", a.label))
    out = tmp_path / "out" / "expert_feedback.jsonl"
    res = export_feedback(store, out, workspace_root=seeded.root)
    assert res.rows == 1 and res.problems == []
    for image in (tmp_path / "out" / "images").iterdir():
        assert SECRET not in image.read_bytes() and b"prVt" not in image.read_bytes()


# -- ratings files ---------------------------------------------------------------------------------

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
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


@pytest.fixture
def exported(seeded: Seeded, tmp_path: Path) -> Path:
    from feedback_db import RatingIn

    a, b = seeded.preds["c-mri-1"]
    seeded.store.add_rating(
        RatingIn("c-mri-1", seeded.reviewer.id, a.id, b.id, "b", b.label, severity="critical")
    )
    out = tmp_path / "from-a" / "expert_feedback.jsonl"
    export_feedback(seeded.store, out, workspace_root=seeded.root)
    return out


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    root = tmp_path / "empty"
    store = open_store(f"sqlite:///{root / 'medreview.db'}")
    yield store, root
    store.close()


def test_ratings_images_outside_the_files_folder_are_refused_unseen(
    exported: Path, empty: tuple[Store, Path], tmp_path: Path, opened: list[str]
) -> None:
    folder = exported.parent
    (tmp_path / "secret.png").write_bytes(_hostile_png())
    (folder / "images" / "link.png").symlink_to(tmp_path / "secret.png")
    line = json.loads(exported.read_text().splitlines()[0])
    hostile = [
        "../../etc/passwd",
        "/etc/passwd",
        "images/../../x",
        "images/../../secret.png",
        "C:\\Windows\\win.ini",
        "..\\..\\secret.png",
        "images/link.png",
    ]
    lines = []
    for i, ref in enumerate(hostile):
        lines.append(json.dumps({**line, "case_id": f"evil-{i}", "images": [ref]}))
    path = folder / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    store, root = empty
    opened.clear()  # what the test itself wrote does not count
    res = import_feedback(store, path, create_reviewers=True, workspace_root=root)
    assert res.ratings == 0 and [e.line for e in res.errors] == list(range(1, len(hostile) + 1))
    for err, ref in zip(res.errors, hostile, strict=True):
        assert err.message.startswith(f"field 'images': {ref!r} ")
        assert "absolute path" in err.message or "leads outside the file's folder" in err.message
        assert "not found" not in err.message  # nothing said about whether it exists
    assert not [p for p in opened if p.startswith(("/etc", str(tmp_path / "secret.png")))]
    assert not (root / "images").exists() or not any((root / "images").iterdir())


def test_a_deeply_nested_ratings_line_is_refused_in_words(
    exported: Path, empty: tuple[Store, Path]
) -> None:
    good = exported.read_text().splitlines()[0]
    path = exported.parent / "deep.jsonl"
    path.write_text(
        good + "\n" + "[" * 200_000 + "\n" + '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    )
    assert looks_like_feedback(path)
    deep_first = exported.parent / "deep-first.jsonl"
    deep_first.write_text("[" * 200_000 + "\n" + good + "\n")
    assert looks_like_feedback(deep_first)  # the deep line is skipped, not a RecursionError
    store, root = empty
    res = import_feedback(store, path, create_reviewers=True, workspace_root=root)
    assert res.ratings == 1
    assert [(e.line, e.message) for e in res.errors] == [
        (2, "JSON nested deeper than 64 levels; not read"),
        (3, "JSON nested deeper than 64 levels; not read"),
    ]
