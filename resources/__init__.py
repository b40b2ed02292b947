"""Data files shipped with the app: the clinical knowledge table, style sheet, icons, configs."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """Filesystem path of a shipped resource file."""
    return Path(str(resources.files(__name__).joinpath(name)))
