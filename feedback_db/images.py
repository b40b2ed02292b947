"""Images written beside an export: de-identified, content-addressed (``images/<sha256>.<ext>``).

PNG and JPEG are copied with their metadata removed: PNG text, time and EXIF chunks; JPEG APPn
(EXIF, XMP, ICC, vendor) and comment segments. Those are where scanners and viewers put patient
names, dates and device serials; pixels are left untouched. Any other format (DICOM, TIFF) goes
through the caller's converter, which must return de-identified PNG or JPEG bytes; the app passes
core's DICOM/TIFF-to-PNG converter (feedback_db cannot import core).
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

ImageConverter = Callable[[Path], tuple[bytes, str]]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Ancillary PNG chunks that can carry free text or identifying times.
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


class ImageError(ValueError):
    """An image cannot be exported; the message names the file."""


def strip_png(data: bytes, name: str = "image") -> bytes:
    """The PNG without text, time and EXIF chunks. Raises ImageError for a damaged file."""
    out = [PNG_MAGIC]
    pos = len(PNG_MAGIC)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ImageError(f"{name}: truncated PNG chunk header at byte {pos}")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ImageError(f"{name}: truncated PNG chunk {kind!r} at byte {pos}")
        if kind not in _PNG_DROP:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    return b"".join(out)


def strip_jpeg(data: bytes, name: str = "image") -> bytes:
    """The JPEG without APP1..APP15 and COM segments (APP0/JFIF is kept). Raises ImageError."""
    if not data.startswith(b"\xff\xd8"):
        raise ImageError(f"{name}: not a JPEG")
    out = [b"\xff\xd8"]
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ImageError(f"{name}: damaged JPEG segment at byte {pos}")
        marker = data[pos + 1] if pos + 1 < len(data) else None
        if marker is None:
            raise ImageError(f"{name}: truncated JPEG at byte {pos}")
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan: the rest is image data
            out.append(data[pos:])
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        if pos + 4 > len(data):
            raise ImageError(f"{name}: truncated JPEG segment at byte {pos}")
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if end > len(data):
            raise ImageError(f"{name}: truncated JPEG segment at byte {pos}")
        if not (0xE1 <= marker <= 0xEF or marker == 0xFE):
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


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
    if data.startswith(PNG_MAGIC):
        return strip_png(data, str(path)), "png"
    if data.startswith(b"\xff\xd8\xff"):
        return strip_jpeg(data, str(path)), "jpg"
    if converter is None:
        raise ImageError(f"{path}: not PNG or JPEG and no converter was given (DICOM/TIFF need one)")
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


def write_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    ``fsync=False`` skips forcing the bytes to disk (still never a torn file under the name).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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

        ``image`` is relative to the workspace root (or absolute). Raises ImageError (remembered,
        so a missing image shared by many rows is read once).
        """
        if image in self._names:
            return self._names[image]
        if image in self._failures:
            raise ImageError(self._failures[image])
        src = Path(image) if os.path.isabs(image) else self.root / image
        try:
            data, ext = deidentified(src, self.converter)
        except ImageError as exc:
            self._failures[image] = str(exc)
            raise
        name = f"images/{hashlib.sha256(data).hexdigest()}.{ext}"
        dst = self.out_dir / name
        # Content-addressed: a file of that name and size holds these bytes. Images are not
        # fsynced one by one (an export can be rerun; the store is the record), and a file a
        # crash left short is caught by the size check and written again.
        if not (dst.is_file() and dst.stat().st_size == len(data)):
            write_atomic(dst, data, fsync=False)
            self.written += 1
        self._names[image] = name
        return name
