"""Unexpected errors, for users: one sentence on screen, the details in a log file it names.

No Python traceback ever reaches a clinician (on the command line or in a dialog): every verb and
the GUI's exception hook turn an unexpected error into ``describe_unexpected(exc)``, which writes
the traceback to ``<user log folder>/medreview.log`` (``MEDREVIEW_LOG_DIR`` overrides the folder)
and returns a sentence naming the error and that file.
"""

from __future__ import annotations

import os
import traceback
from datetime import UTC, datetime
from pathlib import Path

# What an error of these kinds means, in a user's words (the type name alone is not a sentence).
_WORDS: dict[type[BaseException], str] = {
    RecursionError: "the input is nested too deeply to read",
    MemoryError: "the computer ran out of memory",
    PermissionError: "permission denied",
    IsADirectoryError: "a folder was found where a file was expected",
    NotADirectoryError: "a file was found where a folder was expected",
}


def log_path() -> Path:
    """Where unexpected errors are logged (created on first use)."""
    folder = os.environ.get("MEDREVIEW_LOG_DIR")
    if folder:
        return Path(folder) / "medreview.log"
    from platformdirs import user_log_path

    return user_log_path("medreview", appauthor=False) / "medreview.log"


def log_unexpected(exc: BaseException, where: str) -> Path | None:
    """Append the traceback of ``exc`` to the log; the log's path, or None if it cannot be written."""
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z {where}\n")
            fh.write("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return path


def describe_unexpected(exc: BaseException, where: str) -> str:
    """One sentence for an error no check foresaw, naming the log that has the details."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    words = next((w for kind, w in _WORDS.items() if isinstance(exc, kind)), None)
    filename = getattr(exc, "filename", None)
    text = words or detail or type(exc).__name__
    if words and detail and not isinstance(exc, RecursionError | MemoryError):
        text = f"{words} ({detail})"
    elif filename and str(filename) not in text:
        text = f"{text}: {filename}"
    log = log_unexpected(exc, where)
    tail = f" (details in {log})" if log is not None else ""
    return f"{text[:400]}{tail}"
