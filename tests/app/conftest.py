"""GUI test fixtures: a small real workspace (SQLite store, PNG images, two model versions with
predictions), settings in a temporary file, the main window, and a guard that fails any test
that leaves a thread running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.settings import Settings, save_settings
from app.workspace import Workspace
from core.cases import MODALITIES

FINDINGS = {
    "xray": [("Right lower lobe pneumonia", "Oral antibiotics"), ("Normal chest", "No treatment")],
    "histopathology": [("Invasive ductal carcinoma", "Surgical excision"), ("Benign tissue", "Observation")],
    "mri": [("Glioblastoma", "Surgical resection"), ("Normal brain", "No treatment")],
    "ultrasound": [("Gallstones", "Cholecystectomy"), ("Normal liver", "No treatment")],
}
CASES_PER_MODALITY = 5


def _draw(modality: str, seed: int, path: Path) -> None:
    rng = np.random.default_rng(seed)
    if modality == "histopathology":
        rgb = (rng.random((96, 128, 3)) * 60 + np.array([180, 120, 170])).clip(0, 255).astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(path)
    else:
        yy, xx = np.mgrid[0:128, 0:160]
        grey = 80 + 60 * np.exp(-((xx - 80) ** 2 + (yy - 64) ** 2) / (2 * (20 + seed % 7) ** 2))
        grey = (grey + rng.normal(0, 8, grey.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(grey, "L").save(path)


def build_workspace(root: Path) -> dict:
    """A workspace with 20 cases (five per modality) and two versions' verdicts on each.

    v1 is active; v2 disagrees with v1 on every third case and writes one unparseable answer.
    Returns facts the tests check against.
    """
    from feedback_db import CaseIn, PredictionIn, open_store

    ws = Workspace(root).ensure()
    cases: list[CaseIn] = []
    for m_index, modality in enumerate(MODALITIES):
        for i in range(CASES_PER_MODALITY):
            finding, treatment = FINDINGS[modality][i % 2]
            wrong = i % 3 == 1
            case_id = f"case-{modality[:4]}-{i:02d}"
            image = f"images/{case_id}.png"
            _draw(modality, m_index * 10 + i, root / image)
            cases.append(CaseIn(
                case_id=case_id, modality=modality, image=image, finding=finding,
                treatment="Chemotherapy" if wrong else treatment,
                error_type="treatment_mismatch" if wrong else "none",
                severity="critical" if wrong else None, split=("train", "val", "test")[i % 3],
            ))
    store = open_store(ws.db_url)
    try:
        store.add_cases(cases)
        store.add_model_version("v1", "heuristic", "knowledge-table", active=True)
        store.add_model_version("v2", "clip-llm", "demo-llm", parent="v1")
        v1, v2 = [], []
        for n, c in enumerate(cases):
            wrong = c.error_type != "none"
            label1 = "ERROR" if wrong else "CORRECT"
            label2 = label1 if n % 3 else ("CORRECT" if wrong else "ERROR")
            v1.append(PredictionIn(c.case_id, label1, f"v1 reason {n}", f"{label1} - v1 reason {n}",
                                   confidence=0.55 + (n % 9) * 0.05))
            if n == 4:
                v2.append(PredictionIn(c.case_id, "UNPARSEABLE", "I am not sure", "I am not sure", confidence=0.5))
            else:
                v2.append(PredictionIn(c.case_id, label2, f"v2 reason {n}", f"{label2} - v2 reason {n}",
                                       confidence=0.6 + (n % 5) * 0.07))
        store.add_predictions("v1", v1)
        store.add_predictions("v2", v2)
    finally:
        store.close()
    return {"root": root, "case_ids": [c.case_id for c in cases], "n": len(cases)}


@pytest.fixture(scope="session")
def _template_workspace(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_workspace(tmp_path_factory.mktemp("template") / "ws")


@pytest.fixture
def workspace(_template_workspace: dict, tmp_path: Path) -> dict:
    """A fresh copy of the small workspace for each test."""
    import shutil

    root = tmp_path / "ws"
    shutil.copytree(_template_workspace["root"], root)
    return {**_template_workspace, "root": root, "ws": Workspace(root)}


@pytest.fixture
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings in a temporary file (never the user's real settings), with a reviewer set."""
    path = tmp_path / "config" / "settings.json"
    save_settings(Settings(reviewer_name="Dr Test", reviewer_role="radiologist"), path)
    monkeypatch.setenv("MEDREVIEW_SETTINGS", str(path))
    return path


@pytest.fixture
def window(qtbot, workspace: dict, settings_file: Path):
    """The main window on the small workspace, shown, with its first case on screen."""
    from app.gui.app import build_window
    from app.settings import load_settings

    win = build_window(workspace["ws"], load_settings(settings_file), settings_file)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.first_case_shown, timeout=10000)
    yield win
    win.close()


@pytest.fixture(autouse=True)
def _no_thread_left_running() -> Iterator[None]:
    """Fail a test that leaves a thread running (napari's guard)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not left, f"threads left running: {[t.name for t in left]}"
