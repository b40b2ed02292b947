"""Export, import, retrain and compare from the window: real child processes on a real store."""

from __future__ import annotations

import importlib.util
import json

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


def test_retrain_runs_the_child_and_cancel_or_failure_is_shown(qtbot, window) -> None:
    dialog = window.open_retrain()
    dialog.start_button.click()
    assert dialog.running
    has_train = importlib.util.find_spec("app.cli.train") is not None
    if has_train:
        # Wait for the first progress line, then cancel: SIGTERM, reported as canceled.
        qtbot.waitUntil(lambda: dialog.stage.text() != "Stage: starting" or not dialog.running, timeout=120000)
        with qtbot.waitSignal(dialog.panel.finished, timeout=120000) as done:
            if dialog.running:
                dialog.cancel_button.click()
        assert done.args[1] in ("canceled", "done") or done.args[1].startswith("failed")
        assert dialog.result.text()
    else:
        with qtbot.waitSignal(dialog.panel.finished, timeout=60000) as done:
            pass
        assert done.args[1].startswith("failed")
        assert "not available yet" in dialog.result.text()
        assert dialog.panel.status.property("error") == "true"
    assert not dialog.running
    # The window stayed usable: the next case can still be shown.
    window.review.next()
    assert window.review.row == 1


def test_compare_fills_metrics_and_opens_a_disagreement(qtbot, window) -> None:
    window.actions_by_name["compare"].trigger()
    view = window.compare_view
    assert window.tabs.currentWidget() is view
    assert view.version_a.currentText() == "v1" and view.version_b.currentText() == "v2"
    with qtbot.waitSignal(view.compared, timeout=120000) as done:
        view.run_button.click()
    assert done.args[0] in ("done", "partial"), view.status.text()
    assert view.metrics.rowCount() >= 5
    assert "[" in view.metrics.item(0, 1).text(), "accuracy with its interval"
    assert "McNemar" in view.mcnemar.text()
    assert view.cases.rowCount() > 0
    assert view.heatmap.pixmap() is not None and not view.heatmap.pixmap().isNull()
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
