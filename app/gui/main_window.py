"""The main window: the review and compare views in tabs, the menus and actions, the status bar
with the background work, and the one place where every worker error is shown, in words.

The window owns little logic: it wires the views to the review model and opens the dialogs.
What it does own:

* the layout it remembers (window geometry, the review panes' widths, the queue order), saved
  in the settings when it closes, and where a restart opens: the first unrated case;
* background work (the demo models after a first run, a retrain, a prediction run): each has a
  status-bar item that shows its progress and brings its dialog back (``app.gui.jobs``);
* new model versions wait for the clinician: when a retrain (or the demo models) adds versions,
  the case on screen keeps its verdicts and the clinician's unsaved choice, a notice says a new
  version is ready, and the queue and verdicts change when the clinician moves to another case;
* the keyboard overlay (F1 or ?), and Ctrl+Q to quit.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.gui import theme
from app.gui.compare_view import CompareView
from app.gui.jobs import JobDialog, JobIndicator, ask
from app.gui.operations import Operations, describe
from app.gui.predict_dialog import PredictDialog, missing_counts
from app.gui.preload import StartupReader
from app.gui.retrain_dialog import RetrainDialog
from app.gui.review_model import Filters, ReviewModel
from app.gui.review_view import KEY_HELP, ReviewView
from app.gui.settings_dialog import SettingsDialog
from app.gui.shortcut_overlay import ShortcutOverlay
from app.gui.transfer_dialogs import ExportDialog, ImportDialog
from app.qt import (
    QAction,
    QApplication,
    QByteArray,
    QHBoxLayout,
    QKeySequence,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QTimer,
    QWidget,
    Signal,
)
from app.settings import Settings, save_settings
from app.workspace import Workspace

MIN_WIDTH, MIN_HEIGHT = 1000, 700  # the window fits a 1024 x 768 screen, with room for a panel
# After the first case is on screen, the full Store opens behind it (app.gui.preload).
STORE_OPEN_DELAY_MS = 250


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


def first_unrated(ids: list[str], rated: set[str]) -> str | None:
    """Where a session resumes: the first case of the queue this reviewer has not rated."""
    return next((cid for cid in ids if cid not in rated), None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True) if text else b""
    except ValueError:
        return b""


class MainWindow(QMainWindow):
    """Tabs (Review, Compare), menus, a toolbar, the status bar and the error dialog."""

    firstCaseShown = Signal()

    def __init__(self, ctx: AppContext, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle(f"MedGemma Reviewer — {ctx.workspace.root.name}")
        self.errors: list[tuple[str, str]] = []  # every error shown, for the record and tests
        self.confirm = lambda title, text: ask(self, title, text)  # tests replace it
        pre = ctx.preload
        self.review = ReviewModel(
            ctx.reader,
            ctx.ops,
            ctx.reviewer,
            ctx.workspace.root,
            versions=pre.versions if pre is not None else False,
        )
        self.review.filters = (
            pre.filters if pre is not None else Filters(order=ctx.settings.queue_order)
        )
        self.review_view = ReviewView(self.review)
        self.compare_view = CompareView(ctx.workspace, ctx.reader)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.review_view, "Review")
        self.tabs.addTab(self.compare_view, "Compare versions")
        self.setCentralWidget(self.tabs)
        self.dialogs: dict[str, Any] = {}
        self.jobs: dict[str, JobIndicator] = {}
        self._first_shown = False
        self._pending_versions: tuple[str, str] | None = None  # (case on screen, what is new)
        self._build_actions()
        self._build_status_bar()
        self._overlay: ShortcutOverlay | None = None  # built on first use (F1), not at start
        self.setMinimumSize(MIN_WIDTH, MIN_HEIGHT)
        self._restore_layout()

        ctx.ops.sink.error.connect(self.show_error)
        self.review.message.connect(self.show_message)
        self.review.imageReady.connect(self._image_ready)
        self.review.caseChanged.connect(self._case_changed)
        self.compare_view.openCase.connect(self.open_case)
        if isinstance(ctx.reader, StartupReader):
            # The first case came from the quick reader: the Store opens once it is on screen
            # and painted (its import on another thread would slow the first paint).
            self.firstCaseShown.connect(self._open_store_soon)
            sink = ctx.ops.sink  # its signal crosses threads safely (queued to the GUI thread)
            ctx.reader.on_failure = lambda exc: sink.report(
                "The workspace's store could not be opened", describe(exc)
            )
        self.review_view.queue.order.currentIndexChanged.connect(self._order_changed)
        if pre is not None and pre.queue is not None:
            self.review.refresh(
                keep=first_unrated(pre.queue.ids, pre.queue.rated), result=pre.queue
            )
        else:
            self.review.refresh()
            resume = first_unrated(self.review.ids, self.review.rated)
            if (
                resume is not None
                and self.review.shown is not None
                and resume != self.review.shown.case.case_id
            ):
                self.review.open_case(resume)
        ctx.preload = None  # used once
        if self._first_shown and isinstance(ctx.reader, StartupReader):
            self._open_store_soon()
        self._maybe_start_demo_models()

    # -- building --------------------------------------------------------------------------
    def _build_actions(self) -> None:
        """The actions, in menus (with their keys) and the most used ones on the toolbar."""
        self.actions_by_name: dict[str, QAction] = {}
        self.menus: dict[str, Any] = {}
        table = (
            (
                "file",
                "&File",
                (
                    ("import", "Import cases or ratings…", "Ctrl+I", self.open_import),
                    ("export", "Export expert feedback…", "Ctrl+E", self.open_export),
                    None,
                    ("settings", "Settings…", "Ctrl+,", self.open_settings),
                    None,
                    ("quit", "Quit", "Ctrl+Q", self.close),
                ),
            ),
            (
                "view",
                "&View",
                (
                    ("review", "Review", "Ctrl+1", lambda: self.tabs.setCurrentIndex(0)),
                    ("compare", "Compare versions", "Ctrl+2", lambda: self.tabs.setCurrentIndex(1)),
                    None,
                    ("theme", "Dark reading-room theme", "Ctrl+Shift+D", self.toggle_theme),
                    ("larger", "Larger text", "Ctrl++", lambda: self.change_font_scale(+1)),
                    ("smaller", "Smaller text", "Ctrl+-", lambda: self.change_font_scale(-1)),
                ),
            ),
            (
                "model",
                "&Model",
                (
                    ("pair", "Review pair…", "Ctrl+Shift+P", self.open_review_pair),
                    ("predict", "Run model on these cases…", "Ctrl+P", self.open_predict),
                    ("retrain", "Retrain…", "Ctrl+T", self.open_retrain),
                ),
            ),
            ("help", "&Help", (("shortcuts", "Keyboard shortcuts", "F1", self.show_shortcuts),)),
        )
        bar = self.menuBar()
        for menu_name, title, items in table:
            menu = bar.addMenu(title)
            self.menus[menu_name] = menu
            for item in items:
                if item is None:
                    menu.addSeparator()
                    continue
                name, text, key, slot = item
                action = QAction(text, self)
                action.setShortcut(QKeySequence(key))
                action.setToolTip(
                    f"{text.rstrip('…')} ({QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText)})"
                )
                action.triggered.connect(lambda _checked=False, s=slot: s())
                menu.addAction(action)
                self.addAction(action)  # keys work with the menu bar hidden too
                self.actions_by_name[name] = action
        self.actions_by_name["shortcuts"].setShortcuts([QKeySequence("F1"), QKeySequence("?")])
        self.actions_by_name["theme"].setCheckable(True)
        self.actions_by_name["theme"].setChecked(self.ctx.settings.theme == "dark")
        tools = self.addToolBar("Actions")
        tools.setObjectName("mainToolbar")
        tools.setMovable(False)
        for name, text in (
            ("review", "Review"),
            ("compare", "Compare"),
            ("import", "Import…"),
            ("export", "Export…"),
            ("predict", "Run model…"),
            ("retrain", "Retrain…"),
            ("settings", "Settings…"),
        ):
            button_action = self.actions_by_name[name]
            button_action.setIconText(text)  # the toolbar's short label; menus keep the full text
            tools.addAction(button_action)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        status.setSizeGripEnabled(True)
        self.jobs_area = QWidget()
        self._jobs_layout = QHBoxLayout(self.jobs_area)
        self._jobs_layout.setContentsMargins(0, 0, 0, 0)
        self._jobs_layout.setSpacing(8)
        self.who = QLabel(f"{self.ctx.reviewer.name} ({self.ctx.reviewer.role})")
        self.who.setToolTip("The reviewer stored with every rating")
        self.where = QLabel(self.ctx.workspace.root.name)
        self.where.setToolTip(f"Workspace: {self.ctx.workspace.root}")
        status.addPermanentWidget(self.jobs_area)
        status.addPermanentWidget(self.who)
        status.addPermanentWidget(self.where)

    def shortcut_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """The overlay's contents: the review keys and every window action with its key."""
        window = []
        for action in self.actions_by_name.values():
            keys = " or ".join(
                k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()
            )
            if keys:
                window.append((keys, action.text().replace("&", "").rstrip("…")))
        return [*((title, list(keys)) for title, keys in KEY_HELP), ("Window", window)]

    # -- layout, remembered ----------------------------------------------------------------
    def _restore_layout(self) -> None:
        s = self.ctx.settings
        geometry = _unb64(s.window_geometry)
        if not (geometry and self.restoreGeometry(QByteArray(geometry))):
            screen = QApplication.primaryScreen()
            avail = screen.availableGeometry() if screen is not None else None
            if avail is not None and avail.width() > 0:
                # Most of the screen (a reading room's screens are large), at least 1440 x 900.
                self.resize(
                    min(avail.width(), max(1440, int(avail.width() * 0.9))),
                    min(avail.height(), max(900, int(avail.height() * 0.9))),
                )
            else:
                self.resize(1440, 900)
        self.review_view.restore_layout(_unb64(s.review_splitter))

    def layout_settings(self) -> Settings:
        """The settings with this window's layout and queue order in them."""
        return self.ctx.settings.updated(
            window_geometry=_b64(bytes(self.saveGeometry().data())),
            review_splitter=_b64(self.review_view.layout_state()),
            queue_order=self.review.filters.order,
        )

    def _order_changed(self, *_args) -> None:
        order = self.review_view.queue.order.currentData()
        if order and order != self.ctx.settings.queue_order:
            self._save_settings(self.ctx.settings.updated(queue_order=order), quiet=True)

    # -- messages and errors ---------------------------------------------------------------
    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 10000)
        self.statusBar().setToolTip(text)  # the whole message, if the bar is too narrow for it

    def show_error(self, title: str, message: str) -> None:
        """The one place worker errors are shown: a dialog that does not block the window."""
        self.errors.append((title, message))
        box = QMessageBox(
            QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self
        )
        box.setObjectName("errorDialog")
        box.setModal(False)
        box.open()
        self.dialogs["error"] = box
        self.show_message(f"{title}: {message}")

    @property
    def overlay(self) -> ShortcutOverlay:
        if self._overlay is None:
            self._overlay = ShortcutOverlay(self, self.shortcut_sections())
        return self._overlay

    def show_shortcuts(self) -> None:
        self.overlay.open()

    def _open_store_soon(self) -> None:
        reader = self.ctx.reader
        if isinstance(reader, StartupReader):
            QTimer.singleShot(STORE_OPEN_DELAY_MS, reader.start_loading)

    @property
    def first_case_shown(self) -> bool:
        """True once the first case (with its image, or the image's error) is on screen."""
        return self._first_shown

    def _case_changed(self, shown) -> None:
        if shown is None and not self._first_shown:
            self._first_shown = True
            self.firstCaseShown.emit()
        pending = self._pending_versions
        if pending is not None and (shown is None or shown.case.case_id != pending[0]):
            # The clinician has finished the case that was on screen: the new versions now apply.
            self._pending_versions = None
            self.review_view.show_notice("")
            self._reload(f"{pending[1]}: the queue and verdicts are updated")

    def _image_ready(self, *_args) -> None:
        if not self._first_shown:
            self._first_shown = True
            self.firstCaseShown.emit()

    # -- themes ----------------------------------------------------------------------------
    def apply_look(self, settings: Settings) -> None:
        """Apply the theme and text size of ``settings`` to the running app."""
        app = QApplication.instance()
        if app is not None:
            theme.apply_theme(app, settings.theme, settings.font_scale)
        self.actions_by_name["theme"].setChecked(settings.theme == "dark")
        self.review_view.fix_minimums()
        self.review_view.queue.measure_columns()
        self.review_view.queue.fit_columns()
        for widget in (self.review_view.image.viewer.viewport(), self.compare_view.heatmap):
            widget.update()
        self.review_view.queue.table.viewport().update()

    def toggle_theme(self) -> None:
        new = "light" if self.ctx.settings.theme == "dark" else "dark"
        self._save_settings(self.ctx.settings.updated(theme=new))

    def change_font_scale(self, direction: int) -> None:
        from app.settings import FONT_SCALES

        current = self.ctx.settings.font_scale
        ladder = sorted(set(FONT_SCALES) | {current})
        i = ladder.index(current) + direction
        if 0 <= i < len(ladder):
            self._save_settings(self.ctx.settings.updated(font_scale=ladder[i]))

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

    def _place(self, dialog: QWidget) -> None:
        """Put a job dialog over the queue and image, clear of the case and rating column."""
        frame = self.frameGeometry()
        width = min(dialog.width(), max(480, self.width() - self.review_view.right.width() - 40))
        dialog.resize(width, min(dialog.height(), self.height() - 80))
        dialog.move(frame.left() + 20, frame.top() + 60)

    def _job(self, name: str, title: str, dialog: Any, panel: Any) -> JobIndicator:
        """A status-bar item that follows ``panel`` and brings ``dialog`` back when clicked."""
        item = self.jobs.get(name)
        if item is None:
            item = JobIndicator(title)
            item.follow(panel)
            item.clicked.connect(lambda: (dialog.show(), dialog.raise_(), dialog.activateWindow()))
            self._jobs_layout.addWidget(item)
            self.jobs[name] = item
            item.hide()
        dialog.hiddenWhileRunning.connect(
            lambda: self.show_message(
                f"{title} goes on in the background; the status bar shows how far it is"
            )
        )
        return item

    def open_import(self) -> ImportDialog:
        def make() -> ImportDialog:
            d = ImportDialog(self.ctx.workspace, self)
            d.completed.connect(lambda state: self._after_import(state, d))
            d.runModelRequested.connect(self.open_predict)
            return d

        return self._dialog("import", make)

    def _after_import(self, state: str, dialog: ImportDialog) -> None:
        self._after_change(state, "Import")
        if state in ("done", "partial"):
            pair = self.review_pair_names()
            todo = sum(missing_counts(self.ctx.reader, pair).values()) if pair else 0
            dialog.offer_run_model(todo, pair)

    def open_export(self) -> ExportDialog:
        return self._dialog("export", lambda: ExportDialog(self.ctx.workspace, self))

    def review_pair_names(self) -> list[str]:
        """The versions whose verdicts review shows: the review pair, else what the store has."""
        if self.review.versions:
            return list(self.review.versions)
        return [v.name for v in self.ctx.reader.model_versions()][-2:]

    def open_review_pair(self) -> Any:
        """Choose the two versions review rates (a workspace setting); the queue follows."""
        from app.gui.queue_query import pick_versions
        from app.gui.review_pair_dialog import ReviewPairDialog

        versions = self.ctx.reader.model_versions()
        dialog = ReviewPairDialog(
            versions, self.ctx.workspace.review_pair, pick_versions(versions), self
        )
        self.dialogs["pair"] = dialog
        dialog.accepted.connect(lambda: self.review.set_pair(dialog.chosen()))
        dialog.open()
        return dialog

    def open_predict(self) -> PredictDialog:
        def make() -> PredictDialog:
            d = PredictDialog(
                self.ctx.workspace,
                self.ctx.reader,
                self.review_pair_names(),
                self.ctx.settings.device,
                self,
            )
            d.completed.connect(lambda state: self._after_change(state, "Running the models"))
            self._job("predict", "Run model", d, d.panel)
            self._place(d)
            return d

        dialog = self._dialog("predict", make)
        if not dialog.running:
            dialog.versions = self.review_pair_names()
            dialog.refresh()
        return dialog

    def open_retrain(self) -> RetrainDialog:
        def make() -> RetrainDialog:
            d = RetrainDialog(self.ctx.workspace, self.ctx.reader, self.ctx.settings.device, self)
            d.versionsChanged.connect(lambda names: self.new_versions(", ".join(names)))
            self._job("retrain", "Retrain", d, d.panel)
            self._place(d)
            return d

        return self._dialog("retrain", make)

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.ctx.settings, self, workspace=self.ctx.workspace)
        dialog.versionAdded.connect(lambda name: self.new_versions(name))
        dialog.accepted.connect(lambda: self._save_settings(dialog.result_settings))
        self.dialogs["settings"] = dialog
        dialog.open()
        return dialog

    def _save_settings(self, settings: Settings | None, quiet: bool = False) -> None:
        if settings is None:
            return
        look = (settings.theme, settings.font_scale) != (
            self.ctx.settings.theme,
            self.ctx.settings.font_scale,
        )
        try:
            save_settings(settings, self.ctx.settings_path)
        except OSError as exc:
            self.show_error("Settings not saved", f"{exc}")
            return
        self.ctx.settings = settings
        if look:
            self.apply_look(settings)
        if not quiet:
            self.show_message("Settings saved")

    # -- when the store changes ------------------------------------------------------------
    def _reload(self, message: str) -> None:
        """Re-read versions and queue, keeping the case on screen and the clinician's choice."""
        rating = self.review_view.rating
        shown = self.review.shown
        case_id = shown.case.case_id if shown is not None else None
        pair = (
            (shown.a.id, shown.b.id)
            if shown is not None and shown.a is not None and shown.b is not None
            else None
        )
        choice = (
            rating.preference(),
            rating.true_label(),
            rating.severity.currentIndex(),
            rating.rationale.toPlainText(),
        )
        self.review.reload()
        self.compare_view.reload_versions()
        now = self.review.shown
        same = (
            now is not None
            and now.case.case_id == case_id
            and now.a is not None
            and now.b is not None
            and (now.a.id, now.b.id) == pair
            and now.rating == (shown.rating if shown else None)
        )
        if same and any(choice):
            pref, label, severity, text = choice
            if pref:
                rating.set_preference(pref)
            if label:
                rating.set_true_label(label)
            rating.severity.setCurrentIndex(severity)
            rating.rationale.setPlainText(text)
        self.show_message(message)

    def _after_change(self, state: str, what: str) -> None:
        if state in ("done", "partial"):
            self._reload(f"{what} finished; the queue was reloaded")

    def new_versions(self, what: str) -> None:
        """New model versions exist (a retrain, the demo models, a registration). The case on
        screen keeps its verdicts and the clinician's choice; the new ones come with the next
        case, and a notice says so."""
        shown = self.review.shown
        if shown is None:
            self._reload(f"New version ready: {what}")
            return
        self._pending_versions = (shown.case.case_id, f"New version ready: {what}")
        self.review_view.show_notice(
            f"New model version ready: {what}. You keep these verdicts until you finish this case; "
            "the queue and the verdicts are updated when you move to the next one."
        )
        self.show_message(f"New version ready: {what}; it applies from the next case")

    # -- first run: the demo models in the background --------------------------------------
    def _maybe_start_demo_models(self) -> None:
        if not any(self.ctx.workspace.root.glob("demo_models_pending*.json")):
            return  # the usual case, decided without importing the demo verb
        from app.demo_plan import pending_models

        if pending_models(self.ctx.workspace):
            self.start_demo_models()

    def start_demo_models(self) -> JobDialog:
        """Train the full demo models in the background (``medreview demo models``)."""
        from app.demo_plan import MODELS_PLAN

        dialog = self.dialogs.get("demo-models")
        if dialog is None:
            dialog = JobDialog(
                "Training the demo models",
                "The demo opened with the knowledge-table heuristic and a quickly trained text model. "
                "The two full demo models (demo-v1 reads the text, demo-v2 also sees the image) are "
                "training now, at low priority, so you can review meanwhile; they take over from the "
                "next case once ready. Closing this window keeps them training.",
                self,
                plan=MODELS_PLAN,
                low_priority=True,
            )
            dialog.completed.connect(self._demo_models_finished)
            self.dialogs["demo-models"] = dialog
            self._job("demo-models", "Demo models", dialog, dialog.panel)
            self._place(dialog)
        if not dialog.running:
            dialog.start(
                [
                    "demo",
                    "models",
                    "--workspace",
                    str(self.ctx.workspace.root),
                    "--progress",
                    "json",
                ]
            )
        self.jobs["demo-models"].show()
        return dialog

    def _demo_models_finished(self, state: str) -> None:
        if state in ("done", "partial"):
            self.new_versions("demo-v1 and demo-v2 (the full demo models)")
        elif state != "canceled":
            self.show_error(
                "The demo models were not trained",
                f"{state.removeprefix('failed: ')}. The demo goes on with the quick model; "
                "the next start tries again.",
            )

    # -- closing ---------------------------------------------------------------------------
    def running_jobs(self) -> list[str]:
        names = {
            "retrain": "a retrain",
            "predict": "a prediction run",
            "demo-models": "the demo models",
        }
        return [
            words
            for key, words in names.items()
            if key in self.dialogs and getattr(self.dialogs[key], "running", False)
        ]

    def closeEvent(self, event) -> None:  # noqa: N802
        if getattr(self, "_closed", False):
            super().closeEvent(event)
            return
        running = self.running_jobs()
        if running and not self.confirm(
            "Quit MedGemma Reviewer?",
            f"Still running: {', '.join(running)}. Quitting stops it (the demo models go on "
            "at the next start; a retrain or prediction run must be started again).",
        ):
            event.ignore()
            return
        try:
            save_settings(self.layout_settings(), self.ctx.settings_path)
        except (OSError, ValueError) as exc:  # the layout is a convenience: never block quitting
            self.errors.append(("Layout not saved", str(exc)))
        for key in ("retrain", "predict", "demo-models"):
            dialog = self.dialogs.get(key)
            if dialog is not None and dialog.running:
                stop = getattr(dialog, "stop_now", None)
                if stop is not None:
                    stop(5000)
                else:
                    dialog.panel.cancel()
                    if not dialog.panel.process.wait(5000):
                        dialog.panel.process.kill()
                        dialog.panel.process.wait(2000)
        for dialog in list(self.dialogs.values()):
            dialog.close()
        self._closed = True
        if self._overlay is not None:
            self._overlay.hide()
        self.compare_view.shutdown()
        self.ctx.ops.shutdown()
        self.ctx.reader.close()
        super().closeEvent(event)
