"""QuickReader gives exactly what the Store gives, for every read it answers, on the same file.

The store is built through the Store API with what makes these reads hard: several verdicts per
version (only the latest counts), a verdict without confidence, a third version with none,
superseded, undone and retracted ratings by two reviewers, evaluations (the latest one decides
``promoted``), metrics None and a dict, a cleared burned-in flag and case metadata.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from feedback_db import CaseIn, PredictionIn, RatingIn, Store, open_store
from feedback_db.quick_reader import NotQuick, QuickReader
from feedback_db.revision import HEAD
from tests.feedback_db.factory import CASES, Seeded, seed


@pytest.fixture
def rich(root: Path) -> Seeded:
    store = open_store(f"sqlite:///{root / 'medreview.db'}")
    s = seed(store, root)
    st = s.store
    # Newer verdicts of v2 on two cases (one without confidence), and a version with none.
    st.add_predictions(
        "v2",
        [
            PredictionIn("c-mri-1", "CORRECT", "changed", "CORRECT - changed", 0.51, 4.0),
            PredictionIn("c-us-1", "ERROR", "no confidence", "ERROR - no confidence", None, None),
        ],
    )
    st.add_model_version("v3", "heuristic", "rules", parent="v2", note="never predicted")
    st.record_evaluation("v2", {"accuracy": 0.5}, False, "refused: too many false alarms")
    st.record_evaluation("v2", {"accuracy": 0.9, "fpr": 0.05}, True, "better on val")
    other = st.ensure_reviewer("dr-kim", "pathologist")
    by_case = {cid: {p.version: p for p in st.predictions_for_case(cid)} for cid, *_ in CASES}

    def rate(cid: str, reviewer: int, preference: str, rationale: str | None = None) -> None:
        a, b = by_case[cid]["base"], by_case[cid]["v2"]
        label = b.label if preference == "b" else a.label
        st.add_rating(RatingIn(cid, reviewer, a.id, b.id, preference, label, rationale=rationale))

    rate("c-xray-1", s.reviewer.id, "a")
    rate("c-xray-1", s.reviewer.id, "b", "re-rated")  # supersedes the first
    rate("c-xray-1", other.id, "tie")
    rate("c-mri-1", s.reviewer.id, "a")
    rate("c-hist-1", other.id, "a")
    st.undo_last(other.id)  # retracts dr-kim's c-hist-1 rating
    st.add_cases(
        [
            CaseIn("c-dcm-1", "xray", "images/c-xray-1.png", "Effusion", "Drain", burned_in=True),
            CaseIn("c-dcm-2", "mri", "images/c-mri-1.png", "Edema", "Steroids", burned_in=True),
        ]
    )
    st.confirm_no_identifier("c-dcm-1", "dr-lee")  # c-dcm-2 stays withheld
    return s


def _same(quick: object, store: object) -> None:
    """Equal, and of the same type field by field (``0 == False`` and ``1 == 1.0`` would pass
    a plain ``==``; ``meta`` is compared too, though records leave it out of ``==``)."""
    assert type(quick) is type(store), (quick, store)
    if dataclasses.is_dataclass(quick):
        for f in dataclasses.fields(quick):
            _same(getattr(quick, f.name), getattr(store, f.name))
    elif isinstance(quick, list):
        assert len(quick) == len(store)  # type: ignore[arg-type]
        for q, s in zip(quick, store, strict=True):  # type: ignore[call-overload]
            _same(q, s)
    elif isinstance(quick, dict):
        assert list(quick) == list(store)  # type: ignore[call-overload]
        for k in quick:
            _same(quick[k], store[k])  # type: ignore[index]
    else:
        assert quick == store, (quick, store)


def _quick(root: Path) -> QuickReader:
    q = QuickReader.open(root / "medreview.db")
    assert q is not None
    return q


def test_every_read_matches_the_store(rich: Seeded, root: Path) -> None:
    st: Store = rich.store
    q = _quick(root)
    try:
        _same(q.reviewers(), st.reviewers())
        versions = q.model_versions()
        _same(versions, st.model_versions())
        assert [(v.name, v.promoted) for v in versions] == [
            ("base", None),
            ("v2", True),
            ("v3", None),
        ]
        ids = [c[0] for c in CASES] + ["c-dcm-1", "c-dcm-2"]
        assert q.get_case("c-dcm-1").burned_in_cleared_at is not None
        for cid in [*ids, "no-such-case"]:
            _same(q.get_case(cid), st.get_case(cid))
            _same(q.predictions_for_case(cid), st.predictions_for_case(cid))
            for rid in (None, rich.reviewer.id, rich.reviewer.id + 1, 999):
                _same(q.current_rating(cid, rid), st.current_rating(cid, rid))
        wanted = ["c-us-1", "nope", "c-xray-1", "c-us-1"]
        _same(q.get_cases(wanted), st.get_cases(wanted))
        all_ids = [p.id for cid in ids for p in st.predictions_for_case(cid)] + [1, 2, 99999]
        _same(q.predictions_by_id(all_ids), st.predictions_by_id(all_ids))
        assert q.predictions_by_id([]) == {}
    finally:
        q.close()


@pytest.mark.parametrize("versions", [("base", "v2"), ("v2", "base"), ("base", "v3"), None])
@pytest.mark.parametrize("order", ["uncertainty", "id"])
def test_the_start_queue_matches_the_store(
    rich: Seeded, root: Path, versions: tuple[str, str] | None, order: str
) -> None:
    q = _quick(root)
    try:
        got = q.query_case_ids(order=order, versions=versions)
        assert got == rich.store.query_case_ids(order=order, versions=versions)
        assert sorted(got) == sorted([c[0] for c in CASES] + ["c-dcm-1", "c-dcm-2"])
        for rid in (rich.reviewer.id, rich.reviewer.id + 1, None):
            kw = {"rated": True, "reviewer_id": rid, "order": "id"}
            assert q.query_case_ids(**kw) == rich.store.query_case_ids(**kw)
    finally:
        q.close()


def test_uncertainty_order_is_real(rich: Seeded, root: Path) -> None:
    """The order checked above is not the trivial one: the least sure case comes first."""
    q = _quick(root)
    try:
        got = q.query_case_ids(order="uncertainty", versions=("base", "v2"))
        # c-mri-1: base 0.55 and v2's newest 0.51 -> mean doubt 0.03, the smallest.
        assert got[0] == "c-mri-1"
        assert got != sorted(got)
    finally:
        q.close()


@pytest.mark.parametrize(
    "kw",
    [
        {"modality": "xray"},
        {"split": "test"},
        {"rated": False, "reviewer_id": 1},
        {"rated": True, "reviewer_id": 1, "order": "uncertainty"},
        {"disagree": True, "versions": ("base", "v2")},
    ],
)
def test_filters_are_left_to_the_store(rich: Seeded, root: Path, kw: dict) -> None:
    q = _quick(root)
    try:
        with pytest.raises(NotQuick):
            q.query_case_ids(**kw)
    finally:
        q.close()


def test_open_declines_what_is_not_quick(tmp_path: Path, rich: Seeded, root: Path) -> None:
    assert QuickReader.open(tmp_path / "missing.db") is None
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    assert QuickReader.open(junk) is None
    import sqlite3

    con = sqlite3.connect(root / "medreview.db")
    con.execute("UPDATE alembic_version SET version_num = '0002'")  # needs an upgrade
    con.commit()
    con.close()
    assert QuickReader.open(root / "medreview.db") is None
    assert HEAD != "0002"


def test_it_never_writes(rich: Seeded, root: Path) -> None:
    q = _quick(root)
    try:
        with pytest.raises(Exception, match="readonly|read-only|query_only"):
            q._con.execute("DELETE FROM cases")
    finally:
        q.close()
    assert len(rich.store.get_cases([c[0] for c in CASES])) == len(CASES)


def test_importing_it_does_not_load_sqlalchemy() -> None:
    code = (
        "import sys; import feedback_db.quick_reader, feedback_db.records; "
        "print('sqlalchemy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
