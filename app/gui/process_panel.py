"""A panel that runs one ``medreview`` verb in a child process and shows how it goes.

Used by the import, export, demo-creation and retrain dialogs: the stage and its progress bar,
the time left, the problems the verb reported (one row per rejected line or file, as the verb
wrote them on stderr), and the full log. The outcome arrives as ``finished(code, state)`` where
``state`` is "done", "partial" (some rows rejected), "canceled" or "failed: <reason in words>"; a failure is also written in the
status line in red, so it is never silent.

With a plan (``set_plan``: the verb's stages and their share of its time, ``app.gui.progress_plan``)
the bar and the time left are for the whole run, not the stage. Either way the log says when
each stage began and how long it took, so it is never empty while something is happening.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from app.gui.operations import ChildProcess
from app.gui.progress_plan import Overall, OverallProgress, Plan, format_left
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
from core.runtime.progress import ProgressEvent


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
    summaryChanged = Signal(str)  # a short line for a status bar: "34% · about 2 min left"

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
        self.plan: OverallProgress | None = None
        self.overall: Overall | None = None
        self._stage: str | None = None
        self._stage_began = 0.0
        self._summary = ""
        self.low_priority = False

    def set_plan(self, plan: Plan | None) -> None:
        """Show one progress for the whole run of a verb whose stages are ``plan``."""
        self.plan = OverallProgress(plan) if plan else None

    def summary(self) -> str:
        """Where the run stands in a few words (for a status-bar item)."""
        return self._summary

    def fraction(self) -> float | None:
        """0..1 of the run (of the stage, without a plan); None while unknown."""
        if self.overall is not None:
            return self.overall.fraction
        if self.bar.maximum() > 0:
            return self.bar.value() / self.bar.maximum()
        return None

    @property
    def running(self) -> bool:
        return self.process.running

    def start(self, verb_args: Sequence[str], clear: bool = True) -> None:
        """Run ``medreview <verb_args>``; ``clear=False`` keeps the log and problems of the run
        before (one job that runs several verbs in turn)."""
        if clear:
            self.problems.clear()
            self.problems_title.setText("Problems reported: none")
            self.problems.setVisible(False)
            self.problems_title.setVisible(False)
            self.log.clear()
        self.state = None
        self.overall = None
        self._stage = None
        self.bar.setRange(0, 0)  # busy until the first progress line
        self._set_status("Starting…", error=False)
        words = []
        for arg in list(verb_args)[:2]:  # the verb (and its sub-verb), not paths or options
            if arg.startswith("-") or "/" in arg or "." in arg:
                break
            words.append(arg)
        self._log(f"Started: medreview {' '.join(words)}".rstrip())
        if self.plan is not None:
            self.plan.start()
            self.eta.setText(format_left(self.plan.total, about=True) + " (planned)")
        self._set_summary("starting")
        self.process.start(verb_args, low_priority=self.low_priority)

    def _log(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def _set_summary(self, text: str) -> None:
        if text != self._summary:
            self._summary = text
            self.summaryChanged.emit(text)

    def cancel(self) -> None:
        self.process.terminate()

    def _set_status(self, text: str, error: bool) -> None:
        self.status.setText(text)
        self.status.setProperty("error", "true" if error else "false")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)

    def _on_progress(self, ev: ProgressEvent) -> None:
        final = ev.stage in ("done", "failed", "canceled")
        overall = self.plan.update(ev) if self.plan is not None else None
        if overall is not None:
            self.overall = overall
        if not final and ev.stage != self._stage:
            now = time.monotonic()
            if self._stage is not None:
                self._log(f"  finished in {now - self._stage_began:.0f} s")
            self._stage, self._stage_began = ev.stage, now
            words = overall.words if overall is not None else ev.stage
            count = f" ({ev.total})" if ev.total and overall is not None else ""
            self._log(f"{words}{count}")
        step = f" {ev.step}/{ev.total}" if ev.total else ""
        if overall is not None:
            self.bar.setRange(0, 1000)
            self.bar.setValue(round(1000 * overall.fraction))
            self._set_status(
                f"Step {overall.index + 1} of {overall.stages}: {overall.words}{step}", error=False
            )
            left = format_left(overall.eta_s, about=not overall.measured)
            self.eta.setText(f"{overall.fraction:.0%} done · {left}" if left else "")
            self._set_summary(f"{overall.fraction:.0%}" + (f" · {left}" if left else ""))
        else:
            if ev.total:
                self.bar.setRange(0, int(ev.total))
                self.bar.setValue(min(int(ev.step), int(ev.total)))
            elif not final:
                self.bar.setRange(0, 0)
            self._set_status(
                f"{ev.stage}{step}" + (f": {ev.message}" if ev.message else ""),
                error=ev.stage == "failed",
            )
            self.eta.setText(format_eta(ev.eta_s))
            pct = f"{ev.step / ev.total:.0%}" if ev.total else ""
            self._set_summary(" · ".join(x for x in (ev.stage, pct, format_eta(ev.eta_s)) if x))
        if ev.message and final:
            self._log(f"[{ev.stage}] {ev.message}")
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
        if self._stage is not None:
            self._log(f"  finished in {time.monotonic() - self._stage_began:.0f} s")
            self._stage = None
        self.bar.setRange(0, 100)
        self.eta.setText("")
        self._set_summary(
            {"done": "finished", "partial": "finished"}.get(state, state.split(":")[0])
        )
        if state in ("done", "partial"):
            self.bar.setValue(100)
            partial = state == "partial" or self.problems.count()
            self._set_status(
                "Finished."
                + (
                    " Some rows were rejected: see the problems below."
                    if partial and self.show_problems
                    else ""
                ),
                error=False,
            )
        elif state == "canceled":
            self._set_status("Canceled. Nothing was changed by the unfinished step.", error=False)
        else:
            self._set_status(f"Failed: {state.removeprefix('failed: ')}", error=True)
        self.log.appendPlainText(f"— exit code {code}: {state}")
        self.finished.emit(code, state)
