"""Means over seeds with their 95 % confidence intervals (Student t), and the interval of a
difference of two means (Welch), as best.json, confirm.csv and the report give them.

With 3 seeds the t quantile is 4.30 (df 2): the intervals are wide on purpose. A search's best
validation figure is the best of many noisy runs; only the spread over fresh seeds says whether
one configuration is really better than another.

Standard library only (the t quantile from scipy when it is there: scikit-learn, a dependency,
brings it; else a table good to 3 decimals).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TypedDict

CONFIDENCE = 0.95

# Two-sided 95 % Student t quantiles, df 1..30 (used without scipy).
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student t quantile for `df` degrees of freedom (may be fractional:
    Welch's)."""
    try:
        from scipy.stats import t

        return float(t.ppf(0.5 + confidence / 2, df))
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        if confidence != CONFIDENCE:
            raise
        if df >= len(_T95):
            return 1.960 + 2.4 / df  # within 0.003 of the true value above df 30
        return _T95[max(0, math.floor(df) - 1)]


class Interval(TypedDict):
    mean: float
    low: float | None  # None with a single value: no spread to estimate
    high: float | None
    n: int
    std: float | None


class Difference(TypedDict):
    diff: float  # mean of a - mean of b
    low: float | None
    high: float | None
    tied: bool  # the interval covers 0 (or cannot be estimated)


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean and its 95 % interval, mean +- t(n-1) * s / sqrt(n)."""
    clean = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not clean:
        raise ValueError("no finite values to average")
    n = len(clean)
    mean = statistics.fmean(clean)
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n, "std": None}
    std = statistics.stdev(clean)
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n, "std": std}


def difference(a: Sequence[float], b: Sequence[float]) -> Difference:
    """Mean of `a` minus mean of `b` with Welch's 95 % interval (unequal variances: the two
    are different networks, so their seeds are not paired)."""
    xa = [float(v) for v in a if v is not None and math.isfinite(v)]
    xb = [float(v) for v in b if v is not None and math.isfinite(v)]
    if not xa or not xb:
        raise ValueError("no finite values to compare")
    diff = statistics.fmean(xa) - statistics.fmean(xb)
    if len(xa) < 2 or len(xb) < 2:
        return {"diff": diff, "low": None, "high": None, "tied": True}
    va, vb = statistics.variance(xa) / len(xa), statistics.variance(xb) / len(xb)
    se = math.sqrt(va + vb)
    if se == 0:  # every seed gave the same figure on both sides
        return {"diff": diff, "low": diff, "high": diff, "tied": diff == 0}
    df = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
    half = t_quantile(df) * se
    low, high = diff - half, diff + half
    return {"diff": diff, "low": low, "high": high, "tied": low <= 0 <= high}
