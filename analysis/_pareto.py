"""Pareto front of a trade-off: lower cost (parameters, seconds) and higher accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_mask(costs: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of (N, K) `costs` (every column to minimise) that no other row
    dominates: no worse in every column and strictly better in one. Rows with a NaN are never
    on the front; equal rows are both on it. N is small (a few hundred trials), so the N x N
    comparison is instant."""
    costs = np.asarray(costs, dtype=float)
    front = np.zeros(len(costs), dtype=bool)
    idx = np.flatnonzero(np.isfinite(costs).all(axis=1)) if costs.size else np.array([], int)
    if idx.size == 0:
        return front
    c = costs[idx]
    no_worse = (c[None, :, :] <= c[:, None, :]).all(axis=2)  # [i, j]: j no worse than i
    better = (c[None, :, :] < c[:, None, :]).any(axis=2)
    front[idx[~(no_worse & better).any(axis=1)]] = True
    return front


def pareto_front(cost: Sequence[float], value: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points no other point dominates (lower cost, higher value)."""
    c = np.asarray(cost, dtype=float)
    v = np.asarray(value, dtype=float)
    return pareto_mask(np.stack([c, -v], axis=1)) if len(c) else np.zeros(0, dtype=bool)
