"""Screenshots of every view, at several screen sizes and in both themes, for review and the docs.

    xvfb-run -s "-screen 0 2560x1440x24" .venv/bin/python scripts/screenshots.py [--out DIR]
        [--sizes 1024x768,1440x900,2560x1440] [--themes dark,light] [--workspace DIR] [--no-retrain]

Builds a real workspace unless ``--workspace`` names one: the first run's quick demo
(``medreview demo create --quick --cases 120``: the heuristic and the quick text model) plus a
multi-frame CT imported as DICOM. Then it drives the real window as a clinician would: rates a
dozen cases, exports, imports a ratings file with a bad line and a manifest of new cases, runs the
models on them, compares two versions, runs a real retrain (its plot, then its end), and opens
settings, the first-run dialog and the keyboard overlay. Each view is then saved for every theme
and size as ``<theme>-<width>x<height>-<view>.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
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


def build_workspace(root: Path, tmp: Path) -> None:
    """The quick demo (what a first run opens on) plus a multi-frame CT DICOM case."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli.main",
            "demo",
            "create",
            "--quick",
            "--cases",
            "120",
            "--workspace",
            str(root),
            "--progress",
            "none",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    (root / "demo_models_pending.json").unlink(missing_ok=True)  # no full demo training here
    from tests.app.test_gui_viewer_tools import write_ct

    folder = tmp / "ct"
    folder.mkdir()
    write_ct(folder / "scan.dcm")
    (folder / "cases.csv").write_text(
        "modality,image,finding,treatment,split\n"
        "xray,scan.dcm,Lobar consolidation (pneumonia),Oral antibiotics,test\n",
        encoding="utf-8",
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli.main",
            "import",
            str(folder / "cases.csv"),
            "--workspace",
            str(root),
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )


def new_cases_manifest(tmp: Path) -> Path:
    from PIL import Image

    folder = tmp / "incoming"
    folder.mkdir()
    for i in range(2):
        Image.new("L", (256, 256), 90 + 40 * i).save(folder / f"new{i}.png")
    manifest = folder / "cases.csv"
    manifest.write_text(
        "modality,image,finding,treatment,split\n"
        "xray,new0.png,Lobar consolidation (pneumonia),Oral antibiotics,test\n"
        "xray,new1.png,Lobar consolidation (pneumonia),Chemotherapy,test\n",
        encoding="utf-8",
    )
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/medreview-screenshots")
    parser.add_argument("--workspace", help="an existing workspace (default: build one)")
    parser.add_argument("--sizes", default="1024x768,1440x900,2560x1440")
    parser.add_argument("--themes", default="dark,light")
    parser.add_argument("--no-retrain", action="store_true", help="skip the real retrain (minutes)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="shots-"))
    os.environ["MEDREVIEW_SETTINGS"] = str(tmp / "settings.json")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    themes = args.themes.split(",")

    from app.gui.app import application, build_window
    from app.gui.settings_dialog import FirstRunDialog
    from app.gui.theme import apply_theme
    from app.qt import QApplication, QPointF
    from app.settings import Settings, save_settings
    from app.workspace import Workspace

    root = Path(args.workspace) if args.workspace else tmp / "ws"
    if not args.workspace:
        build_workspace(root, tmp)
    settings = Settings(reviewer_name="Dr A. Lee", reviewer_role="radiologist", theme=themes[0])
    save_settings(settings, tmp / "settings.json")
    app = application(settings)
    win = build_window(Workspace(root), settings, tmp / "settings.json")
    win.confirm = lambda *_a: True
    win.resize(1440, 900)
    win.show()
    wait(app, lambda: win.first_case_shown)
    review, view = win.review, win.review_view

    # -- ratings as a clinician would give them (the demo's ground truth stands in for their
    # judgement), on cases outside val/test, enough for a retrain (RetrainConfig.min_judged_cases)
    rated = 0
    for case_id in list(review.ids):
        if rated >= 30:
            break
        case = review.reader.get_case(case_id)
        if case.split in ("val", "test"):
            continue
        review.open_case(case_id)
        shown = review.shown
        if shown is None or not shown.can_rate:
            continue
        truth = "ERROR" if case.error_type not in (None, "none") else "CORRECT"
        right = [side for side, p in (("a", shown.a), ("b", shown.b)) if p.label == truth]
        pref = right[0] if len(right) == 1 else ("tie" if len(right) == 2 else "both_wrong")
        view.rating.set_preference(pref)
        view.rating.set_true_label(truth)
        if truth == "ERROR":
            for _ in range(("critical", "high", "moderate").index(case.severity or "moderate") + 1):
                view.rating.cycle_severity()
        view.save()
        rated += 1
        wait(app, lambda n=rated: len(review.rated) >= n, 20)
    review.go_to(0)
    wait(app, lambda: view.image.shown_case_id == review.shown.case.case_id, 10)

    # -- export, then import the file back with a broken last line ---------------------------
    export = win.open_export()
    export.path.setText(str(tmp / "export" / "expert_feedback.jsonl"))
    export.run_button.click()
    wait(app, lambda: export.panel.state is not None)
    export.hide()
    feedback = tmp / "export" / "expert_feedback.jsonl"
    if feedback.exists():
        with feedback.open("a", encoding="utf-8") as fh:
            fh.write('{"prompt": "half a line\n')
    importer = win.open_import()
    importer.path.setText(str(feedback))
    importer.run_button.click()
    wait(app, lambda: importer.panel.state is not None)
    importer.path.setText(str(new_cases_manifest(tmp)))
    importer.run_button.click()
    wait(app, lambda: importer.panel.state is not None and not importer.panel.running)
    wait(app, lambda: importer.run_model.isVisible(), 10)
    importer.hide()

    # -- run the models on the new cases ------------------------------------------------------
    predict = win.open_predict()
    predict.run()
    wait(app, lambda: not predict.running, 300)
    predict.hide()

    # -- compare --------------------------------------------------------------------------------
    win.tabs.setCurrentIndex(1)
    cv = win.compare_view
    names = [cv.version_a.itemText(i) for i in range(cv.version_a.count())]
    if "heuristic" in names and len(names) > 1:
        cv.version_a.setCurrentText("heuristic")
        cv.version_b.setCurrentText(next(n for n in names if n != "heuristic"))
    cv.run()
    wait(app, lambda: cv.run_button.isEnabled(), 300)
    win.tabs.setCurrentIndex(0)

    # -- retrain: its plot while it runs, the status-bar item, then its end ---------------------
    retrain = win.open_retrain()
    retrain_states: dict[str, bool] = {}
    if not args.no_retrain:
        retrain.start()
        wait(app, lambda: retrain.plot.point_count() >= 40 or not retrain.running, 900)
        retrain_states["running"] = retrain.running
    retrain.hide()

    # -- the CT case: frame 2, a measurement, the info panel ------------------------------------
    ct_id = next(
        (cid for cid in review.ids if review.reader.get_case(cid).image.endswith(".dcm")), None
    )

    def show_ct() -> None:
        if ct_id is None:
            return
        win.open_case(ct_id)
        pane = view.image
        wait(app, lambda: pane.shown_case_id == ct_id and pane.image is not None, 20)
        pane.frame_slider.setValue(1)
        wait(app, lambda: (pane.image.meta or {}).get("frame") == 1, 20)
        pane.viewer.fit()
        pane.viewer.measure(QPointF(24, 30), QPointF(70, 52))
        pane.show_info(True)
        wait(app, lambda: len(pane.info_rows) > 5, 20)
        pane.viewer.hovered.emit(90, 42)

    def leave_ct() -> None:
        view.image.show_info(False)
        view.image.viewer.clear_ruler()
        review.go_to(1)
        wait(app, lambda: view.image.shown_case_id == review.shown.case.case_id, 10)

    # The first run, creating its demo (a real ``demo create --quick``) while the shots are taken.
    first_run = FirstRunDialog(Settings(), Workspace(tmp / "not-yet"))
    first_run.name.setText("Dr A. Lee")
    first_run.show()
    first_run.go()
    wait(
        app,
        lambda: first_run.panel.overall is not None and first_run.panel.overall.fraction > 0.15,
        120,
    )
    settings_dialog = None

    def grab(widget, name: str, theme_name: str, size: tuple[int, int]) -> None:
        for _ in range(8):
            app.processEvents()
            time.sleep(0.01)
        path = out / f"{theme_name}-{size[0]}x{size[1]}-{name}.png"
        widget.grab().save(str(path))
        print(path)

    def fit_dialog(dialog, size: tuple[int, int]) -> None:
        w, h = dialog.sizeHint().width(), dialog.sizeHint().height()
        dialog.resize(min(max(w, 640), size[0] - 40), min(max(h, 420), size[1] - 80))

    for theme_name in themes:
        apply_theme(app, theme_name, 1.0)
        win.apply_look(win.ctx.settings.updated(theme=theme_name))
        for size in sizes:
            # The window as a maximised window on that screen (minus a panel and a title bar).
            win.resize(max(size[0], win.minimumWidth()), max(size[1] - 48, win.minimumHeight()))
            wait(app, lambda: False, 0.2)
            view.splitter.setSizes(view.default_sizes(view.width()))  # a fresh layout at that size
            review.go_to(1)
            wait(app, lambda: view.image.shown_case_id == review.shown.case.case_id, 10)
            grab(win, "review", theme_name, size)
            view.rating.set_preference("both_wrong")
            view.rating.set_true_label("ERROR")
            view.rating.rationale.setPlainText(
                "Chemotherapy is not indicated for an uncomplicated pneumonia."
            )
            grab(win, "review-choosing", theme_name, size)
            show_ct()
            grab(win, "review-ct", theme_name, size)
            leave_ct()
            win.show_shortcuts()
            grab(win, "shortcuts", theme_name, size)
            win.overlay.hide()
            win.tabs.setCurrentIndex(1)
            if not cv.heatmap.has_result():  # new versions (the retrain) refilled the pickers
                cv.run()
                wait(app, lambda: cv.run_button.isEnabled(), 300)
            grab(win, "compare", theme_name, size)
            win.tabs.setCurrentIndex(0)
            for name, dialog in (
                ("import", importer),
                ("export", export),
                ("predict", predict),
                ("retrain", retrain),
            ):
                fit_dialog(dialog, size)
                dialog.show()
                grab(dialog, name, theme_name, size)
                dialog.hide()
            settings_dialog = win.open_settings()
            fit_dialog(settings_dialog, size)
            grab(settings_dialog, "settings", theme_name, size)
            settings_dialog.reject()
            first_run.show()
            grab(first_run, "first-run", theme_name, size)
            first_run.hide()

    if not args.no_retrain:
        wait(app, lambda: not retrain.running, 1800)
        wait(app, lambda: retrain.panel.state is not None, 30)
        win.resize(sizes[0][0], max(sizes[0][1] - 48, win.minimumHeight()))
        retrain.show()
        grab(retrain, "retrain-end", themes[-1], sizes[0])
        retrain.hide()
        grab(win, "review-after-retrain", themes[-1], sizes[0])
    if first_run.panel.running:  # stop its demo create and let it clean up
        first_run.panel.cancel()
        first_run.panel.process.wait(60000)
    first_run.reject()
    win.close()
    QApplication.processEvents()
    print(
        f"retrain: {retrain_states or 'skipped'}; result: {retrain.result_label.text()[:200]!r}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
