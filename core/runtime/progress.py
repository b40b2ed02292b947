"""Progress and cancel for long work, with no Qt (napari's ``cancelable_progress`` idea).

Long engine functions take ``progress: Progress | None``. They call ``progress.update(...)`` and
check ``progress.is_canceled`` between steps, raising ``Canceled`` when asked to stop. ``app``
turns the events into Qt signals, a terminal bar, or the JSON lines of docs/architecture.md:
``{"stage", "step", "total", "loss", "reward", "kl", "eta_s", "message"}``.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import IO


class Canceled(Exception):
    """Raised by engine code when its progress object has been canceled."""


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    step: int
    total: int | None = None
    loss: float | None = None
    reward: float | None = None
    kl: float | None = None
    eta_s: float | None = None
    message: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False)

    @classmethod
    def from_json(cls, line: str) -> ProgressEvent:
        data = json.loads(line)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


ProgressCallback = Callable[[ProgressEvent], None]


class Progress:
    """Reports steps to a callback, estimates time left per stage, and carries the cancel flag.

    Thread-safe for one producer and any number of cancelers.
    """

    def __init__(self, callback: ProgressCallback | None = None) -> None:
        self._callback = callback
        self._cancel = threading.Event()
        self._stage: str | None = None
        self._stage_start = time.monotonic()

    @property
    def is_canceled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def check(self) -> None:
        """Raise ``Canceled`` if cancel was asked for."""
        if self._cancel.is_set():
            raise Canceled("canceled by the user")

    def update(
        self,
        stage: str,
        step: int,
        total: int | None = None,
        *,
        loss: float | None = None,
        reward: float | None = None,
        kl: float | None = None,
        message: str | None = None,
    ) -> None:
        now = time.monotonic()
        if stage != self._stage:
            self._stage, self._stage_start = stage, now
        eta = None
        if total and step > 0:
            eta = (now - self._stage_start) / step * max(0, total - step)
        event = ProgressEvent(stage, step, total, _f(loss), _f(reward), _f(kl), eta, message)
        if self._callback is not None:
            self._callback(event)


def _f(x: float | None) -> float | None:
    """A plain float, or None for a missing or non-finite value: a diverged loss must not break
    the JSON progress line that reports it (the run says what went wrong elsewhere)."""
    if x is None:
        return None
    value = float(x)
    return value if math.isfinite(value) else None


def json_lines(stream: IO[str] | None = None) -> Progress:
    """A ``Progress`` that prints one JSON object per line (the child-process protocol)."""
    out = stream or sys.stdout

    def emit(event: ProgressEvent) -> None:
        out.write(event.to_json() + "\n")
        out.flush()

    return Progress(emit)
