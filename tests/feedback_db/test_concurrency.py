"""Two processes on one SQLite file: a writer waits for another's write lock instead of failing,
and readers see committed work from another connection."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from feedback_db import RatingIn, open_store
from tests.feedback_db.factory import Seeded, consistent_label


def test_a_write_waits_for_another_writer(seeded: Seeded, root: Path, sqlite_only: None) -> None:
    db = root / "medreview.db"
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    other.execute(
        "INSERT INTO reviewers (name, role, created_at) VALUES ('dr-other', 'x', '2026-01-01')"
    )
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        a, b = seeded.preds["c-mri-1"]
        r = seeded.store.add_rating(
            RatingIn("c-mri-1", seeded.reviewer.id, a.id, b.id, "b", "ERROR")
        )
    finally:
        release.join()
        other.close()
    assert seeded.store.current_rating("c-mri-1") == r
    assert "dr-other" in [x.name for x in seeded.store.reviewers()]


def test_a_rating_outlasts_a_lock_longer_than_any_busy_timeout(
    seeded: Seeded, root: Path, sqlite_only: None
) -> None:
    """A lock held for 3 s (12x SQLite's per-attempt wait) delays the rating, never loses it; with
    too little patience the write fails as StoreBusy and nothing is saved."""
    import time

    from feedback_db import StoreBusy
    from feedback_db.session import BUSY_TIMEOUT_MS

    db = root / "medreview.db"
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    a, b = seeded.preds["c-mri-1"]
    impatient = open_store(seeded.store.url, write_patience=0.5)
    try:
        with pytest.raises(StoreBusy, match="another program writing"):
            impatient.add_rating(RatingIn("c-mri-1", seeded.reviewer.id, a.id, b.id, "b", "ERROR"))
        release = threading.Timer(3.0, lambda: other.execute("COMMIT"))
        release.start()
        t0 = time.monotonic()
        r = seeded.store.add_rating(
            RatingIn("c-mri-1", seeded.reviewer.id, a.id, b.id, "b", "ERROR")
        )
        waited = time.monotonic() - t0
        release.join()
    finally:
        impatient.close()
        other.close()
    assert waited > 3 * BUSY_TIMEOUT_MS / 1000  # it really waited past several attempts
    assert seeded.store.current_rating("c-mri-1") == r
    assert seeded.store.info().counts["ratings"] == 1


def test_two_stores_on_one_file_see_each_other(seeded: Seeded) -> None:
    second = open_store(seeded.store.url)
    try:
        a, b = seeded.preds["c-hist-1"]
        r = second.add_rating(RatingIn("c-hist-1", seeded.reviewer.id, a.id, b.id, "b", "ERROR"))
        assert seeded.store.current_rating("c-hist-1") == r
        r2 = seeded.store.add_rating(
            RatingIn("c-hist-1", seeded.reviewer.id, a.id, b.id, "a", "CORRECT")
        )
        assert r2.supersedes_id == r.id and second.current_rating("c-hist-1") == r2
    finally:
        second.close()


def test_a_store_made_in_one_thread_works_in_another(seeded: Seeded) -> None:
    """The GUI opens the store on the main thread and writes from its database worker lane."""
    results: list[object] = []

    def work() -> None:
        try:
            a, b = seeded.preds["c-us-1"]
            results.append(
                seeded.store.add_rating(
                    RatingIn("c-us-1", seeded.reviewer.id, a.id, b.id, "a", "CORRECT")
                )
            )
        except Exception as exc:  # reported by the assertion below
            results.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert len(results) == 1 and results[0] == seeded.store.current_rating("c-us-1")


def test_threads_writing_at_once_lose_nothing(seeded: Seeded) -> None:
    store = seeded.store
    reviewers = [store.ensure_reviewer(f"dr-{k}", "radiologist") for k in range(3)]
    errors: list[BaseException] = []

    def work(reviewer_id: int) -> None:
        try:
            for preference in ("a", "b", "tie"):
                for cid, (a, b) in seeded.preds.items():
                    true = consistent_label(seeded, cid, preference)
                    pref = (
                        "both_wrong" if preference == "tie" and a.label != b.label else preference
                    )
                    store.add_rating(RatingIn(cid, reviewer_id, a.id, b.id, pref, true))
                    store.query_case_ids(rated=False, reviewer_id=reviewer_id)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r.id,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for cid in seeded.preds:
        history = store.rating_history(cid)
        assert len(history) == 9
        for r in reviewers:  # each reviewer's chain is linear and ends with the last rating made
            mine = [h for h in history if h.reviewer_id == r.id]
            assert [h.supersedes_id for h in mine] == [None, mine[0].id, mine[1].id]
            a, b = seeded.preds[cid]
            last = "tie" if a.label == b.label else "both_wrong"
            assert store.current_rating(cid, r.id).preference == last  # type: ignore[union-attr]
