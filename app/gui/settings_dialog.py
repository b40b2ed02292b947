"""The settings dialog and the first-run dialog.

Settings: reviewer, device, model ids or folders, workspace; the values go through ``Settings``
validation, and a bad value is shown in words beside the buttons (the dialog stays open).

Both offer the look: the dark reading-room theme (the default) or light, and the text size.

First run: who is reviewing (name and role, remembered in the settings), and, when the workspace
does not exist yet, creating the demo workspace there by running ``medreview demo create --quick``
as a child process, with one overall progress and time left; the window opens as soon as the
heuristic's and a quickly trained model's verdicts are in (within a minute on a laptop CPU), and
the full demo models then train in the background. A failure is shown in words and the dialog
stays open.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from app.gui.process_panel import ProcessPanel
from app.qt import (
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
from app.settings import DEVICES, FONT_SCALES, ROLES, THEMES, Settings, SettingsError
from app.workspace import Workspace
from core.models.backends import BACKENDS, backend_names, base_model_slots

THEME_WORDS = {"dark": "Dark (reading room)", "light": "Light"}
# The setting each base model's field is kept in (keys of core.models.backends.base_model_slots).
SETTING_FOR_MODEL = {"vlm": "vlm_model", "clip": "clip_model", "lm": "llm_model"}


def _theme_combo(current: str) -> QComboBox:
    combo = QComboBox()
    for name in THEMES:
        combo.addItem(THEME_WORDS.get(name, name), name)
    combo.setCurrentIndex(max(0, combo.findData(current)))
    combo.setToolTip(
        "Dark keeps the room dim and the eye adapted to the image; light suits a bright office"
    )
    return combo


def _scale_combo(current: float) -> QComboBox:
    combo = QComboBox()
    for scale in sorted(set(FONT_SCALES) | {float(current)}):
        combo.addItem(f"{scale:.0%}", scale)
    combo.setCurrentIndex(max(0, combo.findData(float(current))))
    combo.setToolTip("Size of all text (Ctrl++ and Ctrl+- change it too)")
    return combo


def _role_combo(current: str) -> QComboBox:
    combo = QComboBox()
    combo.setEditable(True)
    combo.addItems(list(ROLES))
    combo.setCurrentText(current)
    return combo


def _error_label() -> QLabel:
    label = QLabel()
    label.setObjectName("formError")
    label.setWordWrap(True)
    return label


class SettingsDialog(QDialog):
    """Edit the settings; ``result_settings`` holds the validated result after Save."""

    #: emitted after ``medreview models add`` registered a version
    versionAdded = Signal(str)

    def __init__(self, settings: Settings, parent=None, workspace: Workspace | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.resize(780, 520)
        self._workspace = workspace
        self.result_settings: Settings | None = None
        self._settings = settings
        self.name = QLineEdit(settings.reviewer_name)
        self.role = _role_combo(settings.reviewer_role)
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(settings.device)
        self.workspace = QLineEdit(settings.workspace)
        self.workspace.setPlaceholderText(str(Workspace.resolve().root))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        ws_row = QHBoxLayout()
        ws_row.addWidget(self.workspace, 1)
        ws_row.addWidget(browse)
        # One field per base model a back end of the table loads; the ones the settings keep
        # start from them (SETTING_FOR_MODEL), any other starts empty (the back end's default).
        self.model_edits = {
            key: QLineEdit(
                getattr(settings, SETTING_FOR_MODEL[key], "") if key in SETTING_FOR_MODEL else ""
            )
            for key in base_model_slots()
        }
        self.vlm, self.clip, self.llm = (self.model_edits[k] for k in ("vlm", "clip", "lm"))
        self.llm.setPlaceholderText("google/gemma-3-1b-it when empty")
        self.theme = _theme_combo(settings.theme)
        self.font_scale = _scale_combo(settings.font_scale)
        for edit in (self.workspace, *self.model_edits.values()):
            edit.setCursorPosition(0)
        form = QFormLayout()
        form.addRow("Your name", self.name)
        form.addRow("Role", self.role)
        form.addRow("Theme", self.theme)
        form.addRow("Text size", self.font_scale)
        form.addRow("Training device", self.device)
        form.addRow("Workspace folder", ws_row)
        for key, slot in base_model_slots().items():
            form.addRow(slot.label[:1].upper() + slot.label[1:], self.model_edits[key])
        note = QLabel(
            "Model ids are Hugging Face ids found in the local cache, or folders. "
            "A new workspace or reviewer takes effect the next time the app opens."
        )
        note.setWordWrap(True)
        note.setObjectName("hint")
        self.error = _error_label()
        # Register the models named above as a version of the workspace (no download: a model
        # that is not on this machine is refused at once, with the command that fetches it).
        self.version_name = QLineEdit("medgemma")
        add_row = QHBoxLayout()
        add_row.addWidget(QLabel("Register as model version"))
        add_row.addWidget(self.version_name, 1)
        # One button per back end of the table that loads weights (core.models.backends).
        self.add_buttons: dict[str, QPushButton] = {}
        for name in backend_names(needs_weights=True):
            spec = BACKENDS[name]
            button = QPushButton(f"Add {spec.title}")
            button.setToolTip(f"{name}: {spec.summary}")
            button.clicked.connect(lambda _checked=False, n=name: self.add_version(n))
            self.add_buttons[name] = button
            add_row.addWidget(button)
        # A quick check and a card: the child runs unseen, its outcome is said in one line below.
        self.panel = ProcessPanel(self, log_lines=3, show_problems=False)
        self.panel.setVisible(False)
        self.panel.finished.connect(self._version_finished)
        for w in (self.version_name, *self.add_buttons.values()):
            w.setEnabled(workspace is not None)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addLayout(add_row)
        layout.addWidget(self.panel)
        layout.addWidget(self.error)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

    def add_version(self, backend: str) -> None:
        """Run ``medreview models add`` for the model fields above, in a child process."""
        name = self.version_name.text().strip()
        if not name or self._workspace is None:
            self.error.setText("Name the new model version first.")
            return
        args = [
            "models",
            "add",
            name,
            "--backend",
            backend,
            "--workspace",
            str(self._workspace.root),
        ]
        for slot in BACKENDS[backend].base_models:  # an empty field: the back end's default model
            if self.model_edits[slot.key].text().strip():
                args += [f"--{slot.key}", self.model_edits[slot.key].text().strip()]
        self.error.setText(f"Checking the models and registering {name!r}…")
        self._adding = name
        for button in self.add_buttons.values():
            button.setEnabled(False)
        self.panel.start(args)

    def _version_finished(self, _code: int, state: str) -> None:
        for button in self.add_buttons.values():
            button.setEnabled(True)
        if state == "done":
            self.error.setText(
                f"Model version {self._adding!r} registered; pick it in Compare, "
                "or retrain from it."
            )
            self.versionAdded.emit(self._adding)
        else:
            why = state.removeprefix("failed: ").removeprefix("medreview models: ")
            self.error.setText(f"Not registered: {why}")

    def reject(self) -> None:
        if self.panel.running:
            self.panel.cancel()
            self.panel.process.wait(5000)
        super().reject()

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Workspace folder", self.workspace.text() or str(Path.home())
        )
        if path:
            self.workspace.setText(path)

    def save(self) -> None:
        try:
            self.result_settings = self._settings.updated(
                reviewer_name=self.name.text().strip(),
                reviewer_role=self.role.currentText().strip(),
                device=self.device.currentText(),
                workspace=self.workspace.text().strip(),
                **{
                    setting: self.model_edits[key].text().strip()
                    for key, setting in SETTING_FOR_MODEL.items()
                },
                theme=self.theme.currentData(),
                font_scale=float(self.font_scale.currentData()),
            )
        except SettingsError as exc:
            self.error.setText(f"Not saved: {exc}")
            return
        if not self.result_settings.reviewer_name:
            self.error.setText("Not saved: your name is needed on every rating")
            self.result_settings = None
            return
        self.accept()


class FirstRunDialog(QDialog):
    """Who is reviewing, and (when needed) create the demo workspace."""

    def __init__(
        self, settings: Settings, workspace: Workspace, parent=None, demo_args: Sequence[str] = ()
    ) -> None:
        """``demo_args``: extra options for ``medreview demo create`` (tests pass a small one)."""
        super().__init__(parent)
        self.setWindowTitle("Welcome to MedGemma Reviewer")
        self.demo_args = list(demo_args)
        self.resize(720, 520)
        self.result_settings: Settings | None = None
        self._settings = settings
        self.workspace = workspace
        self.needs_demo = not workspace.exists()
        intro = QLabel(
            "You review an AI model's verdicts on medical images. Your ratings are saved on this "
            "computer and become training data for the model. Please tell us who you are; your "
            "name is stored with every rating, for the audit trail."
        )
        intro.setWordWrap(True)
        self.name = QLineEdit(settings.reviewer_name)
        self.name.setPlaceholderText("e.g. Dr. A. Lee")
        self.role = _role_combo(settings.reviewer_role)
        self.theme = _theme_combo("dark")
        self.theme.currentIndexChanged.connect(self._preview_theme)
        form = QFormLayout()
        form.addRow("Your name", self.name)
        form.addRow("Role", self.role)
        form.addRow("Theme", self.theme)
        where = QLabel(
            f"Workspace: {workspace.root}\n"
            + (
                "It does not exist yet: a demo workspace (synthetic cases in four modalities and small "
                "demo models, no network needed) will be created there. You can start reviewing within "
                "a minute; the full demo models go on training in the background."
                if self.needs_demo
                else "It exists and will be opened."
            )
        )
        where.setWordWrap(True)
        self.panel = ProcessPanel(self, log_lines=4, show_problems=False)
        self.panel.setVisible(False)  # shown when the demo is being created
        from app.demo_plan import QUICK_PLAN

        self.panel.set_plan(QUICK_PLAN)
        self.error = _error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.addButton(
            "Create demo and start" if self.needs_demo else "Start",
            QDialogButtonBox.ButtonRole.AcceptRole,
        )
        self.ok.clicked.connect(self.go)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(where)
        layout.addWidget(self.panel, 10)
        layout.addWidget(self.error)
        layout.addStretch(1)  # keeps the form together at the top while the panel is hidden
        layout.addWidget(self.buttons)
        self.panel.finished.connect(self._demo_finished)

    def _preview_theme(self, *_args) -> None:
        from app.gui.theme import apply_theme
        from app.qt import QApplication

        app = QApplication.instance()
        if app is not None:
            apply_theme(app, self.theme.currentData(), self._settings.font_scale)

    def go(self) -> None:
        try:
            self.result_settings = self._settings.updated(
                reviewer_name=self.name.text().strip(),
                reviewer_role=self.role.currentText().strip(),
                theme=self.theme.currentData(),
            )
        except SettingsError as exc:
            self.error.setText(str(exc))
            return
        if not self.result_settings.reviewer_name:
            self.error.setText("Please enter your name: it is stored with every rating.")
            return
        self.error.setText("")
        if self.needs_demo and not self.workspace.exists():
            self.ok.setEnabled(False)
            self.panel.setVisible(True)
            self.panel.start(
                [
                    "demo",
                    "create",
                    "--quick",
                    "--workspace",
                    str(self.workspace.root),
                    "--progress",
                    "json",
                    *self.demo_args,
                ]
            )
            return
        self.accept()

    def _demo_finished(self, _code: int, state: str) -> None:
        self.ok.setEnabled(True)
        if state in ("done", "partial") and self.workspace.exists():
            self.accept()
        elif state in ("done", "partial"):
            self.error.setText(f"The demo workspace was not created in {self.workspace.root}.")
        else:
            self.error.setText(
                f"Could not create the demo workspace: {state.removeprefix('failed: ')}"
            )

    def reject(self) -> None:
        if self.panel.running:
            self.panel.cancel()
            self.panel.process.wait(5000)
        super().reject()
