"""Pareto front of a trade-off: lower cost (parameters, seconds) and higher accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_front(cost: Sequence[float], value: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points no other point dominates.

    A point is dominated when another costs no more and scores no less, and is strictly better
    in one of the two. Points with a missing (NaN) cost or value are never on the front; equal
    points are both on it.
    """
    c = np.asarray(cost, dtype=float)
    v = np.asarray(value, dtype=float)
    ok = np.isfinite(c) & np.isfinite(v)
    front = np.zeros(len(c), dtype=bool)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return front
    cc, vv = c[idx], v[idx]
    # dominated[i] = any j with cc[j] <= cc[i], vv[j] >= vv[i], and one strictly (n is small:
    # a few hundred trials, so the n x n comparison is instant).
    no_worse = (cc[None, :] <= cc[:, None]) & (vv[None, :] >= vv[:, None])
    better = (cc[None, :] < cc[:, None]) | (vv[None, :] > vv[:, None])
    dominated = (no_worse & better).any(axis=1)
    front[idx[~dominated]] = True
    return front
