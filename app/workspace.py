"""The workspace: one folder that holds the database, the images and the models.

Layout::

    <root>/medreview.db      SQLite store (unless workspace.json names another database URL)
    <root>/images/           case images, stored by content hash
    <root>/models/<version>/ the model registry (model_card.json, adapter/, reward_model/)
    <root>/exports/          expert_feedback.jsonl and the images it names
    <root>/runs/             temporary training output, moved into models/ on success
    <root>/workspace.json    optional settings: {"db_url": "postgresql+psycopg://...",
                                                 "review_pair": ["demo-v2", "demo-v3"]}

The default folder is the user's data folder (platformdirs); ``--workspace DIR`` or the
``MEDREVIEW_WORKSPACE`` variable chooses another.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.runtime.files import atomic_write

APP_NAME = "MedGemmaReviewer"
ENV_VAR = "MEDREVIEW_WORKSPACE"


def default_root() -> Path:
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False) / "demo-workspace"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, arg: str | os.PathLike[str] | None = None) -> Workspace:
        """The workspace named by ``arg``, else ``$MEDREVIEW_WORKSPACE``, else the default."""
        if arg:
            return cls(Path(arg).expanduser().resolve())
        env = os.environ.get(ENV_VAR)
        if env:
            return cls(Path(env).expanduser().resolve())
        return cls(default_root())

    @property
    def db_path(self) -> Path:
        return self.root / "medreview.db"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def settings_path(self) -> Path:
        return self.root / "workspace.json"

    @property
    def sqlite_file(self) -> Path | None:
        """The store's SQLite file when it is the workspace's own ``medreview.db`` (workspace.json
        names no ``db_url``), else None. Needs no SQLAlchemy (the start-up quick reader's test)."""
        try:
            named = self.settings().get("db_url") if self.settings_path.exists() else None
        except ValueError:
            return None
        return None if named else self.db_path

    @property
    def db_url(self) -> str:
        """The store's SQLAlchemy URL: workspace.json's ``db_url`` or the SQLite file."""
        if self.settings_path.exists():
            try:
                url = json.loads(self.settings_path.read_text(encoding="utf-8")).get("db_url")
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"{self.settings_path}: cannot read: {exc}") from exc
            if url:
                return str(url)
        # Built, not formatted: a folder name with "#" or "?" must not read as URL syntax.
        from sqlalchemy.engine import URL

        return URL.create("sqlite", database=str(self.db_path)).render_as_string(
            hide_password=False
        )

    def settings(self) -> dict[str, Any]:
        """workspace.json as a dict ({} when there is none).

        Raises:
            ValueError: the file exists but is not a JSON object (the message names it).
        """
        if not self.settings_path.exists():
            return {}
        try:
            data = json.loads(self.settings_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{self.settings_path}: cannot read: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{self.settings_path}: expected a JSON object")
        return data

    @property
    def review_pair(self) -> tuple[str, str] | None:
        """The two versions review compares (workspace.json ``review_pair``), or None for the
        default: the active version against the newest candidate."""
        try:
            pair = self.settings().get("review_pair")
        except ValueError:
            return None
        if (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(v, str) and v for v in pair)
            and pair[0] != pair[1]
        ):
            return pair[0], pair[1]
        return None

    def set_review_pair(self, pair: tuple[str, str] | None) -> None:
        """Remember the review pair in workspace.json (None: back to the default), keeping the
        file's other settings; written to a temporary file and renamed, so it is never half written."""
        data = self.settings()
        if pair is None:
            data.pop("review_pair", None)
        else:
            data["review_pair"] = [pair[0], pair[1]]
        self.root.mkdir(parents=True, exist_ok=True)
        # The file's own mode is kept (its db_url may hold a password, and its owner may have made
        # it private); a new file gets what open() gives, 0o666 less the umask.
        try:
            mode = stat.S_IMODE(self.settings_path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o666
        atomic_write(self.settings_path, json.dumps(data, indent=2) + "\n", permissions=mode)

    @property
    def read_only(self) -> bool:
        """True when the workspace cannot be written (a read-only disk or share, or
        ``MEDREVIEW_READ_ONLY=1``): it then opens read-only, for reading, review without
        saving, ``db info`` and export to a folder elsewhere."""
        if os.environ.get("MEDREVIEW_READ_ONLY", "").strip() in ("1", "true", "yes"):
            return True
        if not self.root.is_dir():
            return False
        if not os.access(self.root, os.W_OK):
            return True
        return self.db_path.exists() and not os.access(self.db_path, os.W_OK)

    def exists(self) -> bool:
        return self.db_path.exists() or self.settings_path.exists()

    def ensure(self) -> Workspace:
        """Create the folders (not the database) and return self."""
        for d in (self.root, self.images_dir, self.models_dir, self.exports_dir, self.runs_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self
