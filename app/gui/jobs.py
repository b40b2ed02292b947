"""Work that goes on in the background, and the status-bar items that follow it.

A long verb (training the demo models, a retrain, running a model on new cases) runs as a child
process in a dialog's ``ProcessPanel``. Closing the dialog only hides it: the work goes on, and a
``JobIndicator`` in the status bar says how far it is ("Retrain: 34% · about 2 min left");
clicking it brings the dialog back. Cancel is a button in the dialog, and it asks first.

``JobDialog`` is the plain dialog for a verb with nothing else to show (the demo models, a
prediction run); the retrain dialog has its own, with the live plot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.gui.process_panel import ProcessPanel
from app.gui.progress_plan import Plan
from app.qt import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)


def ask(parent: QWidget, title: str, text: str) -> bool:
    """Yes/No question, No by default (tests replace ``JobDialog.confirm`` instead)."""
    answer = QMessageBox.question(
        parent,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


class JobIndicator(QWidget):
    """A status-bar item for one background job: its name and progress; click to open it."""

    clicked = Signal()

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("jobIndicator")
        self.title = title
        self.button = QPushButton(title)
        self.button.setObjectName("jobButton")
        self.button.setFlat(True)
        self.button.setToolTip(f"{title}: click to show its progress and log")
        self.bar = QProgressBar()
        self.bar.setObjectName("jobProgress")
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(70)
        self.bar.setFixedHeight(12)
        self.bar.setRange(0, 0)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.setSpacing(4)
        layout.addWidget(self.button)
        layout.addWidget(self.bar)
        self.button.clicked.connect(self.clicked)
        self._hide_timer = QTimer(self)
        self._hide_timer.setSingleShot(True)
        self._hide_timer.timeout.connect(self.hide)
        self._panel: ProcessPanel | None = None

    def follow(self, panel: ProcessPanel) -> None:
        """Show ``panel``'s run here from now on."""
        self._panel = panel
        panel.summaryChanged.connect(self._summary)
        panel.finished.connect(self._finished)

    def text(self) -> str:
        return self.button.text()

    def _summary(self, summary: str) -> None:
        self._hide_timer.stop()
        self.show()
        self.button.setText(f"{self.title}: {summary}" if summary else self.title)
        fraction = self._panel.fraction() if self._panel is not None else None
        if fraction is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(round(1000 * fraction))
        self.bar.setVisible(True)

    def _finished(self, _code: int, state: str) -> None:
        words = {"done": "finished", "partial": "finished", "canceled": "canceled"}.get(
            state, "failed"
        )
        self.button.setText(f"{self.title}: {words}")
        self.button.setToolTip(f"{self.title} {words}: click for the details and the log")
        self.bar.setVisible(False)
        self._hide_timer.start(60_000)  # then out of the way of the status messages


class JobDialog(QDialog):
    """A verb in the background: its progress and log, Hide (it goes on) and Cancel (asks)."""

    completed = Signal(str)  # final state
    hiddenWhileRunning = Signal()

    def __init__(
        self,
        title: str,
        intro: str,
        parent: QWidget | None = None,
        plan: Plan | None = None,
        low_priority: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setModal(False)
        self.resize(640, 420)
        self.confirm: Callable[[str, str], bool] = lambda t, x: ask(self, t, x)
        self.intro = QLabel(intro)
        self.intro.setWordWrap(True)
        self.panel = ProcessPanel(self, log_lines=6, show_problems=False)
        self.panel.set_plan(plan)
        self.panel.low_priority = low_priority
        self.buttons = QDialogButtonBox()
        self.cancel_button = self.buttons.addButton(
            "Cancel…", QDialogButtonBox.ButtonRole.RejectRole
        )
        self.hide_button = self.buttons.addButton(
            "Hide (it goes on)", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.cancel_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.panel, 1)
        layout.addWidget(self.buttons)
        self.cancel_button.clicked.connect(self.cancel)
        self.hide_button.clicked.connect(self.reject)
        self.panel.finished.connect(self._finished)
        self._queue: list[list[str]] = []

    @property
    def running(self) -> bool:
        return self.panel.running

    def start(self, verb_args: Sequence[str], *more: Sequence[str]) -> None:
        """Run ``verb_args``, then each of ``more`` in turn (stopping at the first failure)."""
        self._queue = [list(a) for a in more]
        self.cancel_button.setEnabled(True)
        self.hide_button.setText("Hide (it goes on)")
        self.panel.start(list(verb_args))

    def cancel(self) -> bool:
        """Cancel, after asking; returns True when the cancel was sent."""
        if not self.panel.running:
            return False
        if not self.confirm(self.windowTitle(), "Cancel this work? What is not finished is lost."):
            return False
        self._queue.clear()
        self.cancel_button.setEnabled(False)
        self.panel.cancel()
        return True

    def _finished(self, _code: int, state: str) -> None:
        if state in ("done", "partial") and self._queue:
            self.panel.start(self._queue.pop(0), clear=False)
            return
        self.cancel_button.setEnabled(False)
        self.hide_button.setText("Close")
        self.completed.emit(state)

    def reject(self) -> None:
        """Close, Esc and the window's close box all come here: the dialog hides, and the work
        goes on (the status bar follows it). Only Cancel stops it."""
        if self.panel.running:
            self.hiddenWhileRunning.emit()
        super().reject()
