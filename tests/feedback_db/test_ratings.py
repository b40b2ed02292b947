"""Append-only ratings: supersession with history, undo, the pairs they yield, counts."""

from __future__ import annotations

import pytest

from feedback_db import RatingIn, StoreError, open_store
from feedback_db.pairs import derive_pairs
from tests.feedback_db.factory import Seeded


def _rate(s: Seeded, case_id: str, preference: str, true_label: str = "ERROR", **kw: object) -> RatingIn:
    a, b = s.preds[case_id]
    return RatingIn(case_id, s.reviewer.id, a.id, b.id, preference, true_label, **kw)  # type: ignore[arg-type]


def test_a_new_rating_supersedes_and_keeps_history(seeded: Seeded) -> None:
    store = seeded.store
    first = store.add_rating(_rate(seeded, "c-mri-1", "a", "CORRECT"))
    second = store.add_rating(_rate(seeded, "c-mri-1", "b", "ERROR", severity="critical", rationale="aspirin does not treat a glioblastoma"))
    assert second.supersedes_id == first.id and first.supersedes_id is None
    store.close()
    store = open_store(store.url)
    history = store.rating_history("c-mri-1")
    assert [(r.id, r.preference, r.retracted) for r in history] == [(first.id, "a", False), (second.id, "b", False)]
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
    theirs = store.add_rating(RatingIn("c-hist-1", other.id, a.id, b.id, "tie", "CORRECT"))
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
        ("ERROR - v2 says so", "CORRECT - treatment fits")]
    fixed = store.add_rating(_rate(seeded, "c-mri-1", "both_wrong", rationale=" glioblastoma needs resection "))
    assert [(p.chosen, p.rejected) for p in store.pairs_for_rating(fixed.id)] == [
        ("ERROR - glioblastoma needs resection", "CORRECT - treatment fits"),
        ("ERROR - glioblastoma needs resection", "ERROR - v2 says so")]
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
        ("tie", "why", []),
    ],
)
def test_pair_rule(preference: str, rationale: str | None, expected: list[tuple[str, str]]) -> None:
    assert derive_pairs(preference, "ERROR", rationale, "A", "B") == expected


def test_identical_texts_make_no_pair() -> None:
    assert derive_pairs("a", "ERROR", None, "ERROR - x", "ERROR - x") == []
    assert derive_pairs("both_wrong", "ERROR", "x", "ERROR - x", "CORRECT - y") == [("ERROR - x", "CORRECT - y")]
