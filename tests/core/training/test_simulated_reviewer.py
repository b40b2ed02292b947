"""The simulated reviewer (tests and benchmarks only) follows the ground truth."""

from __future__ import annotations

import pytest

from core.training.simulated_reviewer import rate, to_pairs
from core.verdicts import make_verdict

from .conftest import make_cases


def test_rates_from_ground_truth():
    err = next(c for c in make_cases(4, seed=1) if c.is_error)
    right, wrong = make_verdict("ERROR - caught"), make_verdict("CORRECT - fine")
    assert rate(err, right, wrong).preference == "a"
    assert rate(err, wrong, right).preference == "b"
    assert rate(err, right, right).preference == "tie"
    both = rate(err, wrong, make_verdict("nonsense"))
    assert both.preference == "both_wrong" and both.rationale
    pairs = to_pairs([both, rate(err, right, wrong), rate(err, right, right)])
    assert len(pairs) == 3  # two for both-wrong (gold over each), one for "a", none for the tie
    assert all(p.chosen.startswith("ERROR") for p in pairs)
    assert pairs[0].rewritten and not pairs[2].rewritten


def test_needs_ground_truth():
    from dataclasses import replace

    case = replace(make_cases(1)[0], error_type=None)
    with pytest.raises(ValueError):
        rate(case, make_verdict("ERROR - x"), make_verdict("CORRECT - y"))
