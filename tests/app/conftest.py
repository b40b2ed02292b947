"""GUI test fixtures: a small real workspace (SQLite store, PNG images, two model versions with
predictions), settings in a temporary file, the main window, and a guard that fails any test
that leaves a thread running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings, save_settings
from app.workspace import Workspace
from core.cases.records import MODALITIES

N_CASES = 20


def build_workspace(root: Path, n_cases: int = N_CASES) -> dict:
    """A workspace with the demo generator's cases (phantom images in all four modalities; splits
    dealt round-robin so every split has cases) and
    two versions' verdicts on each: v1 (active) follows the ground truth, v2 disagrees with it on
    every fourth case and writes one unparseable answer. Returns facts the tests check against.
    """
    from core.demo import generate_demo
    from feedback_db import CaseIn, PredictionIn, open_store

    ws = Workspace(root).ensure()
    demo = generate_demo(root, seed=0, n_cases=n_cases)
    cases = [
        CaseIn(
            case_id=c.case_id,
            modality=c.modality,
            image=c.image,
            finding=c.finding,
            treatment=c.treatment,
            error_type=c.error_type,
            severity=c.severity,
            cost_impact=c.cost_impact,
            split=("train", "val", "test")[n % 3],
        )
        for n, c in enumerate(demo)
    ]  # re-split: a 20-case demo puts nearly all in train
    unparseable = cases[4].case_id
    store = open_store(ws.db_url)
    try:
        store.add_cases(cases)
        store.add_model_version("v1", "heuristic", "knowledge-table", active=True)
        store.add_model_version("v2", "clip-llm", "demo-llm", parent="v1")
        v1, v2 = [], []
        for n, c in enumerate(cases):
            label1 = "ERROR" if c.error_type != "none" else "CORRECT"
            label2 = label1 if n % 4 else ("CORRECT" if label1 == "ERROR" else "ERROR")
            v1.append(
                PredictionIn(
                    c.case_id,
                    label1,
                    f"v1 reason {n}",
                    f"{label1} - v1 reason {n}",
                    confidence=0.55 + (n % 9) * 0.05,
                )
            )
            if c.case_id == unparseable:
                v2.append(
                    PredictionIn(
                        c.case_id, "UNPARSEABLE", "I am not sure", "I am not sure", confidence=0.5
                    )
                )
            else:
                v2.append(
                    PredictionIn(
                        c.case_id,
                        label2,
                        f"v2 reason {n}",
                        f"{label2} - v2 reason {n}",
                        confidence=0.6 + (n % 5) * 0.07,
                    )
                )
        store.add_predictions("v1", v1)
        store.add_predictions("v2", v2)
    finally:
        store.close()
    by_modality: dict[str, list[str]] = {m: [] for m in MODALITIES}
    for c in cases:
        by_modality[c.modality].append(c.case_id)
    return {
        "root": root,
        "case_ids": [c.case_id for c in cases],
        "n": len(cases),
        "by_modality": by_modality,
        "unparseable": unparseable,
    }


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
