"""The compare view: two model versions on the held-out cases, side by side.

It runs ``medreview compare A B --json J --png P`` as a child process (the comparison loads
verdicts and may run the heuristic; none of it belongs in the window's process), then shows the
metrics with their 95% intervals and the McNemar p, the per-modality heatmap the verb drew, and
the cases where the two disagree. Double-clicking a case emits ``openCase(case_id)``; the main
window shows it in the review view.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from app.gui.operations import ChildProcess
from app.qt import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPixmap,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStandardItem,
    QStandardItemModel,
    Qt,
    QTableView,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.workspace import Workspace

METRIC_NAMES = {"accuracy": "Accuracy", "tp_rate": "Errors caught (TP rate)",
                "tn_rate": "Correct passed (TN rate)", "fpr": "False positive rate",
                "mean_reward": "Mean clinical reward"}


def _interval(iv: dict[str, Any] | None) -> str:
    if not iv or iv.get("estimate") is None:
        return "—"
    est, low, high = iv.get("estimate"), iv.get("low"), iv.get("high")
    if low is None or high is None or any(math.isnan(x) for x in (est, low, high)):
        return f"{est:.3f}"
    return f"{est:.3f}  [{low:.3f}, {high:.3f}]"


class CompareView(QWidget):
    """Pick A and B, run the comparison, read the result."""

    openCase = Signal(str)
    compared = Signal(str)  # final state of the child process

    def __init__(self, workspace: Workspace, reader: Any, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self.workspace = workspace
        self.reader = reader
        self.version_a = QComboBox()
        self.version_b = QComboBox()
        self.run_button = QPushButton("Compare on the test split")
        self.status = QLabel("Choose two versions and press Compare.")
        self.status.setObjectName("processStatus")
        self.status.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("A (reference)"))
        bar.addWidget(self.version_a, 1)
        bar.addWidget(QLabel("B (candidate)"))
        bar.addWidget(self.version_b, 1)
        bar.addWidget(self.run_button)

        self.metrics = QStandardItemModel(0, 4, self)
        self.metrics.setHorizontalHeaderLabels(["Metric", "A", "B", "B − A"])
        self.metrics_table = QTableView()
        self.metrics_table.setModel(self.metrics)
        self.metrics_table.verticalHeader().setVisible(False)
        self.metrics_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.metrics_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Fixed)
        self.metrics_table.setColumnWidth(0, 200)
        self.metrics_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.mcnemar = QLabel()
        self.mcnemar.setWordWrap(True)
        self.heatmap = QLabel("The per-modality heatmap appears here.")
        self.heatmap.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._heatmap_pixmap = QPixmap()
        scroll = QScrollArea()
        scroll.setWidget(self.heatmap)
        scroll.setWidgetResizable(True)
        self.heatmap_area = scroll
        self.cases = QStandardItemModel(0, 4, self)
        self.cases.setHorizontalHeaderLabels(["Case", "Modality", "Truth", "A says / B says"])
        self.cases_table = QTableView()
        self.cases_table.setObjectName("disagreementTable")
        self.cases_table.setModel(self.cases)
        self.cases_table.verticalHeader().setVisible(False)
        self.cases_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.cases_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.cases_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.cases_title = QLabel("Cases where they disagree (double-click to review)")

        left = QWidget()
        lcol = QVBoxLayout(left)
        lcol.setContentsMargins(0, 0, 0, 0)
        lcol.addWidget(QLabel("Metrics with 95% bootstrap intervals"))
        lcol.addWidget(self.metrics_table, 2)
        lcol.addWidget(self.mcnemar)
        lcol.addWidget(self.cases_title)
        lcol.addWidget(self.cases_table, 3)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(scroll)
        split.setSizes([680, 720])
        split.splitterMoved.connect(lambda *_: self._fit_heatmap())
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)

        self.process = ChildProcess(self)
        self.process.problem.connect(self._on_problem)
        self.process.finished.connect(self._finished)
        self.run_button.clicked.connect(self.run)
        self.cases_table.doubleClicked.connect(self._open)
        self._problems: list[str] = []
        self.result: dict[str, Any] | None = None
        self.reload_versions()

    def reload_versions(self) -> None:
        """Refill the pickers from the store. B (candidate) is the newest version, A (reference)
        its parent, else the active version, else the one before it: after a retrain this is
        the new version against the one it was trained from."""
        versions = self.reader.model_versions()  # oldest first
        names = [v.name for v in versions]
        for combo in (self.version_a, self.version_b):
            combo.clear()
            combo.addItems(names + ["heuristic"])
        if not names:
            return
        newest = versions[-1]
        active = next((v.name for v in versions if v.active and v.name != newest.name), None)
        reference = newest.parent if newest.parent in names else active
        if reference is None:
            reference = names[-2] if len(names) > 1 else "heuristic"
        self.version_a.setCurrentText(reference)
        self.version_b.setCurrentText(newest.name)

    def _outputs(self, a: str, b: str) -> tuple[Path, Path]:
        folder = self.workspace.exports_dir / "compare"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{a}_vs_{b}".replace("/", "_")
        return folder / f"{stem}.json", folder / f"{stem}.png"

    def run(self) -> None:
        a, b = self.version_a.currentText(), self.version_b.currentText()
        if not a or not b or a == b:
            self.status.setText("Choose two different versions.")
            return
        self._json, self._png = self._outputs(a, b)
        for f in (self._json, self._png):
            f.unlink(missing_ok=True)
        self._problems = []
        self.run_button.setEnabled(False)
        self.status.setText(f"Comparing {b} with {a}…")
        self.process.start(["compare", a, b, "--workspace", str(self.workspace.root),
                            "--json", str(self._json), "--png", str(self._png)])

    def _on_problem(self, text: str) -> None:
        self._problems.append(text)

    def _finished(self, _code: int, state: str) -> None:
        self.run_button.setEnabled(True)
        if state in ("done", "partial") and self._json.exists():
            try:
                self.show_result(json.loads(self._json.read_text(encoding="utf-8")), self._png)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.status.setText(f"The comparison's result could not be read: {exc}")
            else:
                note = f" Note: {self._problems[-1]}" if state == "partial" and self._problems else ""
                self.status.setText("Comparison finished." + note)
        else:
            self.status.setText(f"Comparison failed: {state.removeprefix('failed: ')}")
        self.compared.emit(state)

    def show_result(self, doc: dict[str, Any], png: Path | None) -> None:
        """Fill the metrics, McNemar, heatmap and disagreement list from the verb's JSON."""
        self.result = doc
        self.metrics.setRowCount(0)
        for key, label in METRIC_NAMES.items():
            by = doc.get("intervals", {}).get(key, {})
            self.metrics.appendRow([QStandardItem(label), QStandardItem(_interval(by.get("a"))),
                                    QStandardItem(_interval(by.get("b"))),
                                    QStandardItem(_interval(by.get("diff")))])
        crit = [str(doc.get(side, {}).get("critical_misses", "—")) for side in ("a", "b")]
        self.metrics.appendRow([QStandardItem("Critical misses"), QStandardItem(crit[0]),
                                QStandardItem(crit[1]), QStandardItem("")])
        m = doc.get("mcnemar", {})
        p = m.get("p_value")
        self.mcnemar.setText(
            f"Exact McNemar test: p = {p:.4g} (A right & B wrong: {m.get('b')}, A wrong & B right: "
            f"{m.get('c')}). " + ("The difference is significant at 5%." if p is not None and p < 0.05
                                   else "No significant difference at 5%.")
            if p is not None else "McNemar test: not available")
        self.cases.setRowCount(0)
        for d in doc.get("disagreements", []):
            item = QStandardItem(d["case_id"])
            item.setData(d["case_id"], Qt.ItemDataRole.UserRole)
            self.cases.appendRow([item, QStandardItem(d.get("modality", "")),
                                  QStandardItem(d.get("truth") or "unknown"),
                                  QStandardItem(f"{d.get('label_a')} / {d.get('label_b')}")])
        count = self.cases.rowCount()
        self.cases_title.setText(f"Cases where they disagree: {count} (double-click to review)" if count
                                 else "The two versions give the same verdict on every case.")
        pixmap = QPixmap(str(png)) if png is not None and png.exists() else QPixmap()
        self._heatmap_pixmap = pixmap
        if pixmap.isNull():
            self.heatmap.setText("No heatmap was written.")
        else:
            self._fit_heatmap()

    def _fit_heatmap(self) -> None:
        """Scale the heatmap to the width of its pane (never above its own size)."""
        if self._heatmap_pixmap.isNull():
            return
        width = max(200, self.heatmap_area.viewport().width() - 8)
        self.heatmap.setPixmap(self._heatmap_pixmap.scaledToWidth(
            min(self._heatmap_pixmap.width(), width), Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit_heatmap()

    def _open(self, index) -> None:
        case_id = self.cases.item(index.row(), 0).data(Qt.ItemDataRole.UserRole)
        if case_id:
            self.openCase.emit(case_id)

    def shutdown(self) -> None:
        if self.process.running:
            self.process.terminate()
            self.process.wait(5000)
