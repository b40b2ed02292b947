"""The keyboard: letters are shortcuts unless a text box has focus (a focused filter never eats
them), F1 and ? open the shortcut overlay, Ctrl+Q quits, and a restart resumes where the
clinician stopped: the first unrated case, in the order they last chose."""

from __future__ import annotations

from app.qt import QApplication, Qt

K = Qt.Key


def _activate(qtbot, win) -> None:
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win)


def test_letter_shortcuts_work_with_a_filter_focused(qtbot, window) -> None:
    _activate(qtbot, window)
    queue, rating, review = window.review_view.queue, window.review_view.rating, window.review
    for box in (queue.modality, queue.status, queue.split, queue.order, queue.table):
        before = (queue.filters(), list(review.ids))
        box.setFocus()
        qtbot.waitUntil(box.hasFocus)
        # Letters that are not shortcuts must not search the box (M would pick MRI, X X-ray...)
        for key in (K.Key_M, K.Key_X, K.Key_U, K.Key_H, K.Key_B, K.Key_A, K.Key_T):
            qtbot.keyClick(box, key)
        assert (queue.filters(), list(review.ids)) == before, type(box).__name__
        # ...and the rating keys rate, with the focus still on the filter.
        row = review.row
        qtbot.keyClick(box, K.Key_4)
        qtbot.keyClick(box, K.Key_E)
        assert (rating.preference(), rating.true_label()) == ("both_wrong", "ERROR"), type(
            box
        ).__name__
        qtbot.keyClick(box, K.Key_J)
        assert review.row == row + 1, "J moves to the next case"
        qtbot.keyClick(box, K.Key_K)
        assert review.row == row


def test_letters_are_text_in_the_rationale(qtbot, window) -> None:
    _activate(qtbot, window)
    rating, review = window.review_view.rating, window.review
    window.review_view.image.viewer.setFocus()
    qtbot.keyClick(window.review_view.image.viewer, K.Key_R)
    assert rating.rationale.hasFocus()
    row = review.row
    qtbot.keyClicks(rating.rationale, "jk 1E?")
    assert rating.rationale.toPlainText() == "jk 1E?"
    assert review.row == row and rating.preference() is None and not window.overlay.isVisible()


def test_f1_and_question_mark_open_the_shortcut_overlay(qtbot, window) -> None:
    _activate(qtbot, window)
    viewer = window.review_view.image.viewer
    viewer.setFocus()
    qtbot.keyClick(viewer, K.Key_F1)
    overlay = window.overlay
    assert overlay.isVisible()
    assert overlay.geometry() == window.rect()
    text = " ".join(w.text() for w in overlay.card.findChildren(type(window.who)))
    for words in ("A better / B better", "Quit", "Keyboard shortcuts", "Retrain", "ruler"):
        assert words in text, words
    qtbot.keyClick(overlay, K.Key_Escape)
    assert not overlay.isVisible()
    viewer.setFocus()
    qtbot.keyClick(viewer, K.Key_Question)
    assert overlay.isVisible()
    qtbot.mouseClick(overlay, Qt.MouseButton.LeftButton)
    assert not overlay.isVisible()


def test_ctrl_q_quits(qtbot, window) -> None:
    _activate(qtbot, window)
    viewer = window.review_view.image.viewer
    viewer.setFocus()
    qtbot.keyClick(viewer, K.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=3000)


def test_restart_resumes_at_the_first_unrated_case_in_the_last_order(
    qtbot, workspace, settings_file
) -> None:
    from app.gui.app import build_window
    from app.settings import load_settings

    def open_window():
        win = build_window(workspace["ws"], load_settings(settings_file), settings_file)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitUntil(lambda: win.first_case_shown, timeout=10000)
        return win

    win = open_window()
    queue = win.review_view.queue
    queue.order.setCurrentIndex(queue.order.findData("id"))  # the clinician's order
    review = win.review
    ordered = list(review.ids)
    assert ordered == sorted(ordered)
    # Rate the first, second and fourth case: the third is the first unrated one.
    for row in (0, 1, 3):
        review.go_to(row)
        with qtbot.waitSignal(review.saved, timeout=5000):
            review.save("both_wrong", "ERROR", "high", None, advance=False)
    win.close()

    again = open_window()
    assert again.review.filters.order == "id"
    assert again.review.ids == ordered
    assert again.review.shown.case.case_id == ordered[2]
    assert again.review_view.queue.table.currentIndex().row() == 2
    again.close()
