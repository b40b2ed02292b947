"""Work in the background: the retrain goes on when its dialog closes (the status bar follows it
and brings it back), only Cancel stops it and it asks first; when a retrain ends, the case on
screen keeps its verdicts and the clinician's unsaved choice, and the new version applies from
the next case, with a notice."""

from __future__ import annotations

import time

from app.qt import QApplication


def test_closing_the_retrain_dialog_keeps_the_child_running(qtbot, window) -> None:
    dialog = window.open_retrain()
    dialog.start_button.click()
    assert dialog.running
    t = time.monotonic()
    dialog.close_button.click()  # "Hide (training goes on)"
    dialog.close()  # and the window's close box
    assert time.monotonic() - t < 0.5, "closing never waits on the child"
    assert not dialog.isVisible()
    assert dialog.running, "closing the dialog must not stop the training"
    item = window.jobs["retrain"]
    qtbot.waitUntil(item.isVisible, timeout=5000)
    assert item.text().startswith("Retrain: ")
    # The window stays responsive while the child runs.
    window.review.next()
    assert window.review.row == 1
    # The status-bar item brings the dialog back.
    item.button.click()
    assert dialog.isVisible()
    # The fixture's versions have no weights, so this real retrain ends by itself, in words.
    qtbot.waitUntil(lambda: not dialog.running, timeout=120000)
    qtbot.waitUntil(lambda: dialog.panel.state is not None, timeout=5000)
    assert dialog.panel.state.startswith("failed")
    assert "failed" in item.text()


def test_cancel_asks_first_and_only_cancel_stops_it(qtbot, window) -> None:
    dialog = window.open_retrain()
    asked = []
    dialog.confirm = lambda title, text: asked.append(text) or False
    dialog.start_button.click()
    assert dialog.running
    assert dialog.cancel() is False and dialog.running, "answering No keeps it running"
    assert asked and "Stop the retrain?" in asked[0]
    dialog.confirm = lambda title, text: True
    with qtbot.waitSignal(dialog.panel.finished, timeout=60000) as done:
        assert dialog.cancel() is True
    # Not "failed": the fixture's retrain fails by itself (no weights), so a cancel that did
    # nothing would end that way too.
    assert done.args[1] == "canceled", done.args
    assert dialog.result_label.text() == "Training was canceled. No version was registered."
    assert not dialog.running


def test_quitting_with_a_retrain_running_asks(qtbot, window) -> None:
    dialog = window.open_retrain()
    dialog.start_button.click()
    window.confirm = lambda title, text: False
    window.close()
    assert window.isVisible() and dialog.running, "No keeps the window and the training"
    window.confirm = lambda title, text: True
    window.close()
    assert not window.isVisible() and not dialog.running


def _add_version(workspace, name: str) -> None:
    """A new version with verdicts on every case, written by another process's store (as
    ``medreview train retrain`` does when it registers its result)."""
    from feedback_db import PredictionIn, open_store

    with open_store(workspace["ws"].db_url) as store:
        store.add_model_version(name, "clip-llm", "demo-llm", parent="v1")
        store.add_predictions(
            name,
            [
                PredictionIn(
                    cid, "ERROR", f"{name} says so", f"ERROR - {name} says so", confidence=0.9
                )
                for cid in workspace["case_ids"]
            ],
        )


def test_an_unsaved_choice_survives_a_retrain_ending(qtbot, window, workspace) -> None:
    review, view = window.review, window.review_view
    rating = view.rating
    shown = review.shown
    rating.set_preference("both_wrong")
    rating.set_true_label("ERROR")
    rating.cycle_severity()
    rating.rationale.setPlainText("Neither verdict notices the effusion.")
    before = (shown.a.id, shown.b.id)

    dialog = window.open_retrain()  # knows the versions there were before the run
    _add_version(workspace, "v3")
    # The retrain's child has ended and registered v3: the dialog's real end-of-run path.
    with qtbot.waitSignal(dialog.versionsChanged, timeout=5000):
        dialog._finished(0, "done")
    assert "v3" in dialog.result_label.text()

    # Same case, same verdicts, the choice untouched; a notice says what is coming.
    assert review.shown.case.case_id == shown.case.case_id
    assert (review.shown.a.id, review.shown.b.id) == before
    assert (rating.preference(), rating.true_label(), rating.severity_value()) == (
        "both_wrong",
        "ERROR",
        "critical",
    )
    assert rating.rationale.toPlainText() == "Neither verdict notices the effusion."
    assert view.notice.isVisible() and "v3" in view.notice.text()
    assert "v3" not in (review.versions or ())

    # Saving finishes the case: the next one comes with the new version's verdicts.
    with qtbot.waitSignal(review.saved, timeout=5000) as saved:
        view.save()
    assert saved.args[0].case_id == shown.case.case_id and saved.args[0].rationale.startswith(
        "Neither"
    )
    assert "v3" in review.versions
    assert not view.notice.isVisible()
    now = review.shown
    assert now.case.case_id != shown.case.case_id
    assert "v3" in {p.version for p in (now.a, now.b) if p is not None}


def test_a_reload_keeps_the_choice_on_screen(qtbot, window) -> None:
    """An import finishing (the queue reloads) does not wipe what the clinician was choosing."""
    rating = window.review_view.rating
    rating.set_preference("both_wrong")
    rating.rationale.setPlainText("half written")
    window._after_change("done", "Import")
    assert rating.preference() == "both_wrong" and rating.rationale.toPlainText() == "half written"
    QApplication.processEvents()
