"""Atomic file writes: a reader sees the old file or the new one, never half of either.

``atomic_writer(path)`` opens a temporary file in ``path``'s folder, yields it, and on a clean
exit flushes it, forces it to disk (``fsync``), renames it over ``path`` (``os.replace``, atomic
on one filesystem) and forces the folder's entry to disk too. On any exception, a
KeyboardInterrupt included, the temporary file is removed and ``path`` is left as it was.
``atomic_write(path, data)`` does the same for bytes or text already in memory.

The new file is created with ``permissions`` (default 0o600: owner only, what
``tempfile.mkstemp`` gave the hand-written copies this replaces), less the process's umask,
exactly as ``os.open`` applies it; pass 0o666 for what a plain ``open(path, "w")`` gives.
``fsync=False`` skips both syncs, for bulk files that can be rewritten (an export's images):
the name still never points at a torn file, but after a power cut the file may be empty.

``feedback_db/files.py`` is the same code for the store (feedback_db cannot import core);
``tests/core/runtime/test_files.py`` runs every test on both and checks that their code is
identical.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

TEMP_SUFFIX = ".tmp"


def temp_name(path: Path) -> Path:
    """A fresh temporary name beside ``path``: hidden, and ending in ``.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def _create(path: Path, permissions: int) -> tuple[int, Path]:
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_BINARY", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    while True:
        tmp = temp_name(path)
        try:
            return os.open(tmp, flags, permissions), tmp
        except FileExistsError:  # 48 random bits taken already: draw again
            continue


def _sync_folder(folder: Path) -> None:
    """Force the folder's entries (the rename) to disk where the OS allows a folder to be opened."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (SMB, some FUSE) refuse; the rename has happened
        pass
    finally:
        os.close(fd)


@overload
def atomic_writer(
    path: str | os.PathLike[str],
    kind: Literal["wb"] = "wb",
    *,
    permissions: int = 0o600,
    fsync: bool = True,
) -> contextlib.AbstractContextManager[IO[bytes]]: ...


@overload
def atomic_writer(
    path: str | os.PathLike[str],
    kind: Literal["w"],
    *,
    permissions: int = 0o600,
    fsync: bool = True,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> contextlib.AbstractContextManager[IO[str]]: ...


def atomic_writer(
    path: str | os.PathLike[str],
    kind: Literal["w", "wb"] = "wb",
    *,
    permissions: int = 0o600,
    fsync: bool = True,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> contextlib.AbstractContextManager[IO[Any]]:
    """Yield a file that replaces ``path`` when the ``with`` block ends without an exception.

    Args:
        path: the file to write; its folder must exist.
        kind: ``"wb"`` for bytes, ``"w"`` for text (then ``encoding`` and ``newline`` as ``open``).
        permissions: mode bits of the new file, less the umask (0o600 owner only; 0o666 as
            ``open`` gives).
        fsync: force the file and the folder's entry to disk before returning.

    Raises:
        OSError: the temporary file cannot be created, written or renamed; ``path`` is unchanged.
        ValueError: ``kind`` is neither ``"w"`` nor ``"wb"``.
    """
    if kind not in ("w", "wb"):
        raise ValueError(f"kind must be 'w' or 'wb'; got {kind!r}")
    return _writing(Path(path), kind, permissions, fsync, encoding, newline)


@contextlib.contextmanager
def _writing(
    target: Path, kind: str, permissions: int, fsync: bool, encoding: str, newline: str | None
) -> Iterator[IO[Any]]:
    fd, tmp = _create(target, permissions)
    try:
        raw = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    try:
        # Text is wrapped here, not by os.fdopen(fd, "w"), so a bad encoding still closes the
        # descriptor exactly once (through ``raw``; closing the wrapper closes ``raw`` too).
        with raw:
            fh: IO[Any] = raw
            if kind == "w":
                fh = io.TextIOWrapper(raw, encoding=encoding, newline=newline)
            with fh:
                yield fh
                fh.flush()
                if fsync:
                    os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _sync_folder(target.parent)


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    permissions: int = 0o600,
    fsync: bool = True,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> None:
    """Write ``data`` (bytes, or text in ``encoding``) to ``path`` atomically; see ``atomic_writer``.

    Raises:
        OSError: as ``atomic_writer``; ``path`` is unchanged.
    """
    if isinstance(data, bytes):
        with atomic_writer(path, "wb", permissions=permissions, fsync=fsync) as fb:
            fb.write(data)
    else:
        with atomic_writer(
            path, "w", permissions=permissions, fsync=fsync, encoding=encoding, newline=newline
        ) as ft:
            ft.write(data)


__all__ = ["TEMP_SUFFIX", "atomic_write", "atomic_writer", "temp_name"]
