"""Import and export dialogs: each runs its ``medreview`` verb as a child process.

Import takes a case manifest (CSV, JSON, JSONL), a folder of images, or a ratings file
(expert_feedback.jsonl); export writes expert_feedback.jsonl in TRL preference or KTO format.
Running the verbs (``medreview import`` / ``medreview export``) rather than calling functions
keeps one code path for the terminal and the window, and shows the verb's per-row problems
exactly as it reports them (file and line), in the problems list.
"""

from __future__ import annotations

from pathlib import Path

from app.gui.process_panel import ProcessPanel
from app.qt import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    Signal,
)
from app.workspace import Workspace


class _VerbDialog(QDialog):
    """A path, options, Run/Cancel/Close, and the process panel."""

    completed = Signal(str)  # final state

    def __init__(self, title: str, intro: str, workspace: Workspace, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(760, 560)
        self.workspace = workspace
        self.path = QLineEdit()
        self.browse = QPushButton("Browse…")
        self.path_row = QHBoxLayout()  # the path, Browse, and any button a verb adds
        self.path_row.addWidget(self.path, 1)
        self.path_row.addWidget(self.browse)
        self.form = QFormLayout()
        self.form.addRow(self._path_label(), self.path_row)
        self.panel = ProcessPanel(self)
        self.buttons = QDialogButtonBox()
        self.run_button = self.buttons.addButton(
            self._run_text(), QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.cancel_button = self.buttons.addButton(
            "Cancel", QDialogButtonBox.ButtonRole.RejectRole
        )
        self.close_button = self.buttons.addButton(
            "Close", QDialogButtonBox.ButtonRole.DestructiveRole
        )
        self.cancel_button.setEnabled(False)
        intro_label = QLabel(intro)
        intro_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(intro_label)
        layout.addLayout(self.form)
        layout.addWidget(self.panel, 1)
        layout.addWidget(self.buttons)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.panel.cancel)
        self.close_button.clicked.connect(self.close)
        self.panel.finished.connect(self._finished)
        self.browse.clicked.connect(self._browse)

    def _path_label(self) -> str:
        raise NotImplementedError

    def _run_text(self) -> str:
        raise NotImplementedError

    def _browse(self) -> None:
        raise NotImplementedError

    def verb_args(self) -> list[str] | None:
        """The verb's arguments, or None (after saying why) when the form is incomplete."""
        raise NotImplementedError

    def run(self) -> None:
        args = self.verb_args()
        if args is None:
            return
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.panel.start([*args, "--workspace", str(self.workspace.root), "--progress", "json"])

    def _finished(self, _code: int, state: str) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.completed.emit(state)

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.panel.running:
            self.panel.cancel()
            self.panel.process.wait(5000)
        super().closeEvent(event)


class ImportDialog(_VerbDialog):
    """Import cases or ratings; the review queue reloads when it finishes. Imported cases have
    no verdicts yet, so the end of an import offers to run the review pair's models on them."""

    runModelRequested = Signal()

    def __init__(self, workspace: Workspace, parent=None) -> None:
        super().__init__(
            "Import cases or ratings",
            "Choose a case manifest (CSV, JSON or JSONL with modality, image, finding, treatment), "
            "a folder of images, or a ratings file (expert_feedback.jsonl). Good rows are imported; "
            "each bad row is listed below with its file and line.",
            workspace,
            parent,
        )
        self.folder = QPushButton("Folder…")
        self.path_row.addWidget(self.folder)
        self.folder.clicked.connect(self._browse_folder)
        self.skip_existing = QCheckBox("Cases: skip case ids already in the workspace")
        self.create_reviewers = QCheckBox("Ratings: add reviewers this workspace does not know yet")
        self.form.addRow("", self.skip_existing)
        self.form.addRow("", self.create_reviewers)
        self.run_model = QPushButton("Run model on these cases…")
        self.run_model.setObjectName("runModelButton")
        self.run_model.setVisible(False)
        self.run_model.clicked.connect(self.runModelRequested)
        self.buttons.addButton(self.run_model, QDialogButtonBox.ButtonRole.ActionRole)

    def offer_run_model(self, missing: int, versions: list[str]) -> None:
        """After an import: offer to run the models when ``missing`` verdicts are lacking."""
        self.run_model.setVisible(missing > 0)
        if missing > 0:
            self.run_model.setToolTip(
                f"{missing} verdicts missing from {' and '.join(versions)}: "
                "cases without both verdicts cannot be rated"
            )
            self.panel.status.setText(
                self.panel.status.text() + f" {missing} verdicts are missing "
                "(cases without both cannot be rated): press Run model on these cases."
            )

    def run(self) -> None:
        self.run_model.setVisible(False)
        super().run()

    def _path_label(self) -> str:
        return "Manifest, folder or ratings"

    def _run_text(self) -> str:
        return "Import"

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Manifest or ratings file",
            str(Path.home()),
            "Manifests and ratings (*.csv *.json *.jsonl);;All files (*)",
        )
        if path:
            self.path.setText(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of images", str(Path.home()))
        if path:
            self.path.setText(path)

    def verb_args(self) -> list[str] | None:
        text = self.path.text().strip()
        if not text:
            self.panel._set_status(
                "Choose a manifest, a folder or a ratings file first.", error=True
            )
            return None
        if not Path(text).exists():
            self.panel._set_status(f"{text} does not exist.", error=True)
            return None
        args = ["import", text]
        if self.skip_existing.isChecked():
            args.append("--skip-existing")
        if self.create_reviewers.isChecked():
            args.append("--create-reviewers")
        return args


class ExportDialog(_VerbDialog):
    """Export the ratings as expert_feedback.jsonl (TRL preference pairs) or KTO."""

    def __init__(self, workspace: Workspace, parent=None) -> None:
        super().__init__(
            "Export expert feedback",
            "Writes every standing rating as training data, with the images it names beside the "
            "file (de-identified). TRL preference pairs feed RewardTrainer and DPOTrainer; KTO "
            "writes one unpaired example per verdict.",
            workspace,
            parent,
        )
        self.format = QComboBox()
        self.format.addItem("TRL preference pairs (expert_feedback.jsonl)", "trl")
        self.format.addItem("KTO, unpaired (prompt, completion, label)", "kto")
        self.form.addRow("Format", self.format)
        deid = QLabel(
            "Images carry pixels only: no DICOM tags, image metadata or dates. Text burned "
            "into pixels is not removed; images that declare it stay out until cleared."
        )
        deid.setWordWrap(True)
        self.form.addRow("Privacy", deid)
        self.path.setText(str(workspace.exports_dir / "expert_feedback.jsonl"))

    def _path_label(self) -> str:
        return "Write to"

    def _run_text(self) -> str:
        return "Export"

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export to", self.path.text(), "JSON lines (*.jsonl)"
        )
        if path:
            self.path.setText(path)

    def verb_args(self) -> list[str] | None:
        text = self.path.text().strip()
        if not text:
            self.panel._set_status("Choose where to write the file first.", error=True)
            return None
        return ["export", text, "--format", self.format.currentData()]
