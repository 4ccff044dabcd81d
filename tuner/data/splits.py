"""What every dataset becomes: uint8 train / val / test splits (Split, DatasetBundle), and the
fixed rules that cut them (seed 0, whatever the search's seed, so every search and every trial
sees the same images and their scores can be compared)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from tuner.errors import DataError

# Fixed split seed: independent of the search seed so every search sees the same split.
SPLIT_SEED = 0
# Exact fractions (not floats) so `ceil` never rounds 12.000000000000002 up to 13.
DIGITS_TEST_FRACTION = Fraction(1, 5)
# CIFAR-10's own ratio: 10,000 test images for 50,000 training images.
IMAGEFOLDER_TEST_FRACTION = Fraction(1, 6)
# The lab's split: 1,000 validation images out of CIFAR-10's 50,000.
VAL_FRACTION = 0.02
# Fewer than ~20 images per class makes per-trial val accuracy too noisy to rank trials.
MIN_VAL_PER_CLASS = 20
# A classifier of one class scores 100 % on anything: an image folder needs at least two.
MIN_CLASSES = 2

PROGRESS_EVERY = 10_000
MAX_REASON_CHARS = 160

Progress = Callable[[str], None]
Sample = tuple[str, int]  # (image path, class index), as torchvision's make_dataset lists them


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # uint8 (N, C, H, W), C-contiguous
    y: np.ndarray  # int64 (N,)

    def __post_init__(self) -> None:
        if self.x.dtype != np.uint8 or self.x.ndim != 4:
            raise ValueError(
                f"Split.x must be uint8 (N, C, H, W), got {self.x.dtype} {self.x.shape}"
            )
        if self.y.dtype != np.int64 or self.y.shape != (self.x.shape[0],):
            raise ValueError(f"Split.y must be int64 (N,), got {self.y.dtype} {self.y.shape}")


@dataclass(frozen=True)
class DatasetBundle:
    name: str  # "digits" | "cifar10" | "imagefolder"
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    source: str  # where it came from (path or "sklearn digits"), for provenance
    cache: CacheRef | None = None  # where the decoded arrays are stored, if they were cached

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        _, c, h, w = self.train.x.shape
        return (c, h, w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class CacheRef:
    """A cached dataset by location: what a trial on another node needs to open it itself.

    Small enough to send to every trial in place of the arrays. The fingerprint makes a node
    refuse a cache that differs from the one the driver loaded.
    """

    cache_dir: str
    fingerprint: Any
    val_count: int


@dataclass(frozen=True)
class _Decoded:
    """What the cache holds: train+val together (val is cut on load), plus the test split."""

    trainval: Split
    test: Split
    classes: tuple[str, ...]
    source: str
    cache_dir: Path | None = None  # set when these arrays are (now) in the cache
    fingerprint: Any = None


def default_val_count(n_trainval: int, num_classes: int) -> int:
    """The lab's 2% (1,000 of CIFAR-10's 50,000), at least 20 per class, at most a quarter."""
    wanted = max(round(n_trainval * VAL_FRACTION), MIN_VAL_PER_CLASS * num_classes)
    return min(n_trainval // 4, wanted)


def _one_line(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def _held_out_count(n: int, fraction: Fraction) -> int:
    # ceil, as scikit-learn's train_test_split does: digits gets 360 test images, not 359.
    return math.ceil(n * fraction)


def _split_off_test(x: np.ndarray, y: np.ndarray, fraction: Fraction) -> tuple[Split, Split]:
    """Hold out a fixed random `fraction` as test; the rest (also shuffled) is train+val."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    n_test = _held_out_count(len(y), fraction)
    test_idx, trainval_idx = order[:n_test], order[n_test:]
    return Split(x[trainval_idx], y[trainval_idx]), Split(x[test_idx], y[test_idx])


def _shuffled(split: Split) -> Split:
    # Image folders list files class by class; without this the val split would be the last
    # class or two.
    order = np.random.default_rng(SPLIT_SEED).permutation(len(split.y))
    return Split(split.x[order], split.y[order])


def _apply_val_split(name: str, decoded: _Decoded, val_count: int | None) -> DatasetBundle:
    trainval = decoded.trainval
    n = len(trainval.y)
    if val_count is None:
        val_count = default_val_count(n, len(decoded.classes))
    if not 0 < val_count < n:
        raise DataError(
            f"val count {val_count} must be between 1 and {n - 1} ({name} has {n} train+val images)"
        )
    n_train = n - val_count
    cache = None
    if decoded.cache_dir is not None:
        cache = CacheRef(str(decoded.cache_dir), decoded.fingerprint, val_count)
    # Slices of a C-contiguous array along axis 0 stay C-contiguous: no copies here.
    return DatasetBundle(
        name=name,
        classes=decoded.classes,
        train=Split(trainval.x[:n_train], trainval.y[:n_train]),
        val=Split(trainval.x[n_train:], trainval.y[n_train:]),
        test=decoded.test,
        source=decoded.source,
        cache=cache,
    )


def _root_hash(*parts: object) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:12]
