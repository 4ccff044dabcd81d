"""Means over seeds with their 95 % confidence intervals, and the interval of a difference of
two means (Welch), as best.json, confirm.csv, `tuner train`, the terminal summary and the
report give them. One implementation: the driver (tuner.driver) and the report (analysis/,
which must not import Ray) both call these.

Accuracies (accuracy_interval): a Student-t interval on the logit of the per-seed accuracies,
mapped back. Each accuracy is first moved off 0 and 1 by half an image (0.5 / images), so that a
seed at 100 % has a finite logit. The interval therefore always lies inside [0, 1] (a plain
mean +- t * s / sqrt(n) gave 98.3 % to 100.7 % for seeds at 100, 100, 98, 99, 100 %), and it
is asymmetric near the ends, as an accuracy's uncertainty is. The mean stays the plain mean of
the seeds (what names the winner); in the rare case the mapped-back interval misses it, the
interval is widened to include it.

Losses and other non-negative figures (mean_interval): the plain t interval, cut at 0.

Differences of accuracies (difference): Welch's interval (the two are different networks, so
their seeds are not paired), cut to the possible range [-1, +1]. Below MIN_SEEDS seeds on
either side no verdict is drawn ("too few seeds"): with 2 seeds the t quantile is 12.7 and the
spread is estimated from one degree of freedom, so an interval that covers 0 says nothing, and
calling the two "tied" would be a claim the data cannot make. With 3 seeds the t quantile is
4.30 (df 2): the intervals are wide on purpose. A search's best validation figure is the best
of many noisy runs; only the spread over fresh seeds says whether one configuration is really
better than another.

Standard library only (the t quantile from scipy when it is there: scikit-learn, a dependency,
brings it; else a table good to 3 decimals).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

CONFIDENCE = 0.95
MIN_SEEDS = 3  # seeds on each side before a difference is called better, worse or tied
DEFAULT_IMAGES = 1000  # the split's size when a caller does not know it (clipping only)

LOGIT_T = "t on logit"  # Interval["method"]: accuracies
PLAIN_T = "t"  # losses

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
    method: str  # LOGIT_T or PLAIN_T
    images: int | None  # accuracies: the split's size the clipping used


Call = Literal["better", "worse", "tied", "too few seeds"]


class Difference(TypedDict):
    diff: float  # mean of a - mean of b
    low: float | None  # None below 2 seeds on a side; else within [-1, 1]
    high: float | None
    tied: bool  # enough seeds, and the interval covers 0
    seeds: list[int]  # [seeds of a, seeds of b]
    call: Call  # "too few seeds" below MIN_SEEDS on either side


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _expit(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def accuracy_interval(values: Sequence[float | None], images: int | None = None) -> Interval:
    """Mean accuracy over seeds and its 95 % interval inside [0, 1]: Student t (n - 1 df) on
    the logit of each seed's accuracy, moved off 0 and 1 by half an image (0.5 / images;
    DEFAULT_IMAGES when unknown), mapped back with the logistic function."""
    clean = _finite(values)
    if not clean:
        raise ValueError("no finite values to average")
    n, mean = len(clean), statistics.fmean(clean)
    size = int(images) if images else None
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n, "std": None,
                "method": LOGIT_T, "images": size}  # fmt: skip
    eps = 0.5 / (size or DEFAULT_IMAGES)
    logits = [math.log(p / (1 - p)) for p in (min(max(v, eps), 1 - eps) for v in clean)]
    centre = statistics.fmean(logits)
    half = t_quantile(n - 1) * statistics.stdev(logits) / math.sqrt(n)
    low, high = _expit(centre - half), _expit(centre + half)
    low, high = max(0.0, min(low, mean)), min(1.0, max(high, mean))
    return {"mean": mean, "low": low, "high": high, "n": n, "std": statistics.stdev(clean),
            "method": LOGIT_T, "images": size}  # fmt: skip


def mean_interval(values: Sequence[float | None], floor: float | None = 0.0) -> Interval:
    """Mean and its plain 95 % t interval, mean +- t(n-1) * s / sqrt(n), cut at `floor` (0: a
    loss is never negative; None: no cut). Accuracies: accuracy_interval."""
    clean = _finite(values)
    if not clean:
        raise ValueError("no finite values to average")
    n, mean = len(clean), statistics.fmean(clean)
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n, "std": None,
                "method": PLAIN_T, "images": None}  # fmt: skip
    std = statistics.stdev(clean)
    half = t_quantile(n - 1) * std / math.sqrt(n)
    low = mean - half if floor is None else max(floor, mean - half)
    return {"mean": mean, "low": low, "high": mean + half, "n": n, "std": std,
            "method": PLAIN_T, "images": None}  # fmt: skip


def difference(a: Sequence[float | None], b: Sequence[float | None]) -> Difference:
    """Mean accuracy of `a` minus that of `b` with Welch's 95 % interval (unequal variances:
    the two are different networks, so their seeds are not paired), cut to [-1, 1], and the
    call: better, worse or tied (the interval covers 0), or "too few seeds" when either side
    has fewer than MIN_SEEDS."""
    xa, xb = _finite(a), _finite(b)
    if not xa or not xb:
        raise ValueError("no finite values to compare")
    diff = statistics.fmean(xa) - statistics.fmean(xb)
    seeds = [len(xa), len(xb)]
    low: float | None
    high: float | None
    if min(seeds) < 2:
        low = high = None
    else:
        va, vb = statistics.variance(xa) / len(xa), statistics.variance(xb) / len(xb)
        se = math.sqrt(va + vb)
        if se == 0:  # every seed gave the same figure on both sides
            low = high = diff
        else:
            df = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
            half = t_quantile(df) * se
            low, high = max(-1.0, diff - half), min(1.0, diff + half)
    call: Call
    if min(seeds) < MIN_SEEDS or low is None or high is None:
        call = "too few seeds"
    elif low <= 0 <= high:
        call = "tied"
    else:
        call = "better" if diff > 0 else "worse"
    return {"diff": diff, "low": low, "high": high, "tied": call == "tied", "seeds": seeds,
            "call": call}  # fmt: skip


def describe(interval: Mapping[str, Any]) -> str:
    """The method, as the report and the terminal name it: "95 % t interval on the logit
    over 5 seeds"."""
    n = interval.get("n")
    over = f" over {n} seed{'s' if n != 1 else ''}" if n else ""
    if interval.get("method") == LOGIT_T:
        return f"95 % t interval on the logit{over}"
    return f"95 % t interval{over}"


def seeds_text(diff: Mapping[str, Any]) -> str:
    """How many seeds a difference compares: "2 seeds", or "3 and 2 seeds"."""
    seeds = diff.get("seeds") or []
    if len(seeds) != 2:
        return "these seeds"
    return f"{seeds[0]} seeds" if seeds[0] == seeds[1] else f"{seeds[0]} and {seeds[1]} seeds"


def versus(name: str, diff: Mapping[str, Any]) -> str:
    """One clause of the confirm stage's verdict (after "it "): how the winner compares with
    `name` on validation."""
    points = f"{100 * diff['diff']:+.1f} points"
    call = diff.get("call") or ("tied" if diff.get("tied") else None)
    if call == "too few seeds" or diff.get("low") is None:
        return (f"is {points} over {name} on {seeds_text(diff)}; too few seeds to tell them "
                f"apart (a verdict needs at least {MIN_SEEDS} on each side)")  # fmt: skip
    span = f"{points}, 95 % CI {100 * diff['low']:+.1f} to {100 * diff['high']:+.1f}, Welch"
    if call == "tied":
        return f"is tied with {name} at these seeds ({span})"
    word = "better" if diff["diff"] > 0 else "worse"
    return f"is {word} than {name} ({span})"


def verdict_clauses(
    vs_runner_up: Mapping[str, Any] | None, vs_baseline: Mapping[str, Any] | None
) -> str:
    """What the confirm stage's verdict says after its first clause: "; it is tied with trial
    5 at these seeds (...), and is better than the lab's baseline (...)", or "" with neither.
    Each argument: {"trial_index", "val": Difference}."""
    clauses = []
    if vs_runner_up:
        clauses.append(versus(f"trial {vs_runner_up['trial_index']}", vs_runner_up["val"]))
    if vs_baseline:
        clauses.append(versus("the lab's baseline", vs_baseline["val"]))
    return "; it " + ", and ".join(clauses) if clauses else ""
