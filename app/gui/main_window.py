"""The main window: the review and compare views in tabs, the actions, the status bar, and the
one place where every worker error is shown in a dialog, in words.

The window owns no logic: it wires the views to the review model and opens the dialogs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.gui.compare_view import CompareView
from app.gui.operations import Operations
from app.gui.retrain_dialog import RetrainDialog
from app.gui.review_model import Filters, ReviewModel
from app.gui.review_view import ReviewView
from app.gui.settings_dialog import SettingsDialog
from app.gui.transfer_dialogs import ExportDialog, ImportDialog
from app.qt import QAction, QKeySequence, QLabel, QMainWindow, QMessageBox, QTabWidget, Signal
from app.settings import Settings, save_settings
from app.workspace import Workspace


@dataclass
class AppContext:
    """What the window works on: the workspace, settings, stores, lanes and the reviewer."""

    workspace: Workspace
    settings: Settings
    settings_path: Path | None
    reader: Any  # the GUI thread's Store (reads)
    ops: Operations  # the db lane owns the writing Store
    reviewer: Any
    preload: Any = None  # the start-up Preload: versions and the first queue, already queried


class MainWindow(QMainWindow):
    """Tabs (Review, Compare), a toolbar of actions, the status bar and the error dialog."""

    firstCaseShown = Signal()

    def __init__(self, ctx: AppContext, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle(f"MedGemma Reviewer — {ctx.workspace.root.name}")
        self.resize(1440, 900)
        self.errors: list[tuple[str, str]] = []  # every error shown, for the record and tests
        pre = ctx.preload
        self.review = ReviewModel(ctx.reader, ctx.ops, ctx.reviewer, ctx.workspace.root,
                                  versions=pre.versions if pre is not None else False)
        self.review.filters = pre.filters if pre is not None else Filters(order=ctx.settings.queue_order)
        self.review_view = ReviewView(self.review)
        self.compare_view = CompareView(ctx.workspace, ctx.reader)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.review_view, "Review")
        self.tabs.addTab(self.compare_view, "Compare versions")
        self.setCentralWidget(self.tabs)
        self.dialogs: dict[str, Any] = {}
        self._first_shown = False
        self._build_actions()
        self.who = QLabel(f"Reviewer: {ctx.reviewer.name} ({ctx.reviewer.role})")
        self.where = QLabel(f"Workspace: {ctx.workspace.root}")
        self.statusBar().addPermanentWidget(self.who)
        self.statusBar().addPermanentWidget(self.where)

        ctx.ops.sink.error.connect(self.show_error)
        self.review.message.connect(self.show_message)
        self.review.imageReady.connect(self._image_ready)
        self.review.caseChanged.connect(self._case_changed)
        self.compare_view.openCase.connect(self.open_case)
        self.review.refresh(result=pre.queue if pre is not None else None)
        ctx.preload = None  # used once

    def _build_actions(self) -> None:
        bar = self.addToolBar("Actions")
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        self.actions_by_name: dict[str, QAction] = {}
        for name, text, key, slot in (
            ("review", "Review", "Ctrl+1", lambda: self.tabs.setCurrentIndex(0)),
            ("compare", "Compare versions", "Ctrl+2", lambda: self.tabs.setCurrentIndex(1)),
            ("import", "Import…", "Ctrl+I", self.open_import),
            ("export", "Export…", "Ctrl+E", self.open_export),
            ("retrain", "Retrain…", "Ctrl+T", self.open_retrain),
            ("settings", "Settings…", "Ctrl+,", self.open_settings),
        ):
            action = QAction(text, self)
            action.setShortcut(QKeySequence(key))
            action.setToolTip(f"{text.rstrip('…')} ({key})")
            action.triggered.connect(slot)
            bar.addAction(action)
            self.actions_by_name[name] = action

    # -- messages and errors ---------------------------------------------------------------
    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 10000)

    def show_error(self, title: str, message: str) -> None:
        """The one place worker errors are shown: a dialog that does not block the window."""
        self.errors.append((title, message))
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        box.setModal(False)
        box.open()
        self.dialogs["error"] = box
        self.show_message(f"{title}: {message}")

    @property
    def first_case_shown(self) -> bool:
        """True once the first case (with its image, or the image's error) is on screen."""
        return self._first_shown

    def _case_changed(self, shown) -> None:
        if shown is None and not self._first_shown:
            self._first_shown = True
            self.firstCaseShown.emit()

    def _image_ready(self, *_args) -> None:
        if not self._first_shown:
            self._first_shown = True
            self.firstCaseShown.emit()

    # -- actions ---------------------------------------------------------------------------
    def open_case(self, case_id: str) -> None:
        self.tabs.setCurrentIndex(0)
        self.review.open_case(case_id)

    def _dialog(self, name: str, make) -> Any:
        dialog = self.dialogs.get(name)
        if dialog is None:
            dialog = make()
            self.dialogs[name] = dialog
        dialog.show()
        dialog.raise_()
        return dialog

    def open_import(self) -> ImportDialog:
        def make() -> ImportDialog:
            d = ImportDialog(self.ctx.workspace, self)
            d.completed.connect(lambda state: self._after_change(state, "Import"))
            return d
        return self._dialog("import", make)

    def open_export(self) -> ExportDialog:
        return self._dialog("export", lambda: ExportDialog(self.ctx.workspace, self))

    def open_retrain(self) -> RetrainDialog:
        def make() -> RetrainDialog:
            d = RetrainDialog(self.ctx.workspace, self.ctx.reader, self.ctx.settings.device, self)
            d.versionsChanged.connect(lambda: self._after_change("done", "Retrain"))
            return d
        return self._dialog("retrain", make)

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.ctx.settings, self, workspace=self.ctx.workspace)
        dialog.versionAdded.connect(lambda _name: self._after_change("done", "Model registration"))
        dialog.accepted.connect(lambda: self._save_settings(dialog.result_settings))
        self.dialogs["settings"] = dialog
        dialog.open()
        return dialog

    def _save_settings(self, settings: Settings | None) -> None:
        if settings is None:
            return
        try:
            save_settings(settings, self.ctx.settings_path)
        except OSError as exc:
            self.show_error("Settings not saved", f"{exc}")
            return
        self.ctx.settings = settings
        self.show_message("Settings saved")

    def _after_change(self, state: str, what: str) -> None:
        if state in ("done", "partial"):
            self.review.reload()
            self.compare_view.reload_versions()
            self.show_message(f"{what} finished; the queue was reloaded")

    # -- closing ---------------------------------------------------------------------------
    def closeEvent(self, event) -> None:  # noqa: N802
        for dialog in list(self.dialogs.values()):
            dialog.close()
        self.compare_view.shutdown()
        self.ctx.ops.shutdown()
        self.ctx.reader.close()
        super().closeEvent(event)
