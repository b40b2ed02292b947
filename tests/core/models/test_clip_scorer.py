"""The description line and the one-threshold rule's threshold (pure functions)."""

from __future__ import annotations

import pytest

from core.models.clip_scorer import choose_stated_threshold, describe_scores, stated_probability

SCORES = [("Pneumothorax", 0.62), ("Pleural effusion", 0.30), ("Normal", 0.08)]


def test_description_without_and_with_the_stated_call() -> None:
    assert describe_scores(SCORES) == "image suggests: Pneumothorax (0.62), Pleural effusion (0.30)"
    assert describe_scores(SCORES, 1, "Normal", 0.05).endswith("; stated finding: seen (0.08)")
    assert describe_scores(SCORES, 2, "Normal", 0.09).endswith("; stated finding: not seen (0.08)")
    # The threshold itself counts as seen; a finding the scores lack has probability 0.
    assert describe_scores(SCORES, 2, "Normal", 0.08).endswith("seen (0.08)")
    assert stated_probability(SCORES, "Atelectasis") == 0.0
    assert "not seen (0.00)" in describe_scores(SCORES, 2, "Atelectasis", 0.01)


def test_the_threshold_is_the_best_on_the_cases_given_and_the_lowest_on_a_tie() -> None:
    # Errors: case 3 by its treatment, cases 4 and 5 by their image (p 0.10 and 0.25).
    probs = [0.9, 0.6, 0.95, 0.10, 0.25]
    rejected = [False, False, True, False, False]
    is_error = [False, False, True, True, True]
    t, acc = choose_stated_threshold(probs, rejected, is_error)
    assert acc == 1.0 and t == 0.26  # the lowest t that calls 0.25 an error and 0.6 not
    t2, acc2 = choose_stated_threshold([0.5, 0.5], [False, False], [True, False])
    assert acc2 == 0.5 and t2 == 0.01  # nothing separates them: the lowest threshold
    with pytest.raises(ValueError):
        choose_stated_threshold([], [], [])
    with pytest.raises(ValueError):
        choose_stated_threshold([0.5], [False, True], [True])
