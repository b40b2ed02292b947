"""Screenshots of every view at 1440x900, for review and the docs.

    xvfb-run -s "-screen 0 1440x900x24" .venv/bin/python scripts/screenshots.py [--out DIR] [--workspace DIR]

Builds a small workspace (the test fixture's: 20 cases in four modalities, two versions) unless
``--workspace`` names one, then drives the real window: review (a rated case, authors revealed),
import (a ratings file with a bad line), export, retrain (run to its end or its failure), compare
(run), settings and the first-run dialog. Each view is saved as ``<name>.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def wait(app, cond, timeout: float = 120.0) -> bool:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        app.processEvents()
        time.sleep(0.01)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/medreview-screenshots")
    parser.add_argument("--workspace", help="an existing workspace (default: build a small one)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="shots-"))
    import os

    os.environ["MEDREVIEW_SETTINGS"] = str(tmp / "settings.json")
    from app.gui.app import application, build_window
    from app.gui.settings_dialog import FirstRunDialog
    from app.qt import QApplication
    from app.settings import Settings, save_settings
    from app.workspace import Workspace

    if args.workspace:
        root = Path(args.workspace)
    else:
        from tests.app.conftest import build_workspace

        root = tmp / "ws"
        build_workspace(root)
    settings = Settings(reviewer_name="Dr A. Lee", reviewer_role="radiologist")
    save_settings(settings, tmp / "settings.json")
    app = application()
    win = build_window(Workspace(root), settings, tmp / "settings.json")
    win.resize(1440, 900)
    win.show()
    wait(app, lambda: win.first_case_shown)

    def shot(widget, name: str) -> None:
        for _ in range(5):
            app.processEvents()
        widget.grab().save(str(out / f"{name}.png"))
        print(out / f"{name}.png")

    review = win.review
    view = win.review_view
    # A first rating, so the count, the status column and a revealed pair show.
    view.rating.set_preference("a")
    view.rating.set_true_label("ERROR")
    view.rating.cycle_severity()
    view.save()
    wait(app, lambda: bool(review.rated))
    review.previous()
    wait(app, lambda: view.image.shown_case_id == review.shown.case.case_id, 10)
    shot(win, "review")

    # A few more ratings, so a retrain has preference pairs to learn from.
    review.next()
    for i in range(11):  # save() moves to the next case itself
        view.rating.set_preference(("a", "b", "both_wrong")[i % 3])
        view.rating.set_true_label("ERROR" if i % 2 else "CORRECT")
        view.save()
        wait(app, lambda n=i: len(review.rated) >= n + 2, 10)
    review.go_to(1)
    review.next()
    view.rating.set_preference("b")
    view.rating.rationale.setPlainText("Chemotherapy is not indicated for an uncomplicated pneumonia.")
    wait(app, lambda: view.image.shown_case_id == review.shown.case.case_id, 10)
    shot(win, "review-rating")

    export = win.open_export()
    export.path.setText(str(tmp / "export" / "expert_feedback.jsonl"))
    export.run_button.click()
    wait(app, lambda: export.panel.state is not None)
    shot(export, "export")
    export.close()

    feedback = tmp / "export" / "expert_feedback.jsonl"
    if feedback.exists():
        with feedback.open("a", encoding="utf-8") as fh:
            fh.write('{"prompt": "half a line\n')
    importer = win.open_import()
    importer.path.setText(str(feedback))
    importer.run_button.click()
    wait(app, lambda: importer.panel.state is not None)
    shot(importer, "import")
    importer.close()

    retrain = win.open_retrain()
    retrain.start()
    wait(app, lambda: retrain.plot.point_count() >= 40 or not retrain.running, 400)
    shot(retrain, "retrain")
    wait(app, lambda: not retrain.running, 900)
    shot(retrain, "retrain-end")
    retrain.close()

    win.tabs.setCurrentIndex(1)
    win.compare_view.run()
    wait(app, lambda: win.compare_view.run_button.isEnabled(), 300)
    shot(win, "compare")
    win.tabs.setCurrentIndex(0)

    settings_dialog = win.open_settings()
    shot(settings_dialog, "settings")
    settings_dialog.reject()

    first = FirstRunDialog(Settings(), Workspace(tmp / "not-yet"))
    first.show()
    shot(first, "first-run")
    first.close()
    win.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
