"""The review flow on a real store: open, rate from the keyboard, undo, filter, reveal."""

from __future__ import annotations

import pytest

from app.gui.review_model import blind_pair, pick_versions
from app.qt import QApplication, Qt


def _activate(qtbot, win) -> None:
    win.activateWindow()
    win.review_view.image.viewer.setFocus()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win)


def _keys(qtbot, win, *keys) -> None:
    target = QApplication.focusWidget() or win.review_view
    for key in keys:
        qtbot.keyClick(target, key)


def _reader_open(workspace):
    from feedback_db import open_store

    return open_store(workspace["ws"].db_url, upgrade=False)


def test_first_case_shows_case_verdicts_and_image(window, workspace) -> None:
    review = window.review
    assert len(review.ids) == workspace["n"]
    shown = review.shown
    assert shown is not None and shown.can_rate
    view = window.review_view
    assert view.case_panel.finding.text() == shown.case.finding
    assert view.case_panel.treatment.text() == shown.case.treatment
    # Each card shows its own prediction (the fixture's reasons name the version and the case).
    for card, pred in ((view.verdicts.card_a, shown.a), (view.verdicts.card_b, shown.b)):
        assert card.verdict.text() == (
            "⚠ UNPARSEABLE" if pred.label == "UNPARSEABLE" else pred.label
        )
        assert pred.reason in card.reason.text()
    assert shown.a.version != shown.b.version
    assert "hidden" in view.verdicts.card_a.author.text()
    assert window.review_view.queue.count.text().startswith(f"Rated 0 / total {workspace['n']}")
    qtbot_viewer = view.image.viewer
    assert qtbot_viewer.has_image(), window.errors
    assert window.errors == []


def test_blind_order_is_stable_and_mixed(window) -> None:
    review = window.review
    versions = review.versions
    assert versions == ("v1", "v2")
    firsts = set()
    for case_id in review.ids:
        preds = review.reader.predictions_for_case(case_id)
        a1, b1 = blind_pair(case_id, preds, versions)
        a2, b2 = blind_pair(case_id, list(reversed(preds)), versions)
        assert (a1.id, b1.id) == (a2.id, b2.id)
        firsts.add(a1.version)
    assert firsts == {"v1", "v2"}, "A must be each version on some cases"


def test_pick_versions_prefers_active(window) -> None:
    assert pick_versions(window.review.reader.model_versions()) == ("v1", "v2")


def test_rate_from_keyboard_undo_and_store_holds_exactly_that(qtbot, window, workspace) -> None:
    review, view = window.review, window.review_view
    _activate(qtbot, window)
    first = review.shown
    # "A better" with A's own verdict word as the true verdict (the other would contradict).
    label_key = Qt.Key.Key_E if first.a.label == "ERROR" else Qt.Key.Key_C
    with qtbot.waitSignal(review.saved, timeout=5000) as saved:
        _keys(qtbot, window, Qt.Key.Key_1, label_key, Qt.Key.Key_S, Qt.Key.Key_Return)
    rating = saved.args[0]
    assert rating.case_id == first.case.case_id
    severity = "critical" if first.a.label == "ERROR" else None
    assert (rating.preference, rating.true_label, rating.severity) == ("a", first.a.label, severity)
    assert rating.prediction_a_id == first.a.id and rating.prediction_b_id == first.b.id
    assert review.row == 1, "Enter saves and moves to the next case"
    assert "Saved rating for " + first.case.case_id in window.statusBar().currentMessage()
    assert f"A better, {first.a.label}" in window.statusBar().currentMessage()

    second = review.shown
    _keys(qtbot, window, Qt.Key.Key_R)
    assert view.rating.rationale.hasFocus()
    qtbot.keyClicks(view.rating.rationale, "Both miss the drug")
    _keys(qtbot, window, Qt.Key.Key_Escape)
    assert not view.rating.rationale.hasFocus()
    with qtbot.waitSignal(review.saved, timeout=5000) as saved2:
        _keys(qtbot, window, Qt.Key.Key_4, Qt.Key.Key_C, Qt.Key.Key_Return)
    assert saved2.args[0].rationale == "Both miss the drug"
    assert saved2.args[0].severity is None, "no severity on a CORRECT verdict"

    third = review.shown
    # B better with B's verdict word; an unreadable B cannot be the better one (a contradiction
    # the panel refuses), so then A, or both wrong.
    pref_key, side = (
        (Qt.Key.Key_2, third.b) if third.b.label != "UNPARSEABLE" else (Qt.Key.Key_1, third.a)
    )
    if side.label == "UNPARSEABLE":
        pref_key, side = Qt.Key.Key_4, third.a
    label_key = Qt.Key.Key_E if side.label == "ERROR" else Qt.Key.Key_C
    with qtbot.waitSignal(review.saved, timeout=5000):
        _keys(qtbot, window, pref_key, label_key, Qt.Key.Key_Return)
    assert view.queue.count.text().startswith("Rated 3 /")

    # Undo the third rating: the case is unrated again and on screen.
    with qtbot.waitSignal(review.countsChanged, timeout=5000):
        qtbot.keyClick(
            QApplication.focusWidget() or view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier
        )
    assert review.shown.case.case_id == third.case.case_id
    assert review.shown.rating is None
    assert "Undid the rating" in window.statusBar().currentMessage()

    # K goes back to the second case: its rating is loaded and the authors are revealed.
    _keys(qtbot, window, Qt.Key.Key_K)
    assert review.shown.case.case_id == second.case.case_id
    assert view.rating.preference() == "both_wrong"
    assert view.verdicts.card_a.author.text().startswith("Written by v")

    window.ctx.ops.db.submit(lambda store, _p: None).future.result(timeout=5)
    store = _reader_open(workspace)
    try:
        rid = window.ctx.reviewer.id
        assert store.rated_count(rid) == 2
        rated = set(store.query_case_ids(rated=True, reviewer_id=rid, order="id"))
        assert rated == {first.case.case_id, second.case.case_id}
        assert store.current_rating(third.case.case_id, rid) is None
        history = store.rating_history(third.case.case_id)
        assert [r.retracted for r in history] == [False, True]
    finally:
        store.close()
    assert window.errors == []


def test_save_needs_a_choice_first(qtbot, window) -> None:
    _activate(qtbot, window)
    _keys(qtbot, window, Qt.Key.Key_Return)
    assert window.review.row == 0
    assert "Choose which verdict is better" in window.statusBar().currentMessage()
    _keys(qtbot, window, Qt.Key.Key_3, Qt.Key.Key_Return)
    assert "true verdict" in window.statusBar().currentMessage()
    assert window.review.row == 0


@pytest.mark.parametrize("modality", ["xray", "mri"])
def test_filter_by_modality_and_status(qtbot, window, workspace, modality) -> None:
    queue = window.review_view.queue
    queue.modality.setCurrentIndex(queue.modality.findData(modality))
    review = window.review
    expected = workspace["by_modality"][modality]
    assert sorted(review.ids) == sorted(expected) and len(expected) >= 2
    assert all(c.modality == modality for c in review.reader.get_cases(review.ids))
    assert queue.table.model().rowCount() == len(expected)
    assert review.shown.case.modality == modality

    _activate(qtbot, window)
    rated_id = review.shown.case.case_id
    with qtbot.waitSignal(review.saved, timeout=5000):  # both wrong never contradicts
        _keys(qtbot, window, Qt.Key.Key_4, Qt.Key.Key_C, Qt.Key.Key_Return)
    queue.status.setCurrentIndex(queue.status.findData(False))
    assert rated_id not in review.ids and len(review.ids) == len(expected) - 1
    queue.status.setCurrentIndex(queue.status.findData(True))
    assert review.ids == [rated_id]


def test_disagree_filter_and_unparseable_flag(window, workspace) -> None:
    queue = window.review_view.queue
    queue.disagree.setChecked(True)
    review = window.review
    assert 0 < len(review.ids) < 20
    for case_id in review.ids:
        labels = {p.label for p in review.reader.predictions_for_case(case_id)}
        assert len(labels) == 2
    queue.disagree.setChecked(False)
    # The unparseable answer (one case of the fixture) is flagged on its card.
    case_id = workspace["unparseable"]
    assert review.open_case(case_id)
    cards = window.review_view.verdicts
    words = {cards.card_a.verdict.text(), cards.card_b.verdict.text()}
    assert "⚠ UNPARSEABLE" in words


def test_queue_model_reads_pages_lazily(window) -> None:
    model = window.review_view.queue.model
    assert model.rowCount() == 20
    first = window.review.reader.get_cases(window.review.ids[:1])[0]
    words = {
        "xray": "X-ray",
        "mri": "MRI",
        "histopathology": "Histopathology",
        "ultrasound": "Ultrasound",
    }
    assert model.data(model.index(0, 1)) == words[first.modality]  # the first row's own case
    assert model.data(model.index(0, 2)) == first.finding
    assert 0 in model._pages and len(model._pages) == 1


def test_image_viewer_window_level_and_zoom(qtbot, window, workspace) -> None:
    viewer = window.review_view.image.viewer
    xray = workspace["by_modality"]["xray"][0]
    window.review.open_case(xray)
    qtbot.waitUntil(lambda: window.review_view.image.shown_case_id == xray, timeout=5000)
    assert viewer.is_greyscale
    before = viewer.display_window
    viewer.set_window(0.3, 0.4)
    assert viewer.display_window == pytest.approx((0.3, 0.4))
    viewer.reset()
    assert viewer.display_window == pytest.approx(before)
    z = viewer.zoom_level()
    viewer.zoom(2.0)
    assert viewer.zoom_level() == pytest.approx(2 * z)
    viewer.actual_size()
    assert viewer.zoom_level() == pytest.approx(1.0)
