"""First run (docs/architecture.md budget): a reviewable first case within 60 s of "Create demo and start",
and how long until the full demo models have taken over in the background.

    .venv/bin/python -m benchmarks.bench_first_run [--runs 3] [--skip-full]

Drives the real app, offscreen, as a new user does: the first-run dialog with a name typed in,
then "Create demo and start" (a real ``medreview demo create --quick`` child: 600 cases, the
heuristic and the quick model), the dialog closing, the main window opening on the workspace
(as ``app.gui.app.run`` does), until the first case is on screen with two verdicts that can be
rated. Each run uses a fresh workspace. After the last run the window stays open while the full
demo models train in the background (``medreview demo models``, at low priority), and the time
until they are registered, their verdicts stored and shown from the next case is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def wait(app, cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        app.processEvents()
        time.sleep(0.005)
    return True


def first_run(root: Path, settings_path: Path, keep_open: bool):
    """Seconds from the click to a reviewable case; the window when ``keep_open``."""
    from app.gui.app import application, open_context
    from app.gui.main_window import MainWindow
    from app.gui.preload import Preload
    from app.gui.settings_dialog import FirstRunDialog
    from app.settings import Settings, save_settings
    from app.workspace import Workspace

    app = application(Settings())
    ws = Workspace(root)
    dialog = FirstRunDialog(Settings(), ws)
    dialog.show()
    dialog.name.setText("Dr Bench")
    accepted: list[bool] = []
    dialog.accepted.connect(lambda: accepted.append(True))
    t0 = time.perf_counter()
    dialog.ok.click()
    if not wait(
        app, lambda: bool(accepted) or (dialog.panel.state or "").startswith("failed"), 600
    ):
        raise SystemExit("the demo was not created within 10 minutes")
    if not accepted:
        raise SystemExit(
            f"demo creation failed: {dialog.panel.state}\n{dialog.panel.log.toPlainText()}"
        )
    created = time.perf_counter() - t0
    settings = dialog.result_settings
    save_settings(settings, settings_path)
    dialog.close()
    win = MainWindow(open_context(ws, settings, settings_path, Preload(ws, settings)))
    win.confirm = lambda *_a: True
    win.show()
    if not wait(
        app,
        lambda: win.first_case_shown and win.review.shown is not None and win.review.shown.can_rate,
        60,
    ):
        raise SystemExit("no reviewable case after the demo was created")
    reviewable = time.perf_counter() - t0
    if not keep_open:
        win.close()
        return created, reviewable, None
    return created, reviewable, win


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--skip-full", action="store_true", help="do not wait for the full demo models"
    )
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = tempfile.TemporaryDirectory(prefix="bench-first-run-")
    base = Path(tmp.name)
    os.environ["MEDREVIEW_SETTINGS"] = str(base / "settings.json")
    results = []
    win = None
    for i in range(args.runs):
        last = i == args.runs - 1 and not args.skip_full
        created, reviewable, win = first_run(
            base / f"ws{i}", base / "settings.json", keep_open=last
        )
        results.append(reviewable)
        print(
            f"run {i + 1}: demo created {created:.1f} s, first reviewable case {reviewable:.1f} s after the click",
            flush=True,
        )
    med = statistics.median(results)
    print(
        f"first run, click to first reviewable case: median {med:.1f} s over {len(results)} runs "
        f"(min {min(results):.1f}, max {max(results):.1f}); budget 60 s: {'OK' if med < 60 else 'OVER'}"
    )
    if win is not None:
        from app.qt import QApplication

        app = QApplication.instance()
        job = win.dialogs.get("demo-models")
        if job is None:
            raise SystemExit("the window did not start the full demo models")
        t0 = time.perf_counter()
        states: list[str] = []
        job.completed.connect(states.append)
        # While they train, the clinician reviews: a step every 2 s keeps the window busy.
        next_step = time.monotonic()
        end = time.monotonic() + 3600
        while not states and time.monotonic() < end:
            app.processEvents()
            if time.monotonic() >= next_step:
                win.review.next()
                next_step += 2.0
            time.sleep(0.01)
        trained = time.perf_counter() - t0
        if states != ["done"]:
            raise SystemExit(
                f"the demo models did not finish: {states or 'timeout'}\n{job.panel.log.toPlainText()}"
            )
        win.review.next()  # the new versions apply from the next case
        wait(app, lambda: False, 0.2)
        pair = win.review.versions
        print(
            f"full demo models ready in the background: {trained:.0f} s after the first case "
            f"({(trained + results[-1]) / 60:.1f} min after the click); review pair now {pair}"
        )
        win.close()
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
