"""The one-click retrain: runs ``medreview train retrain`` as a child process and follows it.

Training never runs in the window's process (docs/architecture.md): a crash or out-of-memory there cannot
take the window down, the window never imports torch, and Cancel is SIGTERM. The dialog shows each
stage's progress and time left, a live loss / reward / KL plot, and the log. At the end it reads
the model registry from the store and says which version was made, its metrics, and whether the
safety gate promoted it.

Training goes on in the background: closing the dialog (its button, Esc, the close box) only
hides it, and the main window's status bar follows the run and brings the dialog back. Only
Cancel stops it, after asking. The dialog never waits on the child, so the window never blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.gui.jobs import ask
from app.gui.plot import LivePlot
from app.gui.process_panel import ProcessPanel
from app.qt import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    Qt,
    QVBoxLayout,
    Signal,
)
from app.workspace import Workspace
from core.runtime.progress import ProgressEvent

SHOWN_METRICS = (
    "accuracy",
    "tp_rate",
    "tn_rate",
    "fpr",
    "critical_misses",
    "unparseable",
    "mean_reward",
)


def pipeline_words(name: str) -> str:
    """What pipeline ``name`` trains, in words, from the stage table
    (``core.training.retrain_config``: ``medreview train`` runs the same table)."""
    from core.training.retrain_config import PIPELINES, STAGES

    return ", then ".join(STAGES[s].summary for s in PIPELINES[name].stages)


def describe_version(version: Any) -> str:
    """A version's outcome in words: name, parent, promoted or not and why, key metrics."""
    lines = [
        f"New version: {version.name} (back end {version.backend}, parent {version.parent or '—'})"
    ]
    if version.promoted is True:
        lines.append("Promoted: it is now the active version.")
    elif version.promoted is False:
        lines.append(
            f"Not promoted by the safety gate: {version.promotion_reason or 'no reason given'}"
        )
    else:
        lines.append("Not evaluated yet, so not promoted.")
    metrics = version.metrics or {}
    shown = []
    for key in SHOWN_METRICS:
        value = metrics.get(key)
        if isinstance(value, float):
            shown.append(f"{key} {value:.3f}")
        elif value is not None and not isinstance(value, dict | list):
            shown.append(f"{key} {value}")
    if shown:
        lines.append("Metrics: " + ", ".join(shown))
    return "\n".join(lines)


class RetrainDialog(QDialog):
    """Start, follow and cancel a retrain; ``versionsChanged`` when a new version exists."""

    versionsChanged = Signal(list)  # names of the new versions
    hiddenWhileRunning = Signal()

    def __init__(
        self, workspace: Workspace, reader: Any, device: str = "auto", parent=None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Retrain the model on your ratings")
        self.setModal(False)
        self.resize(720, 560)
        self.confirm: Callable[[str, str], bool] = lambda t, x: ask(self, t, x)
        self.workspace = workspace
        self.reader = reader
        self.device = device
        self._known = {v.name for v in reader.model_versions()}
        intro = QLabel(
            f"Exports your ratings, then trains: {pipeline_words('retrain')}; and evaluates the "
            "result on the held-out cases. A new version is always kept, and replaces the "
            "active one only if, on the val cases, it misses no critical error the active one "
            "caught, its false positive rate is within 10% (or no higher than the active one's), "
            "and its mean clinical reward is not lower. "
            f"Device: {device}. You can keep reviewing while it runs: closing this window hides it, "
            "and the status bar shows how far it is."
        )
        intro.setWordWrap(True)
        self.stage = QLabel("Stage: not started")
        self.stage.setObjectName("stageLabel")
        self.plot = LivePlot()
        self.panel = ProcessPanel(self, show_problems=False)
        self.result_label = QLabel()
        self.result_label.setObjectName("resultLabel")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plot)
        split.addWidget(self.panel)
        split.setSizes([300, 220])
        self.buttons = QDialogButtonBox()
        self.start_button = self.buttons.addButton(
            "Start retraining", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.cancel_button = self.buttons.addButton(
            "Cancel training…", QDialogButtonBox.ButtonRole.DestructiveRole
        )
        self.close_button = self.buttons.addButton("Close", QDialogButtonBox.ButtonRole.RejectRole)
        self.cancel_button.setEnabled(False)
        top = QHBoxLayout()
        top.addWidget(self.stage, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        layout.addWidget(self.result_label)
        layout.addWidget(self.buttons)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.reject)
        self.panel.progressed.connect(self._on_progress)
        self.panel.finished.connect(self._finished)

    @property
    def running(self) -> bool:
        return self.panel.running

    def start(self) -> None:
        self.plot.clear()
        self.result_label.setText("")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.close_button.setText("Hide (training goes on)")
        self.stage.setText("Stage: starting")
        args = ["train", "retrain", "--workspace", str(self.workspace.root), "--progress", "json"]
        if self.device != "auto":
            args += ["--device", self.device]
        self.panel.start(args)

    def cancel(self) -> bool:
        """Cancel the run after asking; True when the cancel was sent."""
        if not self.panel.running:
            return False
        if not self.confirm(
            "Cancel training?",
            "Stop the retrain? The work done so far is discarded and no version is made.",
        ):
            return False
        self.cancel_button.setEnabled(False)
        self.stage.setText("Stage: canceling…")
        self.panel.cancel()
        return True

    def _on_progress(self, ev: ProgressEvent) -> None:
        self.stage.setText(f"Stage: {ev.stage}")
        self.plot.add(stage=ev.stage, loss=ev.loss, reward=ev.reward, kl=ev.kl)

    def _finished(self, _code: int, state: str) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.close_button.setText("Close")
        self.start_button.setText("Retrain again")
        if state in ("done", "partial"):
            new = [v for v in self.reader.model_versions() if v.name not in self._known]
            self._known |= {v.name for v in new}
            if new:
                self.result_label.setText("\n\n".join(describe_version(v) for v in new))
                self.versionsChanged.emit([v.name for v in new])
            else:
                self.result_label.setText("Training finished but registered no new version.")
        elif state == "canceled":
            self.stage.setText("Stage: canceled")
            self.result_label.setText("Training was canceled. No version was registered.")
        else:
            self.stage.setText("Stage: failed")
            self.result_label.setText(f"Training failed: {state.removeprefix('failed: ')}")
        self.result_label.setProperty("error", "true" if state.startswith("failed") else "false")
        self.result_label.style().unpolish(self.result_label)
        self.result_label.style().polish(self.result_label)

    def reject(self) -> None:
        """Close, Esc and the close box: hide; a running retrain goes on (only Cancel stops it)."""
        if self.panel.running:
            self.hiddenWhileRunning.emit()
        super().reject()

    def stop_now(self, wait_ms: int = 10000) -> None:
        """Stop a running retrain without asking (the app is quitting and the user agreed)."""
        if self.panel.running:
            self.panel.cancel()
            if not self.panel.process.wait(wait_ms):
                self.panel.process.kill()
                self.panel.process.wait(2000)
