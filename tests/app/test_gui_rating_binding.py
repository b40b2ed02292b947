"""Rate, retrain, come back: the rating is shown with the pair it was given for, and the new
review pair is offered to rate (a real ``medreview train retrain`` child on tiny demo models)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.app.test_cli_train import CLI, ROOT, _env, demo_ws  # noqa: F401 (the fixture)


@pytest.fixture
def window_on_demo(qtbot, demo_ws: Path, settings_file: Path):  # noqa: F811
    from app.gui.app import build_window
    from app.settings import load_settings
    from app.workspace import Workspace

    win = build_window(Workspace(demo_ws), load_settings(settings_file), settings_file)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.first_case_shown, timeout=20000)
    yield win
    win.close()


def test_a_rating_stays_with_its_pair_across_a_retrain(
    qtbot,
    window_on_demo,
    demo_ws: Path,  # noqa: F811 (demo_ws: the fixture)
) -> None:
    win = window_on_demo
    review = win.review
    before_pair = review.versions
    case_id = next(
        cid
        for cid in review.ids
        if review.reader.get_case(cid).split == "review"
        and review.reader.current_rating(cid, win.ctx.reviewer.id) is None
    )
    review.open_case(case_id)
    shown = review.shown
    assert shown.can_rate
    with qtbot.waitSignal(review.saved, timeout=10000) as saved:
        assert review.save(
            "both_wrong",
            shown.a.label,
            "high" if shown.a.label == "ERROR" else None,
            "the reason both give does not match the image",
            advance=False,
        )
    rating = saved.args[0]
    rated_a, rated_b = shown.a, shown.b

    proc = subprocess.run(
        [*CLI, "train", "retrain", "--workspace", str(demo_ws), "--progress", "json",
         "--steps", "2", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--name", "rl-binding",
         "--min-judged", "5"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    review.reload()  # what the window does when a retrain ends
    assert review.versions != before_pair and "rl-binding" in review.versions
    review.open_case(case_id)
    shown = review.shown
    # The rating is shown with the verdicts it was given for, not the new pair's.
    assert shown.stale and shown.rating.id == rating.id
    assert (shown.a.id, shown.b.id) == (rated_a.id, rated_b.id)
    assert (shown.a.text, shown.b.text) == (rated_a.text, rated_b.text)
    panel = win.review_view.rating
    assert "review pair has changed" in panel.state.text()
    assert panel.new_pair_button.isVisible() and panel.new_pair_button.isEnabled()
    assert not panel.save_button.isEnabled()
    assert "as rated" in win.review_view.verdicts.card_a.title.text()
    # The new pair is offered; choosing it shows the review pair, unrated, ready to rate.
    new_a, new_b = shown.new_pair
    assert {new_a.version, new_b.version} == set(review.versions)
    assert review.rate_new_pair()
    shown = review.shown
    assert shown.can_rate and shown.rating is None and shown.earlier.id == rating.id
    assert {shown.a.version, shown.b.version} == set(review.versions)
    assert "earlier rating" in panel.state.text()
    assert win.errors == []


def test_a_rating_stays_with_its_pair_across_an_import(
    qtbot, window, workspace, tmp_path: Path
) -> None:
    """Another workstation's ratings of the same case: no model version appears, the review pair
    is unchanged, and this reviewer's rating stays bound to the verdicts it was given for."""
    import json

    from feedback_db import open_store
    from feedback_db.export import export_feedback
    from feedback_db.import_jsonl import import_feedback

    review = window.review
    pair = review.versions
    shown = review.shown
    with qtbot.waitSignal(review.saved, timeout=10000) as saved:
        assert review.save(
            "b", shown.b.label, "high" if shown.b.label == "ERROR" else None, None, advance=False
        )
    mine = saved.args[0]
    out = tmp_path / "share" / "expert_feedback.jsonl"
    with open_store(workspace["ws"].db_url) as store:
        versions_before = [v.name for v in store.model_versions()]
        export_feedback(store, out, workspace_root=workspace["root"])
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        out.write_text(
            "".join(
                json.dumps(
                    {**x, "reviewer": "dr-visitor", "rated_at": "2030-01-01T00:00:00.000000Z"}
                )
                + "\n"
                for x in lines
            )
        )
        res = import_feedback(store, out, create_reviewers=True, workspace_root=workspace["root"])
        assert res.errors == [] and res.ratings == 1
        assert [v.name for v in store.model_versions()] == versions_before  # no "imported" version
    review.reload()
    assert review.versions == pair
    review.open_case(mine.case_id)
    again = review.shown
    assert not again.stale and again.rating.id == mine.id
    assert (again.a.id, again.b.id) == (mine.prediction_a_id, mine.prediction_b_id)
    assert window.errors == []


def test_a_burned_in_image_is_flagged_and_can_be_confirmed(qtbot, window, workspace) -> None:
    """The case panel flags a DICOM that declares burned-in text; the clinician's confirmation
    is stored with their name, after which the flag says so and the button goes."""
    from sqlalchemy import update

    from feedback_db import open_store
    from feedback_db.models import CaseRow

    review = window.review
    cid = review.shown.case.case_id
    with open_store(workspace["ws"].db_url) as store, store.sessions.scope("flag", write=True) as s:
        s.execute(update(CaseRow).where(CaseRow.case_id == cid).values(burned_in=True))
    review.show_case(cid)
    panel = window.review_view.case_panel
    assert panel.burned_in.isVisible() and "left out of exports" in panel.burned_in.text()
    assert panel.confirm_button.isVisible()
    with qtbot.waitSignal(
        review.message,
        timeout=10000,
        check_params_cb=lambda m: "confirmed the image shows no identifier" in m,
    ):
        panel.confirm_button.click()
    qtbot.waitUntil(lambda: not panel.confirm_button.isVisible(), timeout=5000)
    assert "Dr Test confirmed" in panel.burned_in.text()
    with open_store(workspace["ws"].db_url) as store:
        assert store.get_case(cid).burned_in_cleared_by == "Dr Test"
