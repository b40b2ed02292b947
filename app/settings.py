"""The app's settings: one validated, versioned model, stored as JSON in the user's config folder.

napari's ``settings/`` idea, small: ``Settings`` is a frozen dataclass whose every field has a
default and help text and is validated in ``__post_init__``; the file carries a ``version`` and
``MIGRATIONS`` bring an old file up to date on load. A file that cannot be read is not silently
replaced: ``load_settings`` raises ``SettingsError`` with the path and the reason, and the GUI
shows it (and offers to start from defaults). Tests point ``settings_path()`` at a temporary
folder (``XDG_CONFIG_HOME`` in tests/conftest.py, or an explicit path).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from app.workspace import APP_NAME
from core.runtime.files import atomic_write

SETTINGS_VERSION = 3
DEVICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")
ROLES: tuple[str, ...] = ("radiologist", "pathologist", "physician", "resident", "nurse", "other")
THEMES: tuple[str, ...] = ("dark", "light")
#: text sizes offered in Settings (1.0 is the style sheet's own size)
FONT_SCALES: tuple[float, ...] = (0.9, 1.0, 1.15, 1.3, 1.5)
FONT_SCALE_RANGE = (0.75, 2.0)


class SettingsError(ValueError):
    """The settings file or a value is invalid; the message names the file or field."""


@dataclass(frozen=True)
class Settings:
    """What the app remembers between runs."""

    version: int = field(default=SETTINGS_VERSION, metadata={"help": "schema version of this file"})
    reviewer_name: str = field(default="", metadata={"help": "the clinician's name on ratings"})
    reviewer_role: str = field(default="radiologist", metadata={"help": "the clinician's role"})
    workspace: str = field(
        default="",
        metadata={"help": "workspace folder; empty: $MEDREVIEW_WORKSPACE or the default"},
    )
    device: str = field(default="auto", metadata={"help": "training device: auto, cuda, mps, cpu"})
    vlm_model: str = field(
        default="google/medgemma-4b-it", metadata={"help": "vision-language model id or folder"}
    )
    clip_model: str = field(
        default="hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        metadata={"help": "open_clip image encoder id or folder (clip-llm back end)"},
    )
    llm_model: str = field(
        default="", metadata={"help": "causal LM id or folder (clip-llm back end)"}
    )
    queue_order: str = field(default="uncertainty", metadata={"help": "uncertainty or id"})
    theme: str = field(
        default="dark",
        metadata={"help": "dark (the reading-room default: dim room, bright image) or light"},
    )
    font_scale: float = field(
        default=1.0, metadata={"help": "text size as a multiple of the style sheet's (0.75 to 2)"}
    )
    review_splitter: str = field(
        default="",
        metadata={"help": "widths of queue, image and case panes (Qt splitter state, base64)"},
    )
    window_geometry: str = field(
        default="", metadata={"help": "the main window's size and place (Qt geometry, base64)"}
    )

    def __post_init__(self) -> None:
        if self.version != SETTINGS_VERSION:
            raise SettingsError(f"version must be {SETTINGS_VERSION}; got {self.version!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "font_scale":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise SettingsError(f"font_scale must be a number; got {value!r}")
            elif f.name != "version" and not isinstance(value, str):
                raise SettingsError(f"{f.name} must be text; got {value!r}")
        lo, hi = FONT_SCALE_RANGE
        if not lo <= float(self.font_scale) <= hi:
            raise SettingsError(
                f"font_scale must be between {lo} and {hi}; got {self.font_scale!r}"
            )
        if self.theme not in THEMES:
            raise SettingsError(f"theme must be one of {', '.join(THEMES)}; got {self.theme!r}")
        if len(self.reviewer_name) > 200:
            raise SettingsError("reviewer_name is longer than 200 characters")
        if self.reviewer_name != self.reviewer_name.strip():
            raise SettingsError("reviewer_name has leading or trailing spaces")
        if not self.reviewer_role.strip():
            raise SettingsError("reviewer_role must not be empty")
        if self.device not in DEVICES:
            raise SettingsError(f"device must be one of {', '.join(DEVICES)}; got {self.device!r}")
        if self.queue_order not in ("uncertainty", "id"):
            raise SettingsError(f"queue_order must be uncertainty or id; got {self.queue_order!r}")

    @property
    def has_reviewer(self) -> bool:
        return bool(self.reviewer_name)

    def updated(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (validated)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Settings from a file's contents, migrated to the current version first.

        Raises:
            SettingsError: a value is invalid, a field is unknown, or the version is newer.
        """
        data = migrate(dict(data))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(unknown)}")
        return cls(**data)


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Version 1 called the reviewer "user" and had no queue order.
    if "user" in data:
        data["reviewer_name"] = data.pop("user")
    data.setdefault("queue_order", "uncertainty")
    return data


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    # Version 3 added the theme, the text size and the remembered layout. Someone who used the
    # app before keeps the light look they had; dark is offered in Settings (and is the default
    # for a new reviewer).
    data.setdefault("theme", "light")
    data.setdefault("font_scale", 1.0)
    data.setdefault("review_splitter", "")
    data.setdefault("window_geometry", "")
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a settings dict from any older version to ``SETTINGS_VERSION``."""
    version = data.get("version", 1)
    if not isinstance(version, int) or version < 1:
        raise SettingsError(f"version must be a positive integer; got {version!r}")
    if version > SETTINGS_VERSION:
        raise SettingsError(
            f"settings version {version} is newer than this program ({SETTINGS_VERSION})"
        )
    while version < SETTINGS_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
        data["version"] = version
    return data


def settings_path() -> Path:
    """``<user config>/MedGemmaReviewer/settings.json`` (``$MEDREVIEW_SETTINGS`` overrides)."""
    env = os.environ.get("MEDREVIEW_SETTINGS")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False) / "settings.json"


def load_settings(path: Path | None = None) -> Settings:
    """The saved settings, or defaults when there is no file yet.

    Raises:
        SettingsError: the file exists but is unreadable or invalid; the message names it.
    """
    path = path or settings_path()
    if not path.exists():
        return Settings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read settings: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: settings must be a JSON object")
    try:
        return Settings.from_dict(data)
    except (SettingsError, TypeError) as exc:
        raise SettingsError(f"{path}: {exc}") from exc


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings atomically (temporary file, then rename; owner-only, 0o600); returns
    the path."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(settings.to_dict(), indent=2, sort_keys=True))
    return path
