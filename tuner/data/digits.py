"""scikit-learn's 8x8 handwritten digits (1,797 images that ship with the package: no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuner.data.cache import _cache_roots, _cached
from tuner.data.splits import DIGITS_TEST_FRACTION, Progress, _Decoded, _split_off_test


def _decode_digits() -> _Decoded:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Values are 0..16; scale to the 0..255 range every other dataset uses.
    x = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    y = digits.target.astype(np.int64)
    trainval, test = _split_off_test(x, y, DIGITS_TEST_FRACTION)
    classes = tuple(str(int(c)) for c in digits.target_names)
    return _Decoded(trainval=trainval, test=test, classes=classes, source="sklearn digits")


def _load_digits(data_dir: Path, progress: Progress | None) -> _Decoded:
    import importlib.metadata

    # The installed version, without importing scikit-learn (0.75 s) when the cache is warm.
    fingerprint = {"sklearn": importlib.metadata.version("scikit-learn")}
    return _cached("digits", fingerprint, _cache_roots(data_dir), _decode_digits, progress)
