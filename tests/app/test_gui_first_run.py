"""First run: one overall progress with an honest time left, a log that says what is happening,
``demo create --quick`` (reviewable within a minute) and the full demo models in the background."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.gui.progress_plan import OverallProgress, format_left
from core.runtime.progress import ProgressEvent

ROOT = Path(__file__).resolve().parents[2]
PLAN = (
    ("images", "Drawing the images", 10.0),
    ("train", "Training", 30.0),
    ("predict", "Predicting", 10.0),
)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_one_overall_progress_that_never_restarts() -> None:
    clock = Clock()
    op = OverallProgress(PLAN, clock=clock)
    op.start()
    seen = []
    for stage, total in (("images", 10), ("train", 30), ("predict", 10)):
        for step in range(0, total + 1, 5):
            clock.t += 1.0
            seen.append(op.update(ProgressEvent(stage, step, total)).fraction)
    assert seen == sorted(seen), "the overall fraction only goes up, across stages"
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(1.0)
    assert op.update(ProgressEvent("done", 1, 1)) is None


def test_time_left_follows_this_machines_speed() -> None:
    clock = Clock()
    op = OverallProgress(PLAN, clock=clock)
    op.start()
    first = op.update(ProgressEvent("images", 0, 10))
    assert not first.measured and first.eta_s == pytest.approx(50.0), (
        "before data: the plan's own figure"
    )
    # This machine runs at half the plan's speed: 10 planned seconds of images take 20 s.
    clock.t = 20.0
    done_images = op.update(ProgressEvent("images", 10, 10))
    assert done_images.measured and done_images.eta_s == pytest.approx(
        80.0
    )  # 40 planned s left, x2
    clock.t = 50.0
    mid = op.update(ProgressEvent("train", 15, 30, eta_s=25.0))  # the stage's own estimate
    assert mid.index == 1 and mid.words == "Training"
    assert mid.eta_s == pytest.approx(25.0 + 10.0 * (50.0 / 25.0))
    assert (
        format_left(mid.eta_s) == "45 s left"
        and format_left(130, about=True) == "about 2 min 10 s left"
    )


def test_process_panel_shows_the_whole_run_and_logs_each_stage(qtbot) -> None:
    from app.gui.process_panel import ProcessPanel

    panel = ProcessPanel()
    qtbot.addWidget(panel)
    panel.set_plan(PLAN)
    panel.plan.start()
    summaries = []
    panel.summaryChanged.connect(summaries.append)
    panel._on_progress(ProgressEvent("images", 5, 10))
    panel._on_progress(ProgressEvent("train", 3, 30))
    assert panel.bar.maximum() == 1000 and panel.bar.value() == round(1000 * (10 + 3) / 50)
    assert panel.status.text() == "Step 2 of 3: Training 3/30"
    log = panel.log.toPlainText()
    assert "Drawing the images (10)" in log and "finished in" in log and "Training (30)" in log
    assert summaries and summaries[-1].startswith("26%")


def test_the_app_first_run_creates_the_quick_demo(qtbot, tmp_path) -> None:
    from app.gui.settings_dialog import FirstRunDialog
    from app.settings import Settings
    from app.workspace import Workspace

    dialog = FirstRunDialog(Settings(), Workspace(tmp_path / "ws"))
    qtbot.addWidget(dialog)
    args = []
    dialog.panel.process.start = lambda verb_args, **kw: args.append(list(verb_args))
    dialog.name.setText("Dr New")
    dialog.go()
    assert args and args[0][:3] == ["demo", "create", "--quick"]
    assert dialog.panel.plan is not None and dialog.panel.plan.plan[0][0] == "demo images"


@pytest.mark.slow
def test_quick_demo_then_the_window_trains_the_full_models_in_the_background(
    qtbot, tmp_path, settings_file
) -> None:
    from app.cli.demo import PENDING_NAME, QUICK_VERSION
    from app.gui.app import build_window
    from app.settings import load_settings
    from app.workspace import Workspace
    from feedback_db import open_store

    root = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli.main",
            "demo",
            "create",
            "--quick",
            "--workspace",
            str(root),
            "--cases",
            "40",
            "--progress",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    stages = [json.loads(x)["stage"] for x in proc.stdout.splitlines() if x.startswith("{")]
    assert stages[0] == "demo images" and f"predict: {QUICK_VERSION}" in stages
    assert (root / PENDING_NAME).is_file()
    with open_store(Workspace(root).db_url) as store:
        assert [v.name for v in store.model_versions()] == ["heuristic", QUICK_VERSION]
        assert len(store.predictions_for_version(QUICK_VERSION)) == 40

    win = build_window(Workspace(root), load_settings(settings_file), settings_file)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.first_case_shown, timeout=10000)
    assert win.review.shown.can_rate and set(win.review.versions) == {"heuristic", QUICK_VERSION}
    job = win.dialogs["demo-models"]
    assert job.running and win.jobs["demo-models"].isVisible()
    qtbot.waitUntil(lambda: job.panel.overall is not None, timeout=120000)
    assert win.jobs["demo-models"].text().startswith("Demo models: ")
    asked = []
    win.confirm = lambda title, text: asked.append(text) or True
    win.close()
    assert asked and "demo models" in asked[0]
    assert not job.running and (root / PENDING_NAME).is_file(), (
        "a stop leaves the note: the next start goes on"
    )


def test_the_models_plan_names_every_demo_v2_language_model_run() -> None:
    """Each stage train_demo_models reports for demo-v2's LM runs (lm_restarts) has a row in the
    plan, so the background training's overall progress never drops out."""
    from app.demo_plan import MODELS_PLAN
    from core.demo.train_models import DemoTrainConfig, lm_run_stage

    planned = {stage for stage, _, _ in MODELS_PLAN}
    runs = DemoTrainConfig().lm_restarts
    assert runs > 1
    for r in range(runs):
        assert lm_run_stage("demo: demo-v2 language model", r) in planned
