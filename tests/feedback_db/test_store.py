"""Every table round-trips through a real SQLite file, and bad requests fail in words."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from feedback_db import CaseIn, PredictionIn, Store, StoreError, open_store
from tests.feedback_db.factory import Seeded


def _reopen(store: Store) -> Store:
    store.close()
    return open_store(store.url)


def test_new_database_is_created_with_wal_and_foreign_keys(store: Store, sqlite_only: None) -> None:
    info = store.info()
    assert info.up_to_date and info.revision == info.head
    assert set(info.counts) >= {
        "reviewers",
        "cases",
        "model_versions",
        "predictions",
        "ratings",
        "preference_pairs",
        "training_runs",
        "evaluations",
    }
    assert all(n == 0 for n in info.counts.values())
    with store.sessions.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0  # per attempt; writes retry
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    full = open_store(store.url, synchronous="FULL")
    with full.sessions.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    full.close()
    with pytest.raises(ValueError, match="synchronous"):
        open_store(store.url, synchronous="OFF")


def test_reviewers_round_trip(store: Store) -> None:
    a = store.ensure_reviewer("dr-lee", "radiologist")
    again = store.ensure_reviewer(" dr-lee ", "pathologist")
    assert again == a  # existing reviewer unchanged
    b = store.ensure_reviewer("dr-okafor", "pathologist")
    store = _reopen(store)
    assert store.reviewers() == [a, b]
    assert a.created_at.tzinfo is not None
    with pytest.raises(ValueError, match="non-empty name"):
        store.ensure_reviewer("  ", "x")
    store.close()


def test_cases_round_trip_and_conflicts(store: Store) -> None:
    c = CaseIn(
        "c1",
        "xray",
        "images/a.png",
        "Pneumonia",
        "Antibiotics",
        "none",
        None,
        12.5,
        "test",
        {"window": [1, 2]},
    )
    assert store.add_cases([c]) == 1
    store = _reopen(store)
    got = store.get_case("c1")
    assert got is not None
    assert {f.name: getattr(got, f.name) for f in dataclasses.fields(c)} == dataclasses.asdict(c)
    assert store.get_case("nope") is None
    with pytest.raises(StoreError, match="already in the store: c1"):
        store.add_cases([c, dataclasses.replace(c, case_id="c2")])
    assert store.get_case("c2") is None  # all or nothing
    assert store.add_cases([c, dataclasses.replace(c, case_id="c2")], skip_existing=True) == 1
    with pytest.raises(StoreError, match="twice"):
        store.add_cases(
            [dataclasses.replace(c, case_id="c3"), dataclasses.replace(c, case_id="c3")]
        )
    assert [x.case_id for x in store.get_cases(["c2", "missing", "c1"])] == ["c2", "c1"]
    store.close()


def test_case_input_is_validated() -> None:
    with pytest.raises(ValueError, match="severity"):
        CaseIn("c", "xray", "i.png", "f", "t", severity="mild")
    with pytest.raises(ValueError, match="finding"):
        CaseIn("c", "xray", "i.png", "", "t")
    with pytest.raises(ValueError, match="cost_impact"):
        CaseIn("c", "xray", "i.png", "f", "t", cost_impact=float("nan"))


def test_model_versions_and_evaluations_round_trip(store: Store) -> None:
    base = store.add_model_version("base", "heuristic", "table", active=True, note="baseline")
    v2 = store.add_model_version(
        "v2", "clip-llm", "tiny", parent="base", path="models/v2", metrics={"acc": 0.8}
    )
    assert store.active_version() == base
    with pytest.raises(StoreError, match="already exists"):
        store.add_model_version("v2", "x", "y")
    with pytest.raises(StoreError, match="unknown model version 'ghost'"):
        store.add_model_version("v3", "x", "y", parent="ghost")
    ev = store.record_evaluation(
        "v2", {"accuracy": 0.91, "critical_misses": 0}, True, "better than base"
    )
    assert ev.version == "v2" and ev.promoted
    store = _reopen(store)
    got = store.get_model_version("v2")
    assert (
        got is not None and got.active and got.metrics == {"accuracy": 0.91, "critical_misses": 0}
    )
    assert got.promoted is True and got.promotion_reason == "better than base"
    assert got.parent == "base" and got.path == "models/v2" and got.id == v2.id
    assert not store.get_model_version("base").active  # type: ignore[union-attr]
    store.record_evaluation("v2", {"accuracy": 0.5}, False, "missed a critical error")
    assert [e.promoted for e in store.evaluations("v2")] == [True, False]
    assert store.set_active("base").active
    assert [v.name for v in store.model_versions() if v.active] == ["base"]
    with pytest.raises(StoreError, match="unknown model version"):
        store.set_active("ghost")
    assert store.get_model_version("ghost") is None
    store.close()


def test_predictions_latest_per_version(seeded: Seeded) -> None:
    store = seeded.store
    store.add_predictions(
        "v2", [PredictionIn("c-xray-1", "ERROR", "second look", "ERROR - second look", 0.51, 4.0)]
    )
    preds = store.predictions_for_case("c-xray-1")
    assert [(p.version, p.label) for p in preds] == [("base", "CORRECT"), ("v2", "ERROR")]
    assert (
        preds[1].confidence == 0.51
        and preds[1].latency_ms == 4.0
        and preds[1].reason == "second look"
    )
    by_case = store.predictions_for_version("v2")
    assert len(by_case) == 4 and by_case["c-xray-1"].label == "ERROR"
    assert set(store.predictions_for_version("v2", split="test")) == {"c-mri-1", "c-us-1"}
    with pytest.raises(StoreError, match="unknown case"):
        store.add_predictions("v2", [PredictionIn("ghost", "ERROR", "r", "ERROR - r")])
    with pytest.raises(StoreError, match="unknown model version"):
        store.add_predictions("ghost", [])
    with pytest.raises(ValueError, match="label"):
        PredictionIn("c", "MAYBE", "r", "t")


def test_training_runs_round_trip(seeded: Seeded) -> None:
    store = seeded.store
    run = store.add_training_run("reward", {"lr": 1e-4, "r": 16}, "base")
    assert run.status == "running" and run.finished_at is None
    done = store.finish_training_run(run.id, "succeeded", "pairwise accuracy 0.8", version="v2")
    assert done.status == "succeeded" and done.version == "v2" and done.finished_at is not None
    with pytest.raises(StoreError, match="already finished"):
        store.finish_training_run(run.id, "failed", "again")
    with pytest.raises(ValueError, match="status"):
        store.finish_training_run(run.id, "exploded", None)
    with pytest.raises(StoreError, match="training config is not JSON"):
        store.add_training_run("ppo", {"bad": object()}, None)
    with pytest.raises(StoreError, match="metrics is not JSON"):
        store.record_evaluation("v2", {"accuracy": float("nan")}, False, "x")
    other = store.add_training_run("ppo", {}, None)
    store.finish_training_run(other.id, "canceled", "canceled by the user")
    store = _reopen(store)
    runs = store.training_runs()
    assert [(r.kind, r.status, r.config) for r in runs] == [
        ("reward", "succeeded", {"lr": 1e-4, "r": 16}),
        ("ppo", "canceled", {}),
    ]
    store.close()


def test_info_counts_rows(seeded: Seeded) -> None:
    counts = seeded.store.info().counts
    assert counts["cases"] == 4 and counts["predictions"] == 8 and counts["model_versions"] == 2
    assert counts["reviewers"] == 1 and counts["ratings"] == 0


def test_database_errors_become_store_errors(
    tmp_path: Path,
) -> None:  # not parametrized: SQLite paths
    with pytest.raises(StoreError, match="cannot open database URL"):
        open_store("nosuchdialect://x")
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{tmp_path / 'dir.db'}")
