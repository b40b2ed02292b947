"""Paired statistics for two sets of verdicts on the same cases: bootstrap intervals and McNemar.

The bootstrap resamples *cases* (with replacement) and recomputes every metric of both sets, and
their difference B - A, on the same resample, so the difference interval accounts for the pairing.
It is vectorised: each chunk of resamples becomes a matrix of case counts ``W`` (resamples x cases),
and every metric is a column of ``W @ X``, one matrix product. 2,000 resamples of 1,000 cases take
a few tens of milliseconds.

McNemar's exact test looks only at the discordant pairs: ``b`` cases A got right and B got wrong,
``c`` the other way round. Under the null hypothesis (both equally accurate) each discordant pair
is a fair coin, so the two-sided p-value is ``min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.evaluation.metrics import NAN, json_number

METRICS: tuple[str, ...] = ("accuracy", "tp_rate", "tn_rate", "fpr", "mean_reward")

# Cap on the size of one chunk's count matrix (resamples x cases), to bound memory.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap percentile interval (NaN where undefined)."""

    estimate: float
    low: float
    high: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": json_number(self.estimate),
            "low": json_number(self.low),
            "high": json_number(self.high),
        }


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test. ``b``: A right and B wrong; ``c``: A wrong and B right."""

    b: int
    c: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {"b": self.b, "c": self.c, "p_value": self.p_value}


def mcnemar_exact(b: int, c: int) -> McNemar:
    """Two-sided exact McNemar test on the discordant counts ``b`` and ``c``.

    ``b=1, c=9`` gives ``2 * (1 + 10) / 1024 = 0.02148``; no discordant pairs gives 1.

    Raises:
        ValueError: a negative count.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative; got b={b}, c={c}")
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0)
    # The exact McNemar test is a two-sided binomial test of b successes in b + c at 1/2.
    from scipy.stats import binomtest

    return McNemar(b, c, float(min(1.0, binomtest(b, n, 0.5, alternative="two-sided").pvalue)))


def _stats(x: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """Metrics of both sets from column sums ``x`` (rows: samples; columns as in ``_columns``).

    Returns rows x (A metrics, B metrics, B - A), each in ``METRICS`` order.
    """
    err = x[:, 0]
    cor = n - err
    out = []
    for off in (1, 5):
        right, caught, passed, reward = x[:, off], x[:, off + 1], x[:, off + 2], x[:, off + 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            tp = np.where(err > 0, caught / np.where(err > 0, err, 1), np.nan)
            tn = np.where(cor > 0, passed / np.where(cor > 0, cor, 1), np.nan)
        out.append(np.stack([right / n, tp, tn, 1.0 - tn, reward / n], axis=1))
    a, b = out
    return np.concatenate([a, b, b - a], axis=1)


def _columns(
    is_error: NDArray[np.bool_],
    right_a: NDArray[np.bool_],
    right_b: NDArray[np.bool_],
    reward_a: NDArray[np.float64],
    reward_b: NDArray[np.float64],
) -> NDArray[np.float64]:
    cols: list[NDArray[Any]] = [is_error]
    for right, reward in ((right_a, reward_a), (right_b, reward_b)):
        cols += [right, right & is_error, right & ~is_error, reward]
    return np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)


def _percentiles(samples: NDArray[np.float64], alpha: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return NAN, NAN
    lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def paired_bootstrap(
    is_error: NDArray[np.bool_],
    right_a: NDArray[np.bool_],
    right_b: NDArray[np.bool_],
    reward_a: NDArray[np.float64],
    reward_b: NDArray[np.float64],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, Interval]]:
    """Percentile intervals for each metric of A, of B and of B - A, resampling cases.

    Arguments are per-case arrays of the same length: whether the case is an error, whether each
    set's verdict was right, each set's clinical reward. Returns ``{metric: {"a", "b", "diff"}}``.
    A resample with no error cases (or no correct cases) has an undefined TP (TN) rate; it is left
    out of that metric's interval, and the interval is NaN if every resample is undefined.

    Raises:
        ValueError: arrays of different lengths, ``n_boot`` < 1, or ``level`` outside (0, 1).
    """
    n = len(is_error)
    if any(len(a) != n for a in (right_a, right_b, reward_a, reward_b)):
        raise ValueError("paired_bootstrap: per-case arrays must have the same length")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1; got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}")
    x = _columns(is_error, right_a, right_b, reward_a, reward_b)
    point = _stats(x.sum(axis=0, keepdims=True), n)[0] if n else np.full(3 * len(METRICS), np.nan)
    if n:
        rng = np.random.default_rng(seed)
        chunk = max(1, _CHUNK_CELLS // n)
        parts = []
        for start in range(0, n_boot, chunk):
            rows = min(chunk, n_boot - start)
            idx = rng.integers(0, n, size=(rows, n))
            flat = (idx + (np.arange(rows) * n)[:, None]).ravel()
            w = np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)
            parts.append(_stats(w @ x, n))
        samples = np.concatenate(parts, axis=0)
    else:
        samples = np.full((1, 3 * len(METRICS)), np.nan)
    alpha = 1.0 - level
    out: dict[str, dict[str, Interval]] = {}
    for i, metric in enumerate(METRICS):
        out[metric] = {}
        for j, who in enumerate(("a", "b", "diff")):
            col = j * len(METRICS) + i
            lo, hi = _percentiles(samples[:, col], alpha)
            out[metric][who] = Interval(float(point[col]), lo, hi)
    return out
