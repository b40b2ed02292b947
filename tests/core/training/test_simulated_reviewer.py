"""The simulated reviewer panel (tests and benchmarks only): it follows the ground truth, slips at
its error rate, has habits, writes rationales in its own words, and is reproducible."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from core.clinical.verdicts import make_verdict
from core.training.simulated_reviewer import (
    DEFAULT_PANEL,
    PanelConfig,
    ReviewerHabits,
    assign,
    rate,
    rate_all,
    to_pairs,
    to_rated_cases,
)

from .conftest import make_cases


def test_rates_from_ground_truth():
    err = next(c for c in make_cases(4, seed=1) if c.is_error)
    right, wrong = make_verdict("ERROR - caught"), make_verdict("CORRECT - fine")
    assert rate(err, right, wrong).preference == "a"
    assert rate(err, wrong, right).preference == "b"
    assert rate(err, right, right).preference == "tie"
    eager = ReviewerHabits("simulated-eager", rationale_rate=1.0)
    both = rate(err, wrong, make_verdict("nonsense"), eager)
    assert both.preference == "both_wrong" and both.rationale and both.true_label == "ERROR"
    assert both.severity == err.severity
    pairs = to_pairs([both, rate(err, right, wrong), rate(err, right, right)])
    assert len(pairs) == 3  # two for both-wrong (gold over each), one for "a", none for the tie
    assert all(p.chosen.startswith("ERROR") for p in pairs)
    assert pairs[0].rewritten and not pairs[2].rewritten
    assert all(p.case.error_type is None for p in pairs)  # what training gets: no ground truth


def test_needs_ground_truth():
    case = replace(make_cases(1)[0], error_type=None)
    with pytest.raises(ValueError):
        rate(case, make_verdict("ERROR - x"), make_verdict("CORRECT - y"))


def test_panel_slips_at_its_error_rate_and_is_reproducible():
    cases = make_cases(400, seed=4)
    truth = [make_verdict(f"{c.truth_label} - right") for c in cases]
    other = [make_verdict(("CORRECT" if c.is_error else "ERROR") + " - wrong") for c in cases]
    cfg = PanelConfig(seed=3)
    ratings = rate_all(cases, truth, other, cfg)
    slips = [r for r in ratings if r.slipped]
    assert 0.02 < len(slips) / len(ratings) < 0.09  # the default 5%
    assert all(r.true_label != r.case.truth_label for r in slips)
    assert all(r.preference == ("b" if r.slipped else "a") for r in ratings)
    assert rate_all(cases, truth, other, cfg) == ratings
    none = rate_all(cases, truth, other, PanelConfig(seed=3, error_rate=0.0))
    assert not any(r.slipped for r in none)


def test_panel_shares_the_cases_by_weight_with_some_overlap():
    cases = make_cases(600, seed=5)
    who = assign(cases, PanelConfig(seed=1))
    per_case = Counter(c.case_id for c, _ in who)
    assert set(per_case.values()) == {1, 2}
    overlap = sum(v == 2 for v in per_case.values()) / len(cases)
    assert 0.1 < overlap < 0.2
    share = Counter(h.name for _, h in who)
    assert share[DEFAULT_PANEL[0].name] > share[DEFAULT_PANEL[2].name]  # weights 0.4 vs 0.25
    with pytest.raises(ValueError):
        ReviewerHabits("dr-real")  # a simulated reviewer says so in its name
    with pytest.raises(ValueError):
        PanelConfig(reviewers=DEFAULT_PANEL + (ReviewerHabits("simulated-x"),))


def test_habits_show_in_rationales_and_severities():
    cases = [c for c in make_cases(300, seed=6) if c.is_error]
    wrong = [make_verdict("CORRECT - fine") for _ in cases]
    ratings = rate_all(cases, wrong, wrong, PanelConfig(seed=2, error_rate=0.0, overlap=0.0))
    by = {h.name: [r for r in ratings if r.reviewer == h.name] for h in DEFAULT_PANEL}
    rate_of = {n: sum(r.rationale is not None for r in rs) / len(rs) for n, rs in by.items()}
    assert rate_of["simulated-dr-teacher"] > rate_of["simulated-dr-brief"]
    teacher = [r.rationale for r in by["simulated-dr-teacher"] if r.rationale]
    assert any("usual choice" in t for t in teacher)  # explains, in its own words
    assert all(r.preference == "both_wrong" for r in ratings)
    levels = ("moderate", "high", "critical")
    for r in by["simulated-dr-cautious"]:
        assert levels.index(r.severity) == min(2, levels.index(r.case.severity) + 1)
    rated = to_rated_cases(ratings)
    assert all(rc.case.error_type is None and rc.case.meta == {} for rc in rated)
    assert {rc.true_label for rc in rated} == {"ERROR"}
