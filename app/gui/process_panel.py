"""A panel that runs one ``medreview`` verb in a child process and shows how it goes.

Used by the import, export, demo-creation and retrain dialogs: the stage and its progress bar,
the time left, the problems the verb reported (one row per rejected line or file, as the verb
wrote them on stderr), and the full log. The outcome arrives as ``finished(code, state)`` where
``state`` is "done", "partial" (some rows rejected), "canceled" or "failed: <reason in words>"; a failure is also written in the
status line in red, so it is never silent.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.gui.operations import ChildProcess
from app.qt import (
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QProgressBar,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from core.progress import ProgressEvent


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min left"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s left"
    return f"{seconds} s left"


class ProcessPanel(QWidget):
    """Stage, progress, time left, problems and log of one child process."""

    finished = Signal(int, str)
    progressed = Signal(object)  # ProgressEvent

    def __init__(self, parent=None, log_lines: int = 8, show_problems: bool = True) -> None:
        """``show_problems``: list stderr lines as problems (import, export: one line per
        rejected row); off for training, whose stderr carries library warnings, not rejections."""
        super().__init__(parent)
        self.show_problems = show_problems
        self.process = ChildProcess(self)
        self.status = QLabel("Not started")
        self.status.setObjectName("processStatus")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.bar.setValue(0)
        self.eta = QLabel()
        self.eta.setObjectName("hint")
        self.problems = QListWidget()
        self.problems.setObjectName("problemList")
        self.problems.setMaximumHeight(130)
        self.problems.setWordWrap(True)
        self.problems.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.problems_title = QLabel("Problems reported: none")
        # Shown only once something is reported, so an empty red box never alarms anyone.
        self.problems.setVisible(False)
        self.problems_title.setVisible(False)
        self.log = QPlainTextEdit()
        self.log.setObjectName("processLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setMinimumHeight(log_lines * 16)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status)
        layout.addWidget(self.bar)
        layout.addWidget(self.eta)
        layout.addWidget(self.problems_title)
        layout.addWidget(self.problems)
        layout.addWidget(QLabel("Log"))
        layout.addWidget(self.log, 1)
        self.process.progress.connect(self._on_progress)
        self.process.line.connect(self._on_line)
        self.process.problem.connect(self._on_problem)
        self.process.finished.connect(self._on_finished)
        self.state: str | None = None

    @property
    def running(self) -> bool:
        return self.process.running

    def start(self, verb_args: Sequence[str]) -> None:
        self.problems.clear()
        self.problems_title.setText("Problems reported: none")
        self.problems.setVisible(False)
        self.problems_title.setVisible(False)
        self.log.clear()
        self.state = None
        self.bar.setRange(0, 0)  # busy until the first progress line
        self._set_status("Starting…", error=False)
        self.process.start(verb_args)

    def cancel(self) -> None:
        self.process.terminate()

    def _set_status(self, text: str, error: bool) -> None:
        self.status.setText(text)
        self.status.setProperty("error", "true" if error else "false")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)

    def _on_progress(self, ev: ProgressEvent) -> None:
        if ev.total:
            self.bar.setRange(0, int(ev.total))
            self.bar.setValue(min(int(ev.step), int(ev.total)))
        elif ev.stage not in ("done", "failed", "canceled"):
            self.bar.setRange(0, 0)
        step = f" {ev.step}/{ev.total}" if ev.total else ""
        self._set_status(f"{ev.stage}{step}" + (f": {ev.message}" if ev.message else ""),
                         error=ev.stage == "failed")
        self.eta.setText(format_eta(ev.eta_s))
        if ev.message and ev.stage in ("done", "failed", "canceled"):
            self.log.appendPlainText(f"[{ev.stage}] {ev.message}")
        self.progressed.emit(ev)

    def _on_line(self, text: str) -> None:
        self.log.appendPlainText(text)

    def _on_problem(self, text: str) -> None:
        self.log.appendPlainText(text)
        if not self.show_problems:
            return
        self.problems.addItem(text)
        self.problems.setVisible(True)
        self.problems_title.setVisible(True)
        self.problems_title.setText(f"Problems reported: {self.problems.count()}")

    def _on_finished(self, code: int, state: str) -> None:
        self.state = state
        self.bar.setRange(0, 100)
        self.eta.setText("")
        if state in ("done", "partial"):
            self.bar.setValue(100)
            partial = state == "partial" or self.problems.count()
            self._set_status("Finished." + (" Some rows were rejected: see the problems below."
                                            if partial and self.show_problems else ""), error=False)
        elif state == "canceled":
            self._set_status("Canceled. Nothing was changed by the unfinished step.", error=False)
        else:
            self._set_status(f"Failed: {state.removeprefix('failed: ')}", error=True)
        self.log.appendPlainText(f"— exit code {code}: {state}")
        self.finished.emit(code, state)
