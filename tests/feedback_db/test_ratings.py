"""Append-only ratings: supersession with history, undo, the pairs they yield, counts."""

from __future__ import annotations

import pytest

from feedback_db import PredictionIn, RatingIn, StoreError, open_store
from feedback_db.pairs import derive_pairs
from tests.feedback_db.factory import Seeded


def _rate(
    s: Seeded, case_id: str, preference: str, true_label: str = "ERROR", **kw: object
) -> RatingIn:
    a, b = s.preds[case_id]
    return RatingIn(case_id, s.reviewer.id, a.id, b.id, preference, true_label, **kw)  # type: ignore[arg-type]


def test_a_new_rating_supersedes_and_keeps_history(seeded: Seeded) -> None:
    store = seeded.store
    first = store.add_rating(_rate(seeded, "c-mri-1", "a", "CORRECT"))
    second = store.add_rating(
        _rate(
            seeded,
            "c-mri-1",
            "b",
            "ERROR",
            severity="critical",
            rationale="aspirin does not treat a glioblastoma",
        )
    )
    assert second.supersedes_id == first.id and first.supersedes_id is None
    store.close()
    store = open_store(store.url)
    history = store.rating_history("c-mri-1")
    assert [(r.id, r.preference, r.retracted) for r in history] == [
        (first.id, "a", False),
        (second.id, "b", False),
    ]
    assert history[0] == first  # the old row is untouched
    current = store.current_rating("c-mri-1", seeded.reviewer.id)
    assert current == second and current.reviewer == "dr-lee"
    assert store.rated_count() == 1 and store.rated_count(seeded.reviewer.id) == 1
    store.close()


def test_undo_appends_a_retraction(seeded: Seeded) -> None:
    store = seeded.store
    r1 = store.add_rating(_rate(seeded, "c-mri-1", "b"))
    undo = store.undo_rating(r1.id)
    assert undo.retracted and undo.supersedes_id == r1.id and undo.preference == "b"
    assert store.current_rating("c-mri-1") is None
    assert store.rated_count() == 0
    assert [r.id for r in store.rating_history("c-mri-1")] == [r1.id, undo.id]
    with pytest.raises(StoreError, match="superseded"):
        store.undo_rating(r1.id)
    with pytest.raises(StoreError, match="is a retraction"):
        store.undo_rating(undo.id)
    with pytest.raises(StoreError, match="unknown rating"):
        store.undo_rating(10_000)
    # Rating again after an undo continues the same chain.
    r2 = store.add_rating(_rate(seeded, "c-mri-1", "a", "CORRECT"))
    assert r2.supersedes_id == undo.id
    assert store.current_rating("c-mri-1") == r2


def test_current_rating_across_reviewers(seeded: Seeded) -> None:
    store = seeded.store
    other = store.ensure_reviewer("dr-okafor", "oncologist")
    a, b = seeded.preds["c-hist-1"]
    mine = store.add_rating(_rate(seeded, "c-hist-1", "b"))
    theirs = store.add_rating(RatingIn("c-hist-1", other.id, a.id, b.id, "a", "CORRECT"))
    assert theirs.supersedes_id is None  # another reviewer's rating stands beside mine
    assert store.current_rating("c-hist-1") == theirs
    assert store.current_rating("c-hist-1", seeded.reviewer.id) == mine
    assert store.rated_count() == 1 and store.rated_count(other.id) == 1


def test_rating_is_checked_against_the_store(seeded: Seeded) -> None:
    store = seeded.store
    a, _ = seeded.preds["c-mri-1"]
    _, b_other = seeded.preds["c-xray-1"]
    with pytest.raises(StoreError, match="prediction .* is for case 'c-xray-1'"):
        store.add_rating(RatingIn("c-mri-1", seeded.reviewer.id, a.id, b_other.id, "a", "ERROR"))
    with pytest.raises(StoreError, match="unknown reviewer"):
        store.add_rating(RatingIn("c-mri-1", 999, a.id, b_other.id, "a", "ERROR"))
    with pytest.raises(StoreError, match="unknown case"):
        store.add_rating(RatingIn("ghost", seeded.reviewer.id, a.id, b_other.id, "a", "ERROR"))
    with pytest.raises(StoreError, match="unknown prediction"):
        store.add_rating(RatingIn("c-mri-1", seeded.reviewer.id, a.id, 99_999, "a", "ERROR"))
    assert store.info().counts["ratings"] == 0
    with pytest.raises(ValueError, match="preference"):
        RatingIn("c", 1, 1, 2, "maybe", "ERROR")
    with pytest.raises(ValueError, match="true_label"):
        RatingIn("c", 1, 1, 2, "a", "WRONG")
    with pytest.raises(ValueError, match="must differ"):
        RatingIn("c", 1, 1, 1, "a", "ERROR")


def test_pairs_stored_with_the_rating(seeded: Seeded) -> None:
    store = seeded.store
    b_better = store.add_rating(_rate(seeded, "c-mri-1", "b", severity="critical"))
    assert [(p.chosen, p.rejected) for p in store.pairs_for_rating(b_better.id)] == [
        ("ERROR - v2 says so", "CORRECT - treatment fits")
    ]
    fixed = store.add_rating(
        _rate(seeded, "c-mri-1", "both_wrong", rationale=" glioblastoma needs resection ")
    )
    assert [(p.chosen, p.rejected) for p in store.pairs_for_rating(fixed.id)] == [
        ("ERROR - glioblastoma needs resection", "CORRECT - treatment fits"),
        ("ERROR - glioblastoma needs resection", "ERROR - v2 says so"),
    ]
    tie = store.add_rating(_rate(seeded, "c-xray-1", "tie", "CORRECT"))
    assert store.pairs_for_rating(tie.id) == []


@pytest.mark.parametrize(
    ("preference", "rationale", "expected"),
    [
        ("a", None, [("A", "B")]),
        ("b", None, [("B", "A")]),
        ("a", "why", [("ERROR - why", "B")]),
        ("b", "why", [("ERROR - why", "A")]),
        ("both_wrong", "why", [("ERROR - why", "A"), ("ERROR - why", "B")]),
        ("both_wrong", None, []),
        ("both_wrong", "   ", []),
        ("tie", "why", [("ERROR - why", "A"), ("ERROR - why", "B")]),  # two unreadable answers
    ],
)
def test_pair_rule(preference: str, rationale: str | None, expected: list[tuple[str, str]]) -> None:
    assert derive_pairs(preference, "ERROR", rationale, "A", "B") == expected


def test_identical_texts_make_no_pair() -> None:
    assert derive_pairs("a", "ERROR", None, "ERROR - x", "ERROR - x") == []
    assert derive_pairs("both_wrong", "ERROR", "x", "ERROR - x", "CORRECT - y") == [
        ("ERROR - x", "CORRECT - y")
    ]


def test_a_contradictory_rating_is_refused(seeded: Seeded) -> None:
    store = seeded.store
    # c-mri-1: A (base) says CORRECT, B (v2) says ERROR.
    with pytest.raises(
        StoreError, match="B is marked better but says ERROR, while your true verdict is CORRECT"
    ):
        store.add_rating(_rate(seeded, "c-mri-1", "b", "CORRECT"))
    with pytest.raises(StoreError, match="A is marked better but says CORRECT"):
        store.add_rating(
            _rate(seeded, "c-mri-1", "a", "ERROR", rationale="a rationale does not fix it")
        )
    with pytest.raises(StoreError, match="a tie between a right and a wrong verdict"):
        store.add_rating(_rate(seeded, "c-mri-1", "tie", "ERROR"))
    assert store.info().counts["ratings"] == 0
    store.add_rating(_rate(seeded, "c-mri-1", "both_wrong", "CORRECT"))  # always allowed


def test_a_rating_keeps_the_answers_it_was_given_for(seeded: Seeded) -> None:
    store = seeded.store
    r = store.add_rating(_rate(seeded, "c-mri-1", "b", "ERROR"))
    store.add_predictions(
        "v2", [PredictionIn("c-mri-1", "CORRECT", "retrained", "CORRECT - retrained", 0.5)]
    )
    again = store.current_rating("c-mri-1", seeded.reviewer.id)
    assert again is not None and again.id == r.id
    assert (again.answer_a, again.answer_b) == ("CORRECT - treatment fits", "ERROR - v2 says so")
    assert (again.prediction_a_id, again.prediction_b_id) == (
        seeded.preds["c-mri-1"][0].id,
        seeded.preds["c-mri-1"][1].id,
    )


def test_undo_last_steps_back_through_re_rates_and_survives_a_restart(seeded: Seeded) -> None:
    store = seeded.store
    me = seeded.reviewer.id
    first = store.add_rating(_rate(seeded, "c-mri-1", "a", "CORRECT"))
    store.add_rating(_rate(seeded, "c-xray-1", "a", "CORRECT"))
    store.add_rating(_rate(seeded, "c-mri-1", "b", "ERROR", severity="critical"))  # re-rate
    url = store.url
    store.close()
    store = open_store(url)  # a restart: undo still knows what to do
    undo = store.undo_last(me)
    assert undo is not None and not undo.retracted
    back = store.current_rating("c-mri-1", me)
    assert back is not None and (back.preference, back.true_label) == (
        first.preference,
        first.true_label,
    )
    assert [p.chosen for p in store.pairs_for_rating(back.id)] == [
        p.chosen for p in store.pairs_for_rating(first.id)
    ]
    undo = store.undo_last(me)  # the x-ray rating
    assert undo is not None and undo.retracted and undo.case_id == "c-xray-1"
    assert store.current_rating("c-xray-1", me) is None
    undo = store.undo_last(me)  # the first mri rating: the case goes back to unrated
    assert undo is not None and undo.retracted and store.current_rating("c-mri-1", me) is None
    assert store.undo_last(me) is None  # nothing left
    assert len(store.rating_history("c-mri-1")) == 4  # the audit trail keeps everything
    store.close()


def test_undo_last_honours_since(seeded: Seeded) -> None:
    store = seeded.store
    store.add_rating(_rate(seeded, "c-mri-1", "a", "CORRECT"))
    later = store.add_rating(_rate(seeded, "c-xray-1", "a", "CORRECT")).created_at
    assert store.undo_last(seeded.reviewer.id, since=later).case_id == "c-xray-1"  # type: ignore[union-attr]
    assert store.undo_last(seeded.reviewer.id, since=later) is None
