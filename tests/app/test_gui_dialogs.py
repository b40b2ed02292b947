"""Export, import, retrain and compare from the window: real child processes on a real store."""

from __future__ import annotations

import importlib.util
import json

import pytest

from app.qt import QApplication, Qt


def _rate(qtbot, win, keys_list) -> None:
    win.activateWindow()
    win.review_view.image.viewer.setFocus()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win)
    for keys in keys_list:
        with qtbot.waitSignal(win.review.saved, timeout=5000):
            for key in keys:
                qtbot.keyClick(QApplication.focusWidget() or win.review_view, key)


def _export(qtbot, win, out) -> str:
    dialog = win.open_export()
    dialog.path.setText(str(out))
    with qtbot.waitSignal(dialog.completed, timeout=60000) as done:
        dialog.run_button.click()
    return done.args[0]


def test_export_writes_the_rated_pairs(qtbot, window, tmp_path) -> None:
    K = Qt.Key
    _rate(qtbot, window, [(K.Key_1, K.Key_E, K.Key_Return), (K.Key_2, K.Key_C, K.Key_Return)])
    rated = {window.review.ids[0], window.review.ids[1]}
    out = tmp_path / "out" / "expert_feedback.jsonl"
    state = _export(qtbot, window, out)
    assert state == "done", window.dialogs["export"].panel.log.toPlainText()
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["case_id"] for r in rows} == rated
    for r in rows:
        assert r["chosen"][0]["role"] == "assistant" and r["reviewer"] == "Dr Test"
        assert (out.parent / r["images"][0]).exists()
    assert "Finished" in window.dialogs["export"].panel.status.text()


def test_import_ratings_lists_bad_lines(qtbot, window, tmp_path) -> None:
    K = Qt.Key
    _rate(qtbot, window, [(K.Key_1, K.Key_E, K.Key_Return)])
    out = tmp_path / "fb" / "expert_feedback.jsonl"
    assert _export(qtbot, window, out) == "done"
    with out.open("a", encoding="utf-8") as fh:
        fh.write("this is not json\n")
    dialog = window.open_import()
    dialog.path.setText(str(out))
    with qtbot.waitSignal(dialog.completed, timeout=60000) as done:
        dialog.run_button.click()
    assert done.args[0] == "partial", dialog.panel.log.toPlainText()
    problems = [dialog.panel.problems.item(i).text() for i in range(dialog.panel.problems.count())]
    assert len(problems) == 1 and ":2" in problems[0], problems
    assert "rejected" in dialog.panel.status.text()


def test_import_of_a_missing_path_is_refused_in_words(qtbot, window, tmp_path) -> None:
    dialog = window.open_import()
    dialog.path.setText(str(tmp_path / "nope.csv"))
    dialog.run_button.click()
    assert "does not exist" in dialog.panel.status.text()
    assert not dialog.panel.running


def test_retrain_failure_of_the_child_is_shown_in_words(qtbot, window) -> None:
    """The fixture's versions have no model files, so the real ``medreview train retrain`` fails
    (or, before that verb existed, said it was not available): the dialog says why, in red."""
    dialog = window.open_retrain()
    with qtbot.waitSignal(dialog.panel.finished, timeout=120000) as done:
        dialog.start_button.click()
        assert dialog.running
    assert done.args[1].startswith("failed")
    reason = done.args[1].removeprefix("failed: ")
    assert reason and reason in dialog.result_label.text()
    assert dialog.result_label.text().startswith("Training failed:")
    assert dialog.panel.status.property("error") == "true"
    assert not dialog.running and dialog.start_button.isEnabled()
    # The window stayed usable: the next case can still be shown.
    window.review.next()
    assert window.review.row == 1


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("app.cli.train") is None, reason="no train verb")
def test_real_retrain_shows_progress_and_cancels(qtbot, tmp_path, settings_file) -> None:
    """A real demo workspace (tiny models), a few ratings, then a retrain canceled mid-way."""
    import subprocess
    import sys

    from app.gui.app import build_window
    from app.settings import load_settings
    from app.workspace import Workspace

    root = tmp_path / "demo"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli.main",
            "demo",
            "create",
            "--workspace",
            str(root),
            "--cases",
            "40",
            "--progress",
            "none",
        ],
        check=True,
        capture_output=True,
    )
    win = build_window(Workspace(root), load_settings(settings_file), settings_file)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.first_case_shown, timeout=10000)
    K = Qt.Key
    _rate(
        qtbot,
        win,
        [
            (K.Key_1, K.Key_E, K.Key_Return),
            (K.Key_2, K.Key_C, K.Key_Return),
            (K.Key_4, K.Key_E, K.Key_Return),
            (K.Key_1, K.Key_C, K.Key_Return),
        ],
    )
    versions = {v.name for v in win.ctx.reader.model_versions()}
    dialog = win.open_retrain()
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.plot.point_count() > 0 or not dialog.running, timeout=300000)
    assert dialog.running, dialog.panel.log.toPlainText()
    assert dialog.stage.text() != "Stage: starting"
    with qtbot.waitSignal(dialog.panel.finished, timeout=120000) as done:
        dialog.cancel_button.click()
    assert done.args[1] == "canceled"
    assert "canceled" in dialog.result_label.text()
    assert {v.name for v in win.ctx.reader.model_versions()} == versions
    win.close()


def test_compare_fills_metrics_and_opens_a_disagreement(qtbot, window) -> None:
    window.actions_by_name["compare"].trigger()
    view = window.compare_view
    assert window.tabs.currentWidget() is view
    assert view.version_a.currentText() == "v1" and view.version_b.currentText() == "v2"
    with qtbot.waitSignal(view.compared, timeout=120000) as done:
        view.run_button.click()
    assert done.args[0] == "done", (
        view.status.text()
    )  # both versions judged every case: none left out
    assert view.metrics.rowCount() >= 5
    assert "[" in view.metrics.item(0, 1).text(), "accuracy with its interval"
    assert "McNemar" in view.mcnemar.text()
    assert view.cases.rowCount() > 0
    assert view.heatmap.has_result()
    case_id = view.cases.item(0, 0).text()
    rect = view.cases_table.visualRect(view.cases.index(0, 0))
    # QTest's double-click lacks the press that item views need first; click, then double-click.
    qtbot.mouseClick(view.cases_table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.cases_table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.tabs.currentIndex() == 0
    assert window.review.shown.case.case_id == case_id


def test_worker_errors_reach_one_dialog_in_words(qtbot, window) -> None:
    def boom(store, _progress):
        store.undo_rating(999999)

    window.ctx.ops.db.submit(boom, what="Undoing a rating")
    qtbot.waitUntil(lambda: bool(window.errors), timeout=5000)
    title, message = window.errors[0]
    assert title == "Undoing a rating"
    assert "999999" in message
    box = window.dialogs["error"]
    assert box.isVisible() and "999999" in box.text()
    box.close()


def test_import_manifest_imports_good_rows_and_lists_bad_ones(qtbot, window, tmp_path) -> None:
    from PIL import Image

    folder = tmp_path / "incoming"
    folder.mkdir()
    Image.new("L", (64, 48), 120).save(folder / "good.png")
    manifest = folder / "cases.csv"
    manifest.write_text(
        "modality,image,finding,treatment,split\n"
        "xray,good.png,Lobar consolidation (pneumonia),Oral antibiotics,test\n"
        "xray,missing.png,Lobar consolidation (pneumonia),Oral antibiotics,test\n",
        encoding="utf-8",
    )
    before = window.review.total
    dialog = window.open_import()
    dialog.path.setText(str(manifest))
    with qtbot.waitSignal(dialog.completed, timeout=60000) as done:
        dialog.run_button.click()
    assert done.args[0] == "partial", dialog.panel.log.toPlainText()
    problems = [dialog.panel.problems.item(i).text() for i in range(dialog.panel.problems.count())]
    assert len(problems) == 1 and "cases.csv:3" in problems[0] and "missing.png" in problems[0], (
        problems
    )
    # The queue was reloaded with the imported case.
    assert window.review.total == before + 1
    assert window.review_view.queue.count.text().startswith(f"Rated 0 / total {before + 1}")
