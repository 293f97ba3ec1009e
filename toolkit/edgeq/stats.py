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


# --------------------------------------------------------------------------- run-level test
#
# The samples of one process are not independent draws of "the model's latency": on a
# shared or frequency-scaling machine a fresh process lands in one of several modes (a
# small model's p50 is 0.024 or 0.029 ms from one process to the next), so a test whose unit
# is the sample calls identical setups different. The unit here is the run (a fresh
# process): each side is a set of per-run figures (e.g. the p50 of each repetition, or
# the last K lab runs of a series), compared on the log scale (latencies multiply) with
# Welch's t-test; one figure on one side is judged against the other side's spread
# (a prediction interval: is this run outside what runs of the other side do?).


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 3e-14
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    import math

    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
    front = math.exp(ln + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with `df` degrees of freedom."""
    if not np.isfinite(t):
        return 0.0
    return float(_betainc(df / 2.0, 0.5, df / (df + t * t)))


def t_quantile(p: float, df: float) -> float:
    """The p-quantile (p > 0.5) of Student's t, by bisection on `t_two_sided_p`."""
    target = 2.0 * (1.0 - p)
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_two_sided_p(mid, df) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def runs_difference(a: Any, b: Any, level: float = 0.95) -> Difference | None:
    """B − A where each value is one run's figure (a fresh process): Welch's t-test on the
    logs; with one run on a side, that run against the other side's spread (prediction
    interval). None when the runs cannot say (fewer than 2 runs on both sides, or no
    spread on a side with one run on the other). The interval is of B − A in A's units,
    from the interval of the ratio of geometric means."""
    xa, xb = _values(a), _values(b)
    if (xa <= 0).any() or (xb <= 0).any():
        return None
    la, lb = np.log(xa), np.log(xb)
    na, nb = la.size, lb.size
    va = float(la.var(ddof=1)) if na > 1 else None
    vb = float(lb.var(ddof=1)) if nb > 1 else None
    diff = float(lb.mean() - la.mean())
    if va is not None and vb is not None:
        se2a, se2b = va / na, vb / nb
        se = (se2a + se2b) ** 0.5
        df = (se2a + se2b) ** 2 / (
            (se2a**2 / (na - 1) if se2a else 0.0) + (se2b**2 / (nb - 1) if se2b else 0.0) or 1e-300
        )
        method = f"Welch t-test on log per-run figures ({na} vs {nb} runs; unit: a process)"
    elif va is not None:  # one B run against A's runs
        se, df = (va * (1 + 1 / na)) ** 0.5, na - 1
        method = f"one run vs the spread of {na} runs (t prediction interval, log scale)"
    elif vb is not None:
        se, df = (vb * (1 + 1 / nb)) ** 0.5, nb - 1
        method = f"one run vs the spread of {nb} runs (t prediction interval, log scale)"
    else:
        return None
    ma, mb = float(np.median(xa)), float(np.median(xb))
    if se == 0.0:
        if diff == 0.0:
            return Difference(ma, mb, mb - ma, 0.0, 0.0, 1.0, level, na, nb, 0.5, method)
        return None  # no spread at all: nothing to judge the change against
    t = diff / se
    p = t_two_sided_p(t, df)
    half = t_quantile((1 + level) / 2, df) * se
    base = float(np.exp(la.mean()))
    lo, hi = base * (np.exp(diff - half) - 1), base * (np.exp(diff + half) - 1)
    return Difference(ma, mb, mb - ma, float(lo), float(hi), p, level, na, nb, 0.5, method)
