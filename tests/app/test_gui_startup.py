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
    # A returning reviewer (a new one is registered through the Store before the first case).
    _returning_reviewer(workspace)
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
    # The first case came from the quick reader (plain sqlite3): SQLAlchemy loads after it.
    assert result["sqlalchemy_loaded"] is False


def test_the_startup_reader_hands_over_to_the_store(window, qtbot) -> None:
    """After the first case the Store opens on a thread; from then on reads and filters are its."""
    from app.gui.preload import StartupReader
    from feedback_db import Store

    reader = window.ctx.reader
    assert isinstance(reader, StartupReader)
    qtbot.waitUntil(lambda: reader.ready, timeout=10000)
    assert isinstance(reader.store(), Store)
    assert reader._quick is None  # the sqlite3 connection is closed once the Store is there
    shown = window.review.shown.case.case_id
    assert reader.get_case(shown) == reader.store().get_case(shown)
    # A filter the quick reader never answers works (it is the Store's query).
    window.review_view.queue.modality.setCurrentIndex(1)
    qtbot.waitUntil(lambda: window.review.shown is not None, timeout=5000)
    assert window.errors == []


def test_a_read_the_quick_reader_cannot_answer_waits_for_the_store(workspace) -> None:
    from app.gui.preload import StartupReader
    from feedback_db import open_store
    from feedback_db.quick_reader import QuickReader

    ws = workspace["ws"]
    reader = StartupReader(QuickReader.open(ws.db_path), lambda: open_store(ws.db_url))
    try:
        assert not reader.ready  # nothing asked for the Store yet
        quick_ids = reader.query_case_ids(order="id")
        assert not reader.ready and reader._quick is not None  # answered by sqlite3
        some = reader.query_case_ids(modality="xray", order="id")  # a filter: the Store's
        assert reader.ready and reader._quick is None
        assert set(some) < set(quick_ids) and quick_ids == reader.query_case_ids(order="id")
        assert reader.info().up_to_date  # any Store method, through the Store
    finally:
        reader.close()


def test_closing_before_the_store_opens_leaves_nothing_open(workspace) -> None:
    """The window may close before its delayed ``start_loading`` fires: that call does nothing."""
    from app.gui.preload import StartupReader
    from feedback_db import open_store
    from feedback_db.quick_reader import QuickReader

    ws = workspace["ws"]
    reader = StartupReader(QuickReader.open(ws.db_path), lambda: open_store(ws.db_url))
    assert reader.get_case("no-such-case") is None
    reader.close()
    reader.start_loading()
    assert reader._loader is None and reader._quick is None


def test_a_store_that_fails_to_open_later_fails_in_words(workspace) -> None:
    from app.gui.preload import StartupReader
    from feedback_db import StoreError
    from feedback_db.quick_reader import QuickReader

    def broken():
        raise StoreError("cannot open /x/medreview.db: disk I/O error")

    heard: list[BaseException] = []
    reader = StartupReader(QuickReader.open(workspace["ws"].db_path), broken, heard.append)
    try:
        reader.start_loading()
        reader._loader.join()
        assert [str(e) for e in heard] == ["cannot open /x/medreview.db: disk I/O error"]
        assert reader.model_versions()  # the first screen's reads go on from sqlite3
        with pytest.raises(StoreError, match="disk I/O error"):
            reader.query_case_ids(modality="xray")  # a filter needs the Store
        assert len(heard) == 1  # told once
    finally:
        reader.close()


def _returning_reviewer(workspace) -> None:
    from feedback_db import open_store

    store = open_store(workspace["ws"].db_url)
    store.ensure_reviewer("Dr Test", "radiologist")
    store.close()


def test_a_store_failing_to_open_behind_the_first_case_is_reported_and_review_goes_on(
    workspace, settings_file, qtbot, monkeypatch
) -> None:
    from app.gui import preload
    from app.gui.app import build_window
    from app.settings import load_settings
    from feedback_db import StoreError

    _returning_reviewer(workspace)

    def broken(self):
        raise StoreError("cannot read /x/medreview.db: disk I/O error")

    monkeypatch.setattr(preload.Preload, "_open_store", broken)
    win = build_window(workspace["ws"], load_settings(settings_file), settings_file)
    qtbot.addWidget(win)
    try:
        win.show()
        qtbot.waitUntil(lambda: win.first_case_shown, timeout=10000)
        # Told at once, in words, without asking for anything.
        qtbot.waitUntil(lambda: bool(win.errors), timeout=10000)
        assert win.errors[0] == (
            "The workspace's store could not be opened",
            "cannot read /x/medreview.db: disk I/O error",
        )
        first = win.review.shown.case.case_id
        win.review.next()  # the first screen's reads go on from the quick reader
        assert win.review.shown.case.case_id != first
        with pytest.raises(StoreError, match="disk I/O error"):
            win.ctx.reader.info()  # a read only the Store answers says why it cannot
    finally:
        win.dialogs["error"].close()
        win.close()


def test_a_rating_saved_just_before_closing_is_kept(workspace, settings_file, qtbot) -> None:
    """The db lane's answer arrives after the window closed its reader: it must still read."""
    from app.gui.app import build_window
    from app.settings import load_settings
    from feedback_db import open_store

    _returning_reviewer(workspace)
    win = build_window(workspace["ws"], load_settings(settings_file), settings_file)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.first_case_shown, timeout=10000)
    shown = win.review.shown
    label = shown.a.label if shown.a.label in ("ERROR", "CORRECT") else "CORRECT"
    assert win.review.save("a", label, "high" if label == "ERROR" else None, None, advance=False)
    win.close()
    qtbot.wait(300)  # pytest-qt fails the test if the late callback raises
    store = open_store(workspace["ws"].db_url)
    try:
        reviewer = next(r for r in store.reviewers() if r.name == "Dr Test")
        assert store.current_rating(shown.case.case_id, reviewer.id) is not None
    finally:
        store.close()


def test_a_store_named_in_workspace_json_opens_through_the_store(workspace, settings_file, qtbot):
    """Only the workspace's own SQLite file takes the quick path (not a db_url, as PostgreSQL)."""
    import json

    from app.gui.app import build_window
    from app.gui.preload import StartupReader
    from app.settings import load_settings

    ws = workspace["ws"]
    ws.settings_path.write_text(json.dumps({"db_url": f"sqlite:///{ws.db_path}"}))
    assert ws.sqlite_file is None
    win = build_window(ws, load_settings(settings_file), settings_file)
    qtbot.addWidget(win)
    try:
        assert not isinstance(win.ctx.reader, StartupReader)
        assert win.review.shown is not None
    finally:
        win.close()


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


def test_a_store_that_needs_an_upgrade_is_opened_and_upgraded_first(
    tmp_path, settings_file, qtbot
) -> None:
    """The quick reader declines an older schema: the window opens through the Store, which
    upgrades it (after its backup), and shows the case."""
    import shutil

    from app.gui.app import build_window
    from app.gui.preload import StartupReader
    from app.settings import load_settings
    from app.workspace import Workspace
    from feedback_db.quick_reader import QuickReader
    from feedback_db.revision import HEAD
    from tests.feedback_db.old_stores import DATA

    ws = Workspace(tmp_path / "old-ws").ensure()
    shutil.copy(DATA / "store_0002.db", ws.db_path)
    assert QuickReader.open(ws.db_path) is None
    win = build_window(ws, load_settings(settings_file), settings_file)
    qtbot.addWidget(win)
    try:
        assert not isinstance(win.ctx.reader, StartupReader)
        assert win.ctx.reader.info().revision == HEAD
        assert win.review.shown is not None
        assert list(ws.root.glob("medreview.db.bak-0002-*"))  # the backup came first
    finally:
        win.close()
