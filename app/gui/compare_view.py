"""The compare view: two model versions on the held-out cases, side by side.

It runs ``medreview compare A B --json J --png P`` as a child process (the comparison loads
verdicts and may run the heuristic; none of it belongs in the window's process), then shows the
metrics with their 95% intervals and the McNemar p, a per-modality heatmap (drawn by Qt from
the JSON so it scales with the pane, with values on hover and a PNG export), and the cases where
the two disagree. Double-clicking a case emits ``openCase(case_id)``; the main window shows it
in the review view.

A result belongs to the two versions it was computed for: changing a picker clears it. Each
version is listed once (the built-in ``heuristic`` is added only when the store has no version
of that name), and the status line says what the comparison found in one sentence.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from app.gui.heatmap import Heatmap
from app.gui.operations import ChildProcess
from app.qt import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
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

METRIC_NAMES = {
    "accuracy": "Accuracy",
    "tp_rate": "Errors caught (TP rate)",
    "tn_rate": "Correct passed (TN rate)",
    "fpr": "False positive rate",
    "mean_reward": "Mean clinical reward",
}
_MISSING = re.compile(r"(\d+) case\(s\) have no prediction from '([^']+)'")


def summary_line(doc: dict[str, Any], problems: list[str]) -> str:
    """What a comparison found, in one sentence (and what was left out, in a second)."""
    a, b = doc.get("a", {}), doc.get("b", {})
    acc = doc.get("intervals", {}).get("accuracy", {})
    diff = acc.get("diff") or {}
    est, low, high = diff.get("estimate"), diff.get("low"), diff.get("high")
    n = b.get("n") or a.get("n") or 0
    p = doc.get("mcnemar", {}).get("p_value")
    parts = [
        f"{b.get('name', 'B')} vs {a.get('name', 'A')} on {n} {doc.get('split', 'test')} cases:"
    ]
    if isinstance(a.get("accuracy"), float) and isinstance(b.get("accuracy"), float):
        change = f"accuracy {100 * b['accuracy']:.1f}% vs {100 * a['accuracy']:.1f}%"
        if isinstance(est, float):
            change += f" ({100 * est:+.1f} pp"
            change += (
                f", 95% CI {100 * low:+.1f} to {100 * high:+.1f})"
                if isinstance(low, float) and isinstance(high, float)
                else ")"
            )
        parts.append(change + ";")
    if p is not None:
        parts.append(
            f"McNemar p = {p:.3g} ({'significant' if p < 0.05 else 'not significant'} at 5%);"
        )
    n_dis = len(doc.get("disagreements", []))
    parts.append(f"{n_dis} case{'s' if n_dis != 1 else ''} with different verdicts.")
    text = " ".join(parts)
    left = [
        f"{m.group(1)} without a verdict from {m.group(2)}"
        for m in (_MISSING.search(x) for x in problems)
        if m
    ]
    if left:
        text += " Left out: " + "; ".join(left) + "."
    return text


def _interval(iv: dict[str, Any] | None) -> str:
    if not iv or (est := iv.get("estimate")) is None:
        return "—"
    low, high = iv.get("low"), iv.get("high")
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
        for combo in (self.version_a, self.version_b):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(10)
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
        self.heatmap = Heatmap()
        self.heatmap.setToolTip("")
        self.save_png = QPushButton("Save heatmap as PNG…")
        self.save_png.setEnabled(False)
        self.save_png.clicked.connect(self._save_png)
        heat = QWidget()
        hcol = QVBoxLayout(heat)
        hcol.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(QLabel("By modality (hover a cell for its counts)"), 1)
        head.addWidget(self.save_png)
        hcol.addLayout(head)
        hcol.addWidget(self.heatmap, 1)
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
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(heat)
        split.addWidget(left)
        split.setSizes([300, 400])
        split.setCollapsible(0, False)
        split.setCollapsible(1, False)
        self.split = split
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
        self.version_a.currentIndexChanged.connect(self.clear_result)
        self.version_b.currentIndexChanged.connect(self.clear_result)

    def clear_result(self, *_args) -> None:
        """Forget the shown result: it was for other versions than the pickers now name."""
        if self.process.running:
            return
        self.result = None
        self.metrics.setRowCount(0)
        self.cases.setRowCount(0)
        self.mcnemar.setText("")
        self.heatmap.set_result(None)
        self.save_png.setEnabled(False)
        self.cases_title.setText("Cases where they disagree (double-click to review)")
        self.status.setText("Choose two versions and press Compare.")

    def reload_versions(self) -> None:
        """Refill the pickers from the store. B (candidate) is the newest version, A (reference)
        its parent, else the active version, else the one before it: after a retrain this is
        the new version against the one it was trained from."""
        versions = self.reader.model_versions()  # oldest first
        names = [v.name for v in versions]
        offered = names + ([] if "heuristic" in names else ["heuristic"])
        for combo in (self.version_a, self.version_b):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(offered)
            combo.blockSignals(False)
        self.clear_result()
        if not names:
            return
        newest = versions[-1]
        active = next((v.name for v in versions if v.active and v.name != newest.name), None)
        reference = newest.parent if newest.parent in names else active
        if reference is None:
            reference = names[-2] if len(names) > 1 else "heuristic"
        for combo, name in ((self.version_a, reference), (self.version_b, newest.name)):
            combo.blockSignals(True)
            combo.setCurrentText(name)
            combo.blockSignals(False)

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
        self.clear_result()
        self.run_button.setEnabled(False)
        for combo in (self.version_a, self.version_b):
            combo.setEnabled(False)
        self.status.setText(f"Comparing {b} with {a}…")
        self.process.start(
            [
                "compare",
                a,
                b,
                "--workspace",
                str(self.workspace.root),
                "--json",
                str(self._json),
                "--png",
                str(self._png),
            ]
        )

    def _on_problem(self, text: str) -> None:
        self._problems.append(text)

    def _finished(self, _code: int, state: str) -> None:
        self.run_button.setEnabled(True)
        for combo in (self.version_a, self.version_b):
            combo.setEnabled(True)
        if state in ("done", "partial") and self._json.exists():
            try:
                doc = json.loads(self._json.read_text(encoding="utf-8"))
                self.show_result(doc, self._png)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.status.setText(f"The comparison's result could not be read: {exc}")
            else:
                self.status.setText(summary_line(doc, self._problems))
        else:
            self.status.setText(f"Comparison failed: {state.removeprefix('failed: ')}")
        self.compared.emit(state)

    def show_result(self, doc: dict[str, Any], png: Path | None) -> None:
        """Fill the metrics, McNemar, heatmap and disagreement list from the verb's JSON."""
        self.result = doc
        self.metrics.setRowCount(0)
        for key, label in METRIC_NAMES.items():
            by = doc.get("intervals", {}).get(key, {})
            self.metrics.appendRow(
                [
                    QStandardItem(label),
                    QStandardItem(_interval(by.get("a"))),
                    QStandardItem(_interval(by.get("b"))),
                    QStandardItem(_interval(by.get("diff"))),
                ]
            )
        crit = [str(doc.get(side, {}).get("critical_misses", "—")) for side in ("a", "b")]
        self.metrics.appendRow(
            [
                QStandardItem("Critical misses"),
                QStandardItem(crit[0]),
                QStandardItem(crit[1]),
                QStandardItem(""),
            ]
        )
        m = doc.get("mcnemar", {})
        p = m.get("p_value")
        self.mcnemar.setText(
            f"Exact McNemar test: p = {p:.4g} (A right & B wrong: {m.get('b')}, A wrong & B right: "
            f"{m.get('c')}). "
            + (
                "The difference is significant at 5%."
                if p is not None and p < 0.05
                else "No significant difference at 5%."
            )
            if p is not None
            else "McNemar test: not available"
        )
        self.cases.setRowCount(0)
        for d in doc.get("disagreements", []):
            item = QStandardItem(d["case_id"])
            item.setData(d["case_id"], Qt.ItemDataRole.UserRole)
            self.cases.appendRow(
                [
                    item,
                    QStandardItem(d.get("modality", "")),
                    QStandardItem(d.get("truth") or "unknown"),
                    QStandardItem(f"{d.get('label_a')} / {d.get('label_b')}"),
                ]
            )
        count = self.cases.rowCount()
        self.cases_title.setText(
            f"Cases where they disagree: {count} (double-click to review)"
            if count
            else "The two versions give the same verdict on every case."
        )
        self.heatmap.set_result(doc)
        self.save_png.setEnabled(True)
        # The heatmap's pane as tall as its rows need (at most half the view); the tables the rest.
        total = sum(self.split.sizes())
        want = min(self.heatmap.sizeHint().height() + 30, total // 2)
        if total > 0:
            self.split.setSizes([want, total - want])

    def _save_png(self) -> None:
        doc = self.result
        if doc is None or not self.heatmap.has_result():
            return
        a, b = doc["a"].get("name", "A"), doc["b"].get("name", "B")
        default = (
            self.workspace.exports_dir / "compare" / f"heatmap_{a}_vs_{b}.png".replace("/", "_")
        )
        path, _ = QFileDialog.getSaveFileName(
            self, "Save heatmap", str(default), "PNG image (*.png)"
        )
        if path:
            try:
                self.heatmap.save_png(path)
            except OSError as exc:
                self.status.setText(f"The heatmap was not saved: {exc}")
            else:
                self.status.setText(f"Heatmap saved: {path}")

    def _open(self, index) -> None:
        case_id = self.cases.item(index.row(), 0).data(Qt.ItemDataRole.UserRole)
        if case_id:
            self.openCase.emit(case_id)

    def shutdown(self) -> None:
        if self.process.running:
            self.process.terminate()
            self.process.wait(5000)
