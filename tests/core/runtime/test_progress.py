from __future__ import annotations

import io
import json

import pytest

from core.runtime.progress import Canceled, Progress, ProgressEvent, json_lines


def test_json_lines_round_trip_and_non_finite_values_become_null() -> None:
    out = io.StringIO()
    p = json_lines(out)
    p.update("ppo", 1, 4, loss=float("nan"), reward=0.5, kl=float("inf"), message="step")
    p.update("ppo", 2, 4, loss=0.25)
    first, second = (json.loads(x) for x in out.getvalue().splitlines())
    assert first["loss"] is None and first["kl"] is None and first["reward"] == 0.5
    assert ProgressEvent.from_json(out.getvalue().splitlines()[1]) == ProgressEvent(**second)
    assert second["eta_s"] is not None and second["eta_s"] >= 0


def test_cancel_is_seen_by_check() -> None:
    p = Progress()
    p.check()
    p.cancel()
    assert p.is_canceled
    with pytest.raises(Canceled):
        p.check()
