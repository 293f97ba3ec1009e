"""Statistics for latency figures that must be trusted: bootstrap confidence intervals and
a bootstrap test of the difference of two medians.

Why the bootstrap: latency distributions are skewed, multi-modal (frequency steps, cache
effects) and their samples are not independent draws from a normal law. A percentile
bootstrap makes no assumption about the shape; with a fixed seed it is reproducible.

    ci_of_median(values)          95 % interval of the median of `values` (e.g. the p90 of
                                  each of N repetitions)
    quantile_difference(a, b, q)  B's q-quantile minus A's (q = 0.5: the medians), its 95 %
                                  interval and a two-sided p-value (twice the share of
                                  resampled differences on the far side of 0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Interval:
    estimate: float
    ci_low: float
    ci_high: float
    level: float
    n: int
    method: str = "percentile bootstrap of the median"

    @property
    def width_rel(self) -> float:
        """Half the interval's width relative to the estimate (0.02 = ±2 %)."""
        return (self.ci_high - self.ci_low) / 2 / abs(self.estimate) if self.estimate else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Difference:
    """B − A for medians: the change, its interval, the p-value and the verdict."""

    a_median: float
    b_median: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    level: float
    n_a: int
    n_b: int
    quantile: float = 0.5
    method: str = "bootstrap of the difference of medians (two-sided)"

    @property
    def relative(self) -> float:
        return self.delta / self.a_median if self.a_median else float("inf")

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (equivalently p < 1 − level)."""
        return self.ci_low > 0 or self.ci_high < 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["relative"] = self.relative
        d["significant"] = self.significant
        return d


def _values(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError("no finite values")
    return a


def _resampled(
    a: np.ndarray, resamples: int, rng: np.random.Generator, q: float = 0.5
) -> np.ndarray:
    """The q-quantile of each of `resamples` bootstrap resamples of `a`, in bounded memory."""
    out = np.empty(resamples)
    chunk = max(1, min(resamples, 4_000_000 // max(1, a.size)))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        idx = rng.integers(0, a.size, size=(k, a.size))
        out[start : start + k] = np.quantile(a[idx], q, axis=1)
    return out


def ci_of_median(
    values: Any,
    level: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """The median of `values` with a percentile-bootstrap interval at `level`."""
    a = _values(values)
    est = float(np.median(a))
    if a.size == 1:
        return Interval(est, est, est, level, 1)
    meds = _resampled(a, resamples, np.random.default_rng(seed))
    lo, hi = np.quantile(meds, [(1 - level) / 2, (1 + level) / 2])
    return Interval(est, float(lo), float(hi), level, int(a.size))


def quantile_difference(
    a: Any,
    b: Any,
    q: float = 0.5,
    level: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Difference:
    """quantile_q(B) − quantile_q(A), resampling each set independently."""
    xa, xb = _values(a), _values(b)
    rng = np.random.default_rng(seed)
    diffs = _resampled(xb, resamples, rng, q) - _resampled(xa, resamples, rng, q)
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    below = float(np.mean(diffs <= 0))
    above = float(np.mean(diffs >= 0))
    p = min(1.0, 2 * min(below, above))
    ma, mb = float(np.quantile(xa, q)), float(np.quantile(xb, q))
    method = (
        "bootstrap of the difference of medians (two-sided)"
        if q == 0.5
        else f"bootstrap of the difference of the {q:.0%} quantiles (two-sided)"
    )
    return Difference(
        ma, mb, mb - ma, float(lo), float(hi), p, level, int(xa.size), int(xb.size), q, method
    )


def median_difference(a: Any, b: Any, **kw: Any) -> Difference:
    """median(B) − median(A) (see `quantile_difference`)."""
    return quantile_difference(a, b, 0.5, **kw)
