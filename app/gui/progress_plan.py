"""One overall progress, with a time left, for a verb that runs several stages.

A child process reports each stage on its own (``{"stage", "step", "total", "eta_s"}``), so a bar
that follows the stages restarts at every one and its time left says nothing about the whole run.
A plan lists the verb's stages in order with their share of its time (measured on a 2-core CPU,
``app/cli/demo.py``); ``OverallProgress`` turns the events into one fraction of the whole, and
a time left built from what has been measured so far:

* the current stage: the child's own estimate (``eta_s``, from its steps so far), else its share
  of the plan scaled by how fast this machine has gone;
* the stages still to come: their planned seconds, scaled by the same speed (the elapsed time
  over the planned seconds of the work done), so a faster or slower machine corrects itself.

Before a few seconds and a few per cent have gone by the time left is the plan's own figure,
said as "about"; it is never shown as less than the stages still to come. No Qt here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.runtime.progress import ProgressEvent

Plan = Sequence[
    tuple[str, str, float]
]  # (stage as the verb reports it, words for the log, planned seconds)


@dataclass(frozen=True)
class Overall:
    """Where a planned run stands."""

    fraction: float  # 0..1 of the whole run
    eta_s: float | None  # seconds left for the whole run; None until it can be estimated
    index: int  # the current stage's place in the plan (0-based), -1 before the first
    stages: int  # how many stages the plan has
    words: str  # the current stage in words
    new_stage: bool  # this event began a stage
    measured: bool  # the time left comes from this run's speed (else from the plan alone)


class OverallProgress:
    """Follows a run's events against its ``plan``."""

    MIN_ELAPSED_S = 3.0
    MIN_FRACTION = 0.02

    def __init__(self, plan: Plan, clock: Callable[[], float] = time.monotonic) -> None:
        if not plan:
            raise ValueError("a plan needs at least one stage")
        self.plan = list(plan)
        self._clock = clock
        self._start: float | None = None
        self._index = -1
        self._stage_fraction = 0.0
        self.total = float(sum(w for _, _, w in self.plan)) or 1.0

    def start(self) -> None:
        self._start = self._clock()
        self._index = -1
        self._stage_fraction = 0.0

    def _find(self, stage: str) -> int | None:
        for i, (name, _, _) in enumerate(self.plan):
            if name == stage:
                return i
        return None

    def update(self, ev: ProgressEvent) -> Overall | None:
        """The overall state after ``ev``; None for an event outside the plan (done, failed)."""
        if self._start is None:
            self.start()
        index = self._find(ev.stage)
        if index is None:
            return None
        new_stage = index != self._index
        if index < self._index:  # stages never go back; an out-of-order line changes nothing
            return self.state(new_stage=False)
        self._index = index
        frac = min(1.0, ev.step / ev.total) if ev.total else 0.0
        self._stage_fraction = frac
        return self.state(new_stage=new_stage, stage_eta=ev.eta_s)

    def state(self, new_stage: bool = False, stage_eta: float | None = None) -> Overall:
        i = self._index
        before = sum(w for _, _, w in self.plan[:i]) if i >= 0 else 0.0
        w_cur = self.plan[i][2] if i >= 0 else 0.0
        after = sum(w for _, _, w in self.plan[i + 1 :]) if i >= 0 else self.total
        done = before + w_cur * self._stage_fraction
        fraction = done / self.total
        elapsed = self._clock() - self._start if self._start is not None else 0.0
        measured = elapsed >= self.MIN_ELAPSED_S and fraction >= self.MIN_FRACTION and done > 0
        if measured:
            speed = elapsed / done  # this machine's seconds per planned second
            current = (
                stage_eta
                if stage_eta is not None and i >= 0
                else w_cur * (1 - self._stage_fraction) * speed
            )
            eta: float | None = current + after * speed
        elif i < 0:
            eta = self.total
        else:
            eta = w_cur * (1 - self._stage_fraction) + after
        words = self.plan[i][1] if i >= 0 else "Starting"
        return Overall(fraction, eta, i, len(self.plan), words, new_stage, measured)


def format_left(seconds: float | None, about: bool = False) -> str:
    """``"about 2 min 10 s left"``-style text; empty when unknown."""
    if seconds is None:
        return ""
    s = max(0, int(round(seconds)))
    if s >= 3600:
        text = f"{s // 3600} h {s % 3600 // 60:02d} min"
    elif s >= 60:
        text = f"{s // 60} min {s % 60:02d} s"
    else:
        text = f"{s} s"
    return f"{'about ' if about else ''}{text} left"
