""" "Run model on these cases": verdicts for the cases that have none from the review pair.

Imported cases arrive with no verdicts, so they cannot be rated. This runs
``medreview predict --version V --split all --missing`` for each version of the review pair that
lacks verdicts, one after the other, as child processes (the window never loads a model), with
the progress, the log and Cancel of a background job. Offered at the end of an import and in the
Model menu.
"""

from __future__ import annotations

from typing import Any

from app.gui.jobs import JobDialog
from app.qt import QDialogButtonBox
from app.workspace import Workspace


def missing_counts(reader: Any, versions: list[str]) -> dict[str, int]:
    """How many of the workspace's cases each version has no verdict on."""
    ids = set(reader.query_case_ids(order="id"))
    known = {v.name for v in reader.model_versions()}
    out = {}
    for name in versions:
        if name not in known:
            out[name] = len(ids)
            continue
        have = reader.predictions_for_version(name)
        done = set(have) if isinstance(have, dict) else {p.case_id for p in have}
        out[name] = len(ids - done)
    return out


class PredictDialog(JobDialog):
    """Say what is missing, run the versions that lack verdicts, follow them."""

    def __init__(
        self,
        workspace: Workspace,
        reader: Any,
        versions: list[str],
        device: str = "auto",
        parent=None,
    ) -> None:
        super().__init__("Run model on these cases", "", parent)
        self.workspace = workspace
        self.reader = reader
        self.versions = list(versions)
        self.device = device
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.ActionRole)
        self.run_button.clicked.connect(self.run)
        self.refresh()

    def refresh(self) -> None:
        """Recount what is missing and say so."""
        self.missing = missing_counts(self.reader, self.versions) if self.versions else {}
        todo = {v: n for v, n in self.missing.items() if n}
        if not self.versions:
            text = "There is no model version to run: register one in Settings, or create the demo workspace."
        elif not todo:
            text = (
                "Every case has a verdict from " + " and ".join(self.versions) + ". Nothing to run."
            )
        else:
            parts = [f"{v} on {n} case{'s' if n != 1 else ''}" for v, n in todo.items()]
            text = (
                "Cases without verdicts cannot be rated. This runs "
                + " and then ".join(parts)
                + " in the background (a model is loaded in a separate process); you can keep "
                "reviewing, and the new verdicts appear when it has finished."
            )
        self.intro.setText(text)
        self.run_button.setEnabled(bool(todo) and not self.running)

    def runs(self) -> list[list[str]]:
        """The ``medreview predict`` argument lists to run, one per version lacking verdicts."""
        out = []
        for version, n in self.missing.items():
            if n:
                args = [
                    "predict",
                    "--version",
                    version,
                    "--split",
                    "all",
                    "--missing",
                    "--workspace",
                    str(self.workspace.root),
                    "--progress",
                    "json",
                ]
                if self.device != "auto":
                    args += ["--device", self.device]
                out.append(args)
        return out

    def run(self) -> bool:
        """Start the runs; False when there is nothing to run."""
        runs = self.runs()
        if not runs or self.running:
            return False
        self.run_button.setEnabled(False)
        self.start(*runs)
        return True

    def _finished(self, code: int, state: str) -> None:
        super()._finished(code, state)
        if not self._queue and not self.running:
            self.refresh()
