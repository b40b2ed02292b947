"""Paths that must stay inside a folder: manifest images inside their images root.

``resolve_inside(root, ref)`` walks ``ref`` one component at a time from ``root``, following
symbolic links itself, so a link is resolved *before* anything it points at is touched: a path
that leads outside the root (``../``, an absolute path elsewhere, a link to ``/etc``) is refused
without a single look outside, and so without saying whether the target exists.
``feedback_db.images.resolve_inside`` is the same function for ratings files (feedback_db cannot
import core); a test keeps the two equal.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePath

MAX_LINKS = 40  # what Linux allows when it resolves a path


class OutsideRoot(ValueError):
    """``ref`` leads outside ``root``. The message never says whether the target exists."""

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
    """The real path of ``ref`` (relative to ``root``, or absolute) with symlinks resolved.

    Only ``root`` itself and entries below it are ever looked at (``lstat``/``readlink``). A
    component that does not exist ends the walk; the rest is joined lexically, so the result may
    not exist, but it is inside ``root`` either way.

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
