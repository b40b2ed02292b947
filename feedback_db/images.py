"""Images written beside an export: de-identified, content-addressed (``images/<sha256>.<ext>``).

PNG and JPEG are copied through an allowlist of what an image needs to display, so whatever a
scanner, a viewer or an attacker put anywhere else is left behind, known or not:

- PNG: IHDR, PLTE, IDAT, IEND and the colour/transparency/pixel-size chunks tRNS, gAMA, cHRM,
  sRGB, sBIT, pHYs, cICP. Text (tEXt, zTXt, iTXt), time, EXIF, ICC profiles (they carry free
  text), private and unknown chunks, and anything after IEND are dropped.
- JPEG: the frame, Huffman, quantisation, arithmetic-coding and restart segments, every scan
  with its entropy-coded data, a JFIF APP0 rewritten without its thumbnail, an Adobe APP14 (it
  says how the colours are coded), and EOI. Every other APPn (EXIF, XMP, ICC, vendor), comments
  (COM), and anything after EOI (a second picture, appended data) are dropped.

Pixels are left untouched. An image whose EXIF says it is rotated goes through the converter
instead (so the export shows it upright, as the viewer does). Any other format (DICOM, TIFF)
goes through the caller's converter, which must return de-identified PNG or JPEG bytes; the app
passes core's DICOM/TIFF-to-PNG converter (feedback_db cannot import core).

Source images are read only from inside the exporter's root: ``resolve_inside`` resolves links
itself before anything they point at is touched (the same function as ``core.runtime.paths``, which
feedback_db cannot import; a test keeps the two equal).
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path, PurePath

from feedback_db.files import atomic_write

ImageConverter = Callable[[Path], tuple[bytes, str]]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# What a PNG needs to display; everything else is dropped.
PNG_KEEP = frozenset(
    {
        b"IHDR",
        b"PLTE",
        b"IDAT",
        b"IEND",
        b"tRNS",
        b"gAMA",
        b"cHRM",
        b"sRGB",
        b"sBIT",
        b"pHYs",
        b"cICP",
    }
)
# JPEG segments with a length that decoding needs: SOF0-3, 5-7, 9-11, 13-15, DHT, DAC, DQT,
# DNL, DRI, DHP, EXP. APP0 (JFIF) and APP14 (Adobe) are rewritten or checked on their own.
_JPEG_KEEP = frozenset(
    {
        0xC0,
        0xC1,
        0xC2,
        0xC3,
        0xC5,
        0xC6,
        0xC7,
        0xC9,
        0xCA,
        0xCB,
        0xCD,
        0xCE,
        0xCF,
        0xC4,
        0xCC,
        0xDB,
        0xDC,
        0xDD,
        0xDE,
        0xDF,
    }
)
MAX_LINKS = 40


class ImageError(ValueError):
    """An image cannot be exported; the message names the file."""


class OutsideRoot(ValueError):
    """A path that leads outside its root. The message never says whether the target exists."""

    def __init__(self, ref: str, root: Path) -> None:
        self.ref = ref
        self.root = root
        super().__init__(f"{ref!r} leads outside {root}")


def _strip_root(parts: tuple[str, ...], roots: tuple[Path, ...]) -> list[str] | None:
    for base in roots:
        n = len(base.parts)
        if parts[:n] == base.parts:
            return list(parts[n:])
    return None


def resolve_inside(root: str | os.PathLike[str], ref: str | os.PathLike[str]) -> Path:
    """The real path of ``ref`` (relative to ``root``, or absolute) with links resolved, walking
    one component at a time so that nothing outside ``root`` is ever looked at.

    Raises:
        OutsideRoot: ``ref`` (or a link on its way) leads outside ``root``, or links loop.
    """
    text = os.fspath(ref)
    root_abs = Path(os.path.abspath(root))
    root_real = Path(os.path.realpath(root))
    roots = (root_real, root_abs)
    p = PurePath(os.path.expanduser(text))
    if p.is_absolute():
        rest = _strip_root(p.parts, roots)
        if rest is None:
            raise OutsideRoot(text, root_abs)
    else:
        rest = list(p.parts)
    pending = list(reversed(rest))
    done: list[str] = []
    links = 0
    missing = False
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                raise OutsideRoot(text, root_abs)
            done.pop()
            continue
        if missing:
            done.append(part)
            continue
        here = root_real.joinpath(*done, part)
        try:
            st = os.lstat(here)
        except OSError:  # missing, or a file used as a folder: nothing further exists
            missing = True
            done.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise OutsideRoot(text, root_abs)
        target = PurePath(os.readlink(here))
        if target.is_absolute():
            inside = _strip_root(target.parts, roots)
            if inside is None:
                raise OutsideRoot(text, root_abs)
            done = []
            pending.extend(reversed(inside))
        else:
            pending.extend(reversed(target.parts))
    return root_real.joinpath(*done)


def _png_chunks(data: bytes, name: str) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk bytes) of a PNG up to IEND. Raises ImageError for a damaged file."""
    if not data.startswith(PNG_MAGIC):
        raise ImageError(f"{name}: not a PNG")
    chunks = []
    pos = len(PNG_MAGIC)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ImageError(f"{name}: truncated PNG chunk header at byte {pos}")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ImageError(f"{name}: truncated PNG chunk {kind!r} at byte {pos}")
        chunks.append((kind, data[pos:end]))
        pos = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR":
        raise ImageError(f"{name}: damaged PNG (no IHDR chunk first)")
    return chunks


def strip_png(data: bytes, name: str = "image") -> bytes:
    """The PNG with only the chunks in ``PNG_KEEP``, up to IEND. Raises ImageError for a damaged
    file."""
    return PNG_MAGIC + b"".join(
        chunk for kind, chunk in _png_chunks(data, name) if kind in PNG_KEEP
    )


def _jpeg_segments(data: bytes, name: str) -> list[tuple[int, bytes]]:
    """(marker, bytes) of a JPEG from SOI to EOI; a scan's entropy-coded data is marker -1.

    Raises:
        ImageError: not a JPEG, or damaged.
    """
    if not data.startswith(b"\xff\xd8"):
        raise ImageError(f"{name}: not a JPEG")
    out: list[tuple[int, bytes]] = [(0xD8, b"\xff\xd8")]
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise ImageError(f"{name}: damaged JPEG segment at byte {pos}")
        if pos + 1 >= n:
            raise ImageError(f"{name}: truncated JPEG at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            out.append((marker, b"\xff\xd9"))
            break  # anything after EOI (a second picture, appended data) is not this image
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out.append((marker, data[pos : pos + 2]))
            pos += 2
            continue
        if marker == 0xD8:
            raise ImageError(f"{name}: damaged JPEG (a second start of image at byte {pos})")
        if pos + 4 > n:
            raise ImageError(f"{name}: truncated JPEG segment at byte {pos}")
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > n:
            raise ImageError(f"{name}: truncated JPEG segment at byte {pos}")
        out.append((marker, data[pos:end]))
        pos = end
        if marker == 0xDA:  # entropy-coded data up to the next marker that is not RST or stuffing
            scan = pos
            while True:
                i = data.find(b"\xff", scan)
                if i < 0 or i + 1 >= n:
                    out.append((-1, data[pos:]))  # no EOI: keep what there is
                    return out
                nxt = data[i + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                    scan = i + 2
                    continue
                out.append((-1, data[pos:i]))
                pos = i
                break
    return out


def _jfif(segment: bytes) -> bytes | None:
    """A JFIF APP0 segment without its thumbnail, or None when it is not JFIF."""
    body = segment[4:]
    if not body.startswith(b"JFIF\x00") or len(body) < 14:
        return None
    fields = body[5:12]  # version (2), units (1), X and Y density (2 + 2)
    return b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + fields + b"\x00\x00"


def strip_jpeg(data: bytes, name: str = "image") -> bytes:
    """The JPEG with only what decoding needs (see the module docstring). Raises ImageError."""
    kept = []
    for marker, segment in _jpeg_segments(data, name):
        if marker in (-1, 0xD8, 0xD9, 0xDA, 0x01) or 0xD0 <= marker <= 0xD7 or marker in _JPEG_KEEP:
            kept.append(segment)
        elif marker == 0xE0:
            jfif = _jfif(segment)
            if jfif is not None:
                kept.append(jfif)
        elif marker == 0xEE and segment[4:9] == b"Adobe" and len(segment) == 16:
            kept.append(segment)  # version, flags and the colour transform: numbers only
    return b"".join(kept)


def _tiff_orientation(tiff: bytes) -> int:
    """The Orientation (0x0112) of IFD0 of EXIF's TIFF structure; 1 when absent or unreadable."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    end = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(end + "I", tiff[4:8])
        (count,) = struct.unpack(end + "H", tiff[ifd : ifd + 2])
        for k in range(min(count, 512)):
            at = ifd + 2 + 12 * k
            tag, kind = struct.unpack(end + "HH", tiff[at : at + 4])
            if tag == 0x0112 and kind == 3:
                return int(struct.unpack(end + "H", tiff[at + 8 : at + 10])[0])
    except struct.error:
        return 1
    return 1


def orientation(data: bytes) -> int:
    """The EXIF orientation of a PNG or JPEG (1, upright, when it has none)."""
    try:
        if data.startswith(PNG_MAGIC):
            for kind, chunk in _png_chunks(data, "image"):
                if kind == b"eXIf":
                    return _tiff_orientation(chunk[8:-4])
        elif data.startswith(b"\xff\xd8"):
            for marker, segment in _jpeg_segments(data, "image"):
                if marker == 0xE1 and segment[4:10] == b"Exif\x00\x00":
                    return _tiff_orientation(segment[10:])
    except ImageError:
        return 1
    return 1


def deidentified(path: Path, converter: ImageConverter | None) -> tuple[bytes, str]:
    """The bytes to export for ``path`` and their extension (``png`` | ``jpg``).

    Raises:
        ImageError: the file is missing or unreadable, damaged, or of a format that needs a
            converter and none was given.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read image: {exc.strerror or exc}") from exc
    is_png, is_jpeg = data.startswith(PNG_MAGIC), data.startswith(b"\xff\xd8\xff")
    rotated = (is_png or is_jpeg) and converter is not None and orientation(data) != 1
    if is_png and not rotated:
        return strip_png(data, str(path)), "png"
    if is_jpeg and not rotated:
        return strip_jpeg(data, str(path)), "jpg"
    if converter is None:
        raise ImageError(
            f"{path}: not PNG or JPEG and no converter was given (DICOM/TIFF need one)"
        )
    try:
        converted, ext = converter(path)
    except Exception as exc:  # the converter is the caller's; report its failure per image
        raise ImageError(f"{path}: cannot convert image: {exc}") from exc
    ext = ext.lower().lstrip(".")
    if ext in ("jpeg", "jpg"):
        return strip_jpeg(converted, str(path)), "jpg"
    if ext == "png":
        return strip_png(converted, str(path)), "png"
    raise ImageError(f"{path}: the converter returned {ext!r}; expected png or jpg")


class ImageExporter:
    """Copies each source image once into ``<folder>/images/<sha256>.<ext>``; remembers the names."""

    def __init__(self, out_dir: Path, root: Path, converter: ImageConverter | None = None) -> None:
        self.out_dir = out_dir
        self.root = root
        self.converter = converter
        self._names: dict[str, str] = {}
        self._failures: dict[str, str] = {}
        self.written = 0

    def export(self, image: str) -> str:
        """The relative name (``images/<sha>.<ext>``) of the exported copy of ``image``.

        ``image`` is relative to the root (or absolute), and must lie inside it, links resolved.
        Raises ImageError (remembered, so a missing image shared by many rows is read once).
        """
        if image in self._names:
            return self._names[image]
        if image in self._failures:
            raise ImageError(self._failures[image])
        try:
            src = resolve_inside(self.root, image)
        except OutsideRoot:
            self._failures[image] = f"image path {image!r} leads outside {self.root}; not opened"
            raise ImageError(self._failures[image]) from None
        try:
            data, ext = deidentified(src, self.converter)
        except ImageError as exc:
            self._failures[image] = str(exc)
            raise
        name = f"images/{hashlib.sha256(data).hexdigest()}.{ext}"
        dst = self.out_dir / name
        # Content-addressed: a file of that name and size holds these bytes. Images are not
        # fsynced one by one (an export can be rerun; the store is the record), and a file a
        # crash left short is caught by the size check and written again. Owner-only (0o600).
        if not (dst.is_file() and dst.stat().st_size == len(data)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(dst, data, fsync=False)
            self.written += 1
        self._names[image] = name
        return name
