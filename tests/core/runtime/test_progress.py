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


def test_time_left_is_the_stage_rate_times_the_steps_left_and_restarts_with_each_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    import core.runtime.progress as progress_module

    clock = iter([0.0, 100.0, 110.0, 130.0, 200.0, 204.0])
    # The module's own clock only (time.monotonic itself stays real for everything else).
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    events: list[ProgressEvent] = []
    p = Progress(events.append)
    p.update("sft", 1, 4)  # t=100: the stage starts here
    p.update("sft", 2, 4)  # t=110: 10 s for 2 steps, 2 left
    p.update("sft", 3, 4)  # t=130: 30 s for 3 steps, 1 left
    p.update("ppo", 1, 10)  # t=200: a new stage starts its own clock
    p.update("ppo", 2, 10)  # t=204: 4 s for 2 steps, 8 left
    assert [e.eta_s for e in events] == [0.0, 10.0, 10.0, 0.0, 16.0]
