"""A fake CIFAR-10 in the real on-disk format, so tests exercise torchvision's own reader.

The files are the `cifar-10-batches-py` pickles torchvision expects (five training batches, one
test batch, `batches.meta`), filled with random pixels. torchvision checks each file's md5
against the real dataset's, so tests swap in ours with `use_fake_cifar_md5s(monkeypatch, md5s)`.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

CIFAR_FOLDER = "cifar-10-batches-py"
LABEL_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
TRAIN_BATCHES = 5
IMAGE_BYTES = 3 * 32 * 32  # each row of "data" is one image, channel-major: R plane, G, B


@dataclass(frozen=True)
class FakeCifar:
    train_x: np.ndarray  # uint8 (N, 3, 32, 32), in file order
    train_y: np.ndarray  # int64 (N,)
    test_x: np.ndarray  # uint8 (M, 3, 32, 32)
    test_y: np.ndarray  # int64 (M,)
    md5s: dict[str, str]  # file name -> md5, for torchvision's integrity check


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_batch(path: Path, x: np.ndarray, y: np.ndarray, label: str) -> None:
    # str keys: the real files are Python 2 pickles whose str keys torchvision reads back (with
    # encoding="latin1") as str, and it looks up entry["data"]; bytes keys would be a KeyError.
    batch = {
        "batch_label": label,
        "labels": [int(v) for v in y],
        "data": x.reshape(len(x), IMAGE_BYTES),  # (N, 3072) uint8
        "filenames": [f"img_{i:05d}.png" for i in range(len(x))],
    }
    with path.open("wb") as f:
        pickle.dump(batch, f, protocol=2)


def write_fake_cifar10(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> FakeCifar:
    """Write `root/cifar-10-batches-py/` with random images; returns the pixels and the md5s."""
    rng = np.random.default_rng(seed)
    folder = root / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    train_x = rng.integers(0, 256, size=(n_train, 3, 32, 32), dtype=np.uint8)
    train_y = rng.integers(0, len(LABEL_NAMES), size=n_train).astype(np.int64)
    test_x = rng.integers(0, 256, size=(n_test, 3, 32, 32), dtype=np.uint8)
    test_y = rng.integers(0, len(LABEL_NAMES), size=n_test).astype(np.int64)

    bounds = np.linspace(0, n_train, TRAIN_BATCHES + 1).astype(int)
    for i in range(TRAIN_BATCHES):
        lo, hi = bounds[i], bounds[i + 1]
        _write_batch(
            folder / f"data_batch_{i + 1}",
            train_x[lo:hi],
            train_y[lo:hi],
            f"training batch {i + 1} of 5",
        )
    _write_batch(folder / "test_batch", test_x, test_y, "testing batch 1 of 1")
    meta = {
        "num_cases_per_batch": int(bounds[1]),
        "label_names": list(LABEL_NAMES),
        "num_vis": IMAGE_BYTES,
    }
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump(meta, f, protocol=2)

    md5s = {p.name: _md5(p) for p in sorted(folder.iterdir())}
    return FakeCifar(train_x, train_y, test_x, test_y, md5s)


def use_fake_cifar_md5s(monkeypatch: pytest.MonkeyPatch, md5s: dict[str, str]) -> None:
    """Make torchvision's CIFAR10 accept the fake files' md5s (for this test only)."""
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(
        CIFAR10, "train_list", [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
    meta = {**CIFAR10.meta, "md5": md5s["batches.meta"]}
    monkeypatch.setattr(CIFAR10, "meta", meta)
