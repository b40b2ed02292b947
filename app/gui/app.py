"""Starting the app: settings, first run, opening the store, the window.

Nothing here imports torch, transformers, trl, peft or open_clip: the window appears first and
all model work happens in child processes (``medreview train``, ``medreview compare``).

Store instances: the reading Store is opened first (this creates the database, or upgrades it
after a backup, before anything else touches it), by the start-up preload thread while Qt loads
(``app.gui.preload``), then used only by the GUI thread; the db lane opens the writing Store on
its own thread with ``upgrade=False``. A new reviewer is saved through the db lane like every
other write; the start waits for that one write.

This module imports Qt only inside its functions, after the preload has started.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.gui.preload import Preload
from app.settings import Settings, SettingsError, load_settings, save_settings
from app.workspace import Workspace

if TYPE_CHECKING:
    from app.gui.main_window import AppContext, MainWindow
    from app.qt import QApplication


def application(settings: Settings | None = None) -> QApplication:
    """The QApplication, created once, in the theme and text size of ``settings`` (the
    reading-room dark theme when none are given and no theme is applied yet)."""
    from app.gui.theme import apply_theme
    from app.qt import QApplication

    existing = QApplication.instance()
    if existing is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("MedGemma Reviewer")
        app.setOrganizationName("MedGemmaReviewer")
    elif isinstance(existing, QApplication):
        app = existing
    else:  # a QCoreApplication (no widgets) was made first in this process: no window can open
        raise RuntimeError(
            f"a {type(existing).__name__} is running; the window needs a QApplication"
        )
    if settings is not None:
        apply_theme(app, settings.theme, settings.font_scale)
    elif not app.styleSheet():
        apply_theme(app, Settings().theme, 1.0)
    return app


def open_context(
    workspace: Workspace,
    settings: Settings,
    settings_path: Path | None = None,
    preload: Preload | None = None,
) -> AppContext:
    """Open the workspace's store (reader and db lane) and register the reviewer.

    Raises:
        feedback_db.StoreError: the database cannot be opened or upgraded (message in words).
    """
    from app.gui.main_window import AppContext
    from app.gui.operations import Operations

    preload = (preload or Preload(workspace, settings)).result()
    reader, read_only = preload.reader, preload.read_only

    def open_writer() -> Any:
        # On the db lane's thread at its first write: SQLAlchemy is not loaded before that.
        from feedback_db import open_store

        return open_store(workspace.db_url, upgrade=False, read_only=read_only)

    ops = Operations(open_writer=open_writer)
    reviewer = preload.reviewer
    try:
        if reviewer is None and read_only:
            # Nothing can be saved here, so a new reviewer is not registered: the name is shown.
            from datetime import UTC, datetime

            from feedback_db import Reviewer

            reviewer = Reviewer(
                -1, settings.reviewer_name, settings.reviewer_role, datetime.now(UTC)
            )
        elif reviewer is None:
            job = ops.db.submit(
                lambda store, _p: store.ensure_reviewer(
                    settings.reviewer_name, settings.reviewer_role
                ),
                # The caller gets the exception from the future below and shows it itself.
                on_failure=lambda _exc: None,
            )
            reviewer = job.future.result(timeout=60)
    except BaseException:
        ops.shutdown()
        reader.close()
        raise
    return AppContext(workspace, settings, settings_path, reader, ops, reviewer, preload)


def build_window(
    workspace: Workspace, settings: Settings, settings_path: Path | None = None
) -> MainWindow:
    """The main window on an existing workspace (tests and the benchmark use this directly)."""
    preload = Preload(workspace, settings)  # runs while Qt loads below
    from app.gui.main_window import MainWindow

    application(settings)
    window = MainWindow(open_context(workspace, settings, settings_path, preload))
    if window.review.read_only:
        window.setWindowTitle(f"{window.windowTitle()} — read-only (ratings are not saved)")
    return window


def _load_settings(path: Path | None) -> Settings:
    from app.qt import QMessageBox

    try:
        return load_settings(path)
    except SettingsError as exc:
        answer = QMessageBox.question(
            None,
            "Settings cannot be read",
            f"{exc}\n\nStart with default settings? (The file is replaced when you save settings.)",
        )
        if answer != QMessageBox.StandardButton.Yes:
            raise
        return Settings()


def run(workspace_arg: str | None = None, settings_path: Path | None = None) -> int:
    """Open the app; returns the exit code of the event loop (2 when it could not start)."""
    try:
        settings: Settings | None = load_settings(settings_path)
    except SettingsError:
        settings = None  # asked about below, once Qt is up
    preload = None
    if settings is not None and settings.has_reviewer:
        workspace = Workspace.resolve(workspace_arg or settings.workspace or None)
        if workspace.exists():
            preload = Preload(workspace, settings)  # the store opens while Qt loads
    from app.gui.main_window import MainWindow
    from app.gui.operations import describe
    from app.gui.settings_dialog import FirstRunDialog
    from app.qt import QMessageBox

    app = application(settings)
    if settings is None:
        try:
            settings = _load_settings(settings_path)
        except SettingsError:
            return 2
        application(settings)
    workspace = Workspace.resolve(workspace_arg or settings.workspace or None)
    if preload is None and (not settings.has_reviewer or not workspace.exists()):
        dialog = FirstRunDialog(settings, workspace)
        if dialog.exec() != FirstRunDialog.DialogCode.Accepted or dialog.result_settings is None:
            return 2
        settings = dialog.result_settings
        application(settings)
        try:
            save_settings(settings, settings_path)
        except OSError as exc:
            QMessageBox.warning(
                None, "Settings not saved", f"Your name could not be remembered: {exc}"
            )
    try:
        window = MainWindow(open_context(workspace, settings, settings_path, preload))
    except Exception as exc:  # noqa: BLE001 (any failure to open is shown, in words, then exit)
        QMessageBox.critical(
            None, "Cannot open the workspace", f"{workspace.root}:\n{describe(exc)}"
        )
        return 2
    install_excepthook(window)
    window.show()
    return app.exec()


def install_excepthook(window: MainWindow) -> None:
    """Route an exception nobody caught on the GUI thread (in a slot, say) to the window's error
    dialog, in words, instead of a traceback on a terminal the clinician never sees (Anki's
    ``excepthook``). Tests do not install it: pytest-qt fails the test instead."""
    from app.errors import describe_unexpected

    previous = sys.excepthook

    def hook(kind, exc, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, exc, tb)
            return
        # The traceback goes to the log file the message names, never to a terminal or dialog.
        window.show_error("Unexpected error", describe_unexpected(exc, "the reviewer window"))

    sys.excepthook = hook
