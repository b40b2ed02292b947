"""The window shows its first case before any ML library is imported (a clean interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_window_shows_first_case_without_ml_libraries(workspace, settings_file) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "MEDREVIEW_SETTINGS": str(settings_file)}
    proc = subprocess.run(
        [sys.executable, "-m", "app.gui.startup_probe", str(workspace["root"])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["visible"] is True
    assert result["case_id"] in workspace["case_ids"]
    assert result["heavy"] == [], f"imported before the first case: {result['heavy']}"
    assert result["errors"] == []


def test_medreview_gui_verb_is_registered() -> None:
    from app.cli.main import build_parser

    args = build_parser().parse_args(["gui", "--workspace", "/tmp/x"])
    assert args.func.__module__ == "app.cli.gui"


def test_only_app_qt_imports_the_qt_binding() -> None:
    """A binding change touches one file: nothing under app/ but app/qt.py names PySide6."""
    offenders = []
    for path in (ROOT / "app").rglob("*.py"):
        if path == ROOT / "app" / "qt.py":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith(("import PySide6", "from PySide6")):
                offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert offenders == []


def test_signal_emit_keeps_reference_counts() -> None:
    """PySide6 6.12.0 returns a borrowed True from ``emit``: every emit loses a reference to
    True, and Python 3.11 aborts at exit (pyproject excludes that version; this catches another)."""
    from app.qt import QObject, Signal

    class Probe(QObject):
        fired = Signal(int)

    probe = Probe()
    before = sys.getrefcount(True)
    for i in range(100):
        probe.fired.emit(i)
    assert sys.getrefcount(True) >= before - 5


def test_a_workspace_that_cannot_be_opened_fails_in_words(tmp_path, settings_file, qtbot) -> None:
    from app.gui.app import build_window
    from app.settings import load_settings
    from app.workspace import Workspace
    from feedback_db import StoreError

    ws = Workspace(tmp_path / "broken").ensure()
    ws.db_path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(
        StoreError, match=r"cannot read .*broken.*not a database"
    ):  # the file and the reason
        build_window(ws, load_settings(settings_file), settings_file)


def test_uncaught_gui_exceptions_reach_the_error_dialog(window, monkeypatch) -> None:
    from app.gui.app import install_excepthook

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    install_excepthook(window)
    try:
        raise ValueError("the case list could not be read")
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    from app.errors import log_path

    # One sentence in the dialog, naming the log that holds the traceback (never the traceback).
    assert window.errors[-1] == (
        "Unexpected error",
        f"the case list could not be read (details in {log_path()})",
    )
    assert "Traceback" in log_path().read_text() and "Traceback" not in window.errors[-1][1]
    window.dialogs["error"].close()
