"""The review queue: filters and the uncertainty order, in one query."""

from __future__ import annotations

import pytest

from feedback_db import PredictionIn, RatingIn
from tests.feedback_db.factory import Seeded


def test_filters(seeded: Seeded) -> None:
    store = seeded.store
    assert store.query_case_ids(order="id") == ["c-hist-1", "c-mri-1", "c-us-1", "c-xray-1"]
    assert store.query_case_ids(modality="mri") == ["c-mri-1"]
    assert store.query_case_ids(split="test", order="id") == ["c-mri-1", "c-us-1"]
    a, b = seeded.preds["c-mri-1"]
    store.add_rating(RatingIn("c-mri-1", seeded.reviewer.id, a.id, b.id, "b", "ERROR", "critical"))
    assert store.query_case_ids(rated=True) == ["c-mri-1"]
    assert "c-mri-1" not in store.query_case_ids(rated=False)
    other = store.ensure_reviewer("dr-b", "radiologist")
    assert store.query_case_ids(rated=True, reviewer_id=other.id) == []
    assert len(store.query_case_ids(rated=False, reviewer_id=other.id)) == 4


def test_disagreement_between_two_versions(seeded: Seeded) -> None:
    store = seeded.store
    # base says CORRECT everywhere; v2 says ERROR on the two error cases.
    assert store.query_case_ids(disagree=True, versions=("base", "v2"), order="id") == [
        "c-hist-1",
        "c-mri-1",
    ]
    assert store.query_case_ids(disagree=False, versions=("base", "v2"), order="id") == [
        "c-us-1",
        "c-xray-1",
    ]
    # Only the latest prediction of a version counts.
    store.add_predictions(
        "v2", [PredictionIn("c-hist-1", "CORRECT", "changed", "CORRECT - changed", 0.9)]
    )
    assert store.query_case_ids(disagree=True, versions=("base", "v2"), order="id") == ["c-mri-1"]
    with pytest.raises(ValueError, match="needs versions"):
        store.query_case_ids(disagree=True)


def test_uncertainty_order(seeded: Seeded) -> None:
    store = seeded.store
    # mean |conf - 0.5| over base and v2: mri (0.05+0.1)/2=0.075, us (0.2+0.02)/2=0.11,
    # hist (0.1+0.3)/2=0.2, xray (0.45+0.4)/2=0.425
    assert store.query_case_ids(versions=("base", "v2")) == [
        "c-mri-1",
        "c-us-1",
        "c-hist-1",
        "c-xray-1",
    ]
    # Without versions, the active version (base) alone: mri .05, hist .1, us .2, xray .45
    assert store.query_case_ids() == ["c-mri-1", "c-hist-1", "c-us-1", "c-xray-1"]
    # A side without confidence: the other side alone decides (us .02, mri .1, hist .3, xray .4).
    store.add_model_version("heur", "heuristic", "table")
    store.add_predictions("heur", [PredictionIn("c-us-1", "CORRECT", "r", "CORRECT - r", None)])
    assert store.query_case_ids(versions=("heur", "v2")) == [
        "c-us-1",
        "c-mri-1",
        "c-hist-1",
        "c-xray-1",
    ]
    # Cases with no confidence at all come last, by id.
    store.add_model_version("v3", "clip-llm", "tiny")
    store.add_predictions("v3", [PredictionIn("c-xray-1", "CORRECT", "r", "CORRECT - r", 0.99)])
    assert store.query_case_ids(versions=("v3", "heur")) == [
        "c-xray-1",
        "c-hist-1",
        "c-mri-1",
        "c-us-1",
    ]
    with pytest.raises(ValueError, match="order"):
        store.query_case_ids(order="random")
