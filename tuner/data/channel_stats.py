"""Per-channel mean and standard deviation of a split's images, for normalisation.

numpy, not torch: the driver computes them once per search (tuner.train.trial_data) and never
imports torch (tuner/stages/torch_work.py).
"""

from __future__ import annotations

import numpy as np

# Images worked through at a time: ~25 MB of float64 for CIFAR-10.
STATS_CHUNK = 1024


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of uint8 (N, C, H, W) images, in [0, 1] units."""
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {tuple(x.shape)}")
    channels = x.shape[1]
    total = np.zeros(channels, dtype=np.float64)
    total_sq = np.zeros(channels, dtype=np.float64)
    # float64 sums of integers are exact here (at most 255^2 * 1e8 < 2^53), so the chunks'
    # order changes nothing; the chunks bound the float copy.
    for start in range(0, x.shape[0], STATS_CHUNK):
        chunk = np.asarray(x[start : start + STATS_CHUNK], dtype=np.float64)  # (n, C, H, W)
        total += chunk.sum(axis=(0, 2, 3))
        total_sq += np.square(chunk).sum(axis=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = np.sqrt(np.clip(total_sq / count - np.square(mean), 0, None))
    return tuple((mean / 255).tolist()), tuple((std / 255).tolist())
