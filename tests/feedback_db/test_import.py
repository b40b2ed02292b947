"""Importing expert_feedback.jsonl: round trip, idempotence, and bad lines reported by number."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from feedback_db import RatingIn, Store, open_store
from feedback_db.export import export_feedback
from feedback_db.feedback_lines import parse_time
from feedback_db.import_jsonl import import_feedback, looks_like_feedback
from tests.feedback_db.factory import Seeded, seed


def _rate(
    s: Seeded, case_id: str, preference: str, true_label: str = "ERROR", **kw: object
) -> RatingIn:
    a, b = s.preds[case_id]
    return RatingIn(case_id, s.reviewer.id, a.id, b.id, preference, true_label, **kw)  # type: ignore[arg-type]


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def exported(seeded: Seeded, tmp_path: Path) -> Path:
    store = seeded.store
    store.add_rating(_rate(seeded, "c-mri-1", "b", severity="critical", margin=1.5))
    store.add_rating(
        _rate(
            seeded,
            "c-hist-1",
            "both_wrong",
            severity="high",
            rationale="benign tissue needs no chemotherapy",
        )
    )
    store.add_rating(_rate(seeded, "c-us-1", "a", "CORRECT", rationale="symptomatic gallstones"))
    out = tmp_path / "from-a" / "expert_feedback.jsonl"
    export_feedback(store, out, workspace_root=seeded.root)
    return out


@pytest.fixture
def other(tmp_path: Path) -> Store:
    """A second workstation with the same cases and no ratings."""
    root = tmp_path / "ws-b"
    store = open_store(f"sqlite:///{root / 'medreview.db'}")
    seed(store, root)
    yield store
    store.close()


def test_round_trip_gives_back_the_same_file(exported: Path, other: Store, tmp_path: Path) -> None:
    res = import_feedback(other, exported)
    assert (res.lines, res.ratings, res.skipped, res.errors) == (4, 3, 0, [])
    assert other.current_rating("c-hist-1").preference == "both_wrong"  # type: ignore[union-attr]
    assert other.current_rating("c-mri-1").preference == "b"  # type: ignore[union-attr]
    again = tmp_path / "from-b" / "expert_feedback.jsonl"
    export_feedback(other, again, workspace_root=tmp_path / "ws-b")
    assert again.read_bytes() == exported.read_bytes()


def test_imported_ratings_keep_their_own_answers_and_create_no_version(
    exported: Path, other: Store
) -> None:
    versions = [v.name for v in other.model_versions()]
    predictions = other.info().counts["predictions"]
    import_feedback(other, exported)
    assert [v.name for v in other.model_versions()] == versions  # no "imported" version
    assert other.info().counts["predictions"] == predictions
    r = other.current_rating("c-mri-1")
    assert r is not None and r.imported
    assert (r.prediction_a_id, r.prediction_b_id) == (None, None)
    assert (r.answer_a, r.answer_b) == ("CORRECT - treatment fits", "ERROR - v2 says so")
    assert r.source == "expert_feedback.jsonl" and r.imported_at is not None


@pytest.mark.parametrize("margin", [None, 0.5])
@pytest.mark.parametrize("rationale", [None, "the image shows a mass that needs resection"])
@pytest.mark.parametrize("preference", ["a", "b", "tie", "both_wrong"])
def test_every_kind_survives_export_import_export(
    seeded: Seeded,
    other: Store,
    tmp_path: Path,
    preference: str,
    rationale: str | None,
    margin: float | None,
) -> None:
    store = seeded.store
    for cid in ("c-mri-1", "c-xray-1", "c-hist-1", "c-us-1"):
        a, b = seeded.preds[cid]
        pref = preference
        if preference == "tie" and a.label != b.label:
            pref = "both_wrong"
        true = (b if pref == "b" else a).label
        store.add_rating(
            RatingIn(
                cid,
                seeded.reviewer.id,
                a.id,
                b.id,
                pref,
                true,
                "high" if true == "ERROR" else None,
                rationale=rationale,
                margin=margin,
            )
        )
    first = tmp_path / "one" / "expert_feedback.jsonl"
    export_feedback(store, first, workspace_root=seeded.root)
    res = import_feedback(other, first)
    assert res.errors == []
    for cid in ("c-mri-1", "c-xray-1", "c-hist-1", "c-us-1"):
        mine, theirs = store.current_rating(cid), other.current_rating(cid)
        assert mine is not None
        # Only ratings that yield a pair travel in the TRL file (a tie of two right answers, or
        # both wrong without a rationale, teach no preference; the KTO file carries them).
        if not store.pairs_for_rating(mine.id):
            assert theirs is None
            continue
        assert theirs is not None
        assert (
            theirs.preference,
            theirs.true_label,
            theirs.rationale,
            theirs.margin,
            theirs.severity,
        ) == (mine.preference, mine.true_label, mine.rationale, mine.margin, mine.severity)
        assert (theirs.answer_a, theirs.answer_b) == (mine.answer_a, mine.answer_b)
    second = tmp_path / "two" / "expert_feedback.jsonl"
    export_feedback(other, second, workspace_root=other_root(other))
    assert second.read_bytes() == first.read_bytes()


def other_root(store: Store) -> Path:
    return Path(store.info().url.removeprefix("sqlite:///")).parent


def test_ratings_import_into_an_empty_workspace_creates_their_cases(
    exported: Path, tmp_path: Path
) -> None:
    root = tmp_path / "empty"
    store = open_store(f"sqlite:///{root / 'medreview.db'}")
    try:
        res = import_feedback(store, exported, create_reviewers=True, workspace_root=root)
        assert res.errors == [] and res.ratings == 3
        assert res.cases_created == ["c-hist-1", "c-mri-1", "c-us-1"]
        case = store.get_case("c-mri-1")
        assert case is not None
        assert (case.modality, case.finding, case.treatment, case.split) == (
            "mri",
            "Glioblastoma",
            "Aspirin and rest",
            "review",
        )
        assert (
            case.error_type is None and case.severity is None
        )  # ground truth never comes from a rating
        assert (root / case.image).is_file()
        again = tmp_path / "again" / "expert_feedback.jsonl"
        export_feedback(store, again, workspace_root=root)
        assert [{k: v for k, v in line.items() if k != "error_type"} for line in _read(again)] == [
            {k: v for k, v in line.items() if k != "error_type"} for line in _read(exported)
        ]
        # Without a workspace to put them in, unknown cases are refused, in words.
        bare = open_store(f"sqlite:///{tmp_path / 'bare.db'}")
        res = import_feedback(bare, exported, create_reviewers=True)
        assert res.ratings == 0 and "unknown case" in res.errors[0].message
        bare.close()
    finally:
        store.close()


def test_a_case_created_from_a_foreign_line_reads_its_prompt(
    exported: Path, tmp_path: Path
) -> None:
    line = _read(exported)[0]
    for key in ("finding", "treatment", "preference", "rationale", "answer_a", "answer_b"):
        line.pop(key)
    path = exported.with_name("foreign.jsonl")
    path.write_text(json.dumps(line) + "\n")
    root = tmp_path / "ws-c"
    store = open_store(f"sqlite:///{root / 'medreview.db'}")
    try:
        res = import_feedback(store, path, create_reviewers=True, workspace_root=root)
        assert res.errors == [] and res.cases_created == ["c-mri-1"]
        case = store.get_case("c-mri-1")
        assert case is not None and (case.finding, case.treatment) == (
            "Glioblastoma",
            "Aspirin and rest",
        )
    finally:
        store.close()


def test_a_contradictory_or_hand_edited_rating_is_refused(exported: Path, other: Store) -> None:
    line = _read(exported)[0]  # c-mri-1: B better, B says ERROR, true ERROR
    contradictory = {**line, "true_label": "CORRECT"}
    contradictory["rated_at"] = "2030-01-01T00:00:00.000000Z"
    edited = {**line, "preference": "a", "rated_at": "2031-01-01T00:00:00.000000Z"}
    path = exported.with_name("bad.jsonl")
    path.write_text(json.dumps(contradictory) + "\n" + json.dumps(edited) + "\n")
    res = import_feedback(other, path)
    assert res.ratings == 0
    assert [e.line for e in res.errors] == [1, 2]
    assert (
        "contradicts" in res.errors[0].message
        and "B is marked better but says ERROR" in res.errors[0].message
    )
    assert "do not follow from the rating" in res.errors[1].message


def test_importing_twice_changes_nothing(exported: Path, other: Store) -> None:
    import_feedback(other, exported)
    counts = other.info().counts
    res = import_feedback(other, exported)
    assert (res.ratings, res.skipped, res.errors) == (0, 3, [])
    assert other.info().counts == counts


def test_bad_lines_are_reported_and_good_lines_import(exported: Path, other: Store) -> None:
    good = exported.read_text(encoding="utf-8").splitlines()
    mri = json.loads(good[0])
    lines = [
        good[0],  # 1 good
        good[0][: len(good[0]) // 2],  # 2 truncated JSON
        json.dumps({**mri, "images": ["images/missing.png"]}),  # 3 missing image
        json.dumps({**mri, "severity": 3}),  # 4 wrong type
        json.dumps({**mri, "reviewer": "dr-unknown"}),  # 5 unknown reviewer
        json.dumps({**mri, "case_id": "c-ghost"}),  # 6 unknown case
        "",  # 7 blank: ignored
        json.dumps({**mri, "margin": "big"}),  # 8 wrong type
        json.dumps({k: v for k, v in mri.items() if k != "chosen"}),  # 9 missing field
        good[3],  # 10 good
    ]
    bad = exported.with_name("mixed.jsonl")
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = import_feedback(other, bad)
    assert [(e.line, e.file) for e in res.errors] == [(n, bad) for n in (2, 3, 4, 5, 6, 8, 9)]
    messages = {e.line: e.message for e in res.errors}
    assert "invalid JSON" in messages[2]
    assert "image not found" in messages[3] and "missing.png" in messages[3]
    assert "severity" in messages[4]
    assert "unknown reviewer 'dr-unknown'" in messages[5]
    assert "unknown case 'c-ghost'" in messages[6]
    assert "margin" in messages[8]
    assert "'chosen' missing" in messages[9]
    assert str(res.errors[0]) == f"{bad}:2: {messages[2]}"
    assert res.ratings == 2
    assert (
        other.current_rating("c-mri-1") is not None and other.current_rating("c-us-1") is not None
    )


def test_unknown_reviewers_can_be_created(exported: Path, other: Store) -> None:
    line = {**_read(exported)[0], "reviewer": "dr-visitor"}
    path = exported.with_name("visitor.jsonl")
    path.write_text(json.dumps(line) + "\n")
    assert import_feedback(other, path).errors[0].message.startswith("unknown reviewer")
    res = import_feedback(other, path, create_reviewers=True)
    assert res.reviewers_created == ["dr-visitor"] and res.ratings == 1
    assert [r.role for r in other.reviewers() if r.name == "dr-visitor"] == ["imported"]


def test_an_older_rating_does_not_overrule_a_newer_one(exported: Path, other: Store) -> None:
    line = _read(exported)[0]
    older = parse_time(line["rated_at"]) - timedelta(days=1)
    line["rated_at"] = older.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    path = exported.with_name("old.jsonl")
    path.write_text(json.dumps(line) + "\n")
    import_feedback(other, exported)
    res = import_feedback(other, path)
    assert res.ratings == 0 and "again later" in res.errors[0].message


def test_modality_mismatch_and_kto_rows_are_refused(exported: Path, other: Store) -> None:
    line = _read(exported)[0]
    path = exported.with_name("x.jsonl")
    kto = {"prompt": line["prompt"], "completion": line["chosen"], "label": True}
    path.write_text(json.dumps({**line, "modality": "xray"}) + "\n" + json.dumps(kto) + "\n")
    res = import_feedback(other, path)
    assert [e.line for e in res.errors] == [1, 2]
    assert "'mri' here" in res.errors[0].message and "KTO" in res.errors[1].message


def test_detects_feedback_files(exported: Path, tmp_path: Path) -> None:
    assert looks_like_feedback(exported)
    manifest = tmp_path / "cases.jsonl"
    manifest.write_text('not json\n{"case_id": "x", "modality": "xray"}\n')
    assert not looks_like_feedback(manifest)
    assert not looks_like_feedback(tmp_path / "nothing.jsonl")
    csv = tmp_path / "cases.csv"
    csv.write_text("chosen,rejected\n")
    assert not looks_like_feedback(csv)


def test_windows_line_endings_and_bom_are_accepted(exported: Path, other: Store) -> None:
    path = exported.with_name("windows.jsonl")
    path.write_bytes(b"\xef\xbb\xbf" + exported.read_bytes().replace(b"\n", b"\r\n"))
    assert looks_like_feedback(path)
    res = import_feedback(other, path)
    assert (res.ratings, res.errors) == (3, [])


def test_a_line_that_is_not_utf8_is_reported(exported: Path, other: Store) -> None:
    path = exported.with_name("latin1.jsonl")
    path.write_bytes(exported.read_bytes() + b'{"chosen": "caf\xe9"}\n')
    res = import_feedback(other, path)
    assert res.ratings == 3 and [(e.line, e.message) for e in res.errors] == [(5, "not UTF-8 text")]


def test_unreadable_file_is_a_store_error(other: Store, tmp_path: Path) -> None:
    from feedback_db import StoreError

    with pytest.raises(StoreError, match="cannot read"):
        import_feedback(other, tmp_path)  # a folder
