"""torchvision's MNIST, Fashion-MNIST, CIFAR-100 and SVHN in their real on-disk formats, a few
dozen random images each, so that tests run torchvision's own readers without a download.

- MNIST, Fashion-MNIST: the four idx files (big-endian header, then uint8) in <name>/raw/;
- CIFAR-100: the `cifar-100-python/` pickles (train, test, meta with 100 fine label names);
- SVHN: MATLAB files with X (32, 32, 3, N) and y (N, 1), digit 0 stored as label 10.

torchvision checks CIFAR-100's and SVHN's files against the real datasets' md5s:
`accept_fake_md5s(monkeypatch, fake)` swaps in ours for one test (in-process only).
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

DATASETS = ("mnist", "fashion_mnist", "cifar100", "svhn")
SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar100": (3, 32, 32),
          "svhn": (3, 32, 32)}  # fmt: skip
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar100": 100, "svhn": 10}


@dataclass(frozen=True)
class FakeSet:
    name: str
    train_x: np.ndarray  # uint8 (N, C, H, W), as the tuner should read it back
    train_y: np.ndarray  # int64, 0-based
    test_x: np.ndarray
    test_y: np.ndarray
    md5s: dict[str, str] = field(default_factory=dict)  # file name -> md5 (cifar100, svhn)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_idx(path: Path, array: np.ndarray) -> None:
    # Magic: two zero bytes, the type (0x08: uint8), the number of dimensions; then each size.
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fake(
    name: str, root: Path, n_train: int = 48, n_test: int = 16, seed: int = 0
) -> FakeSet:
    """Write `name` under `root` in torchvision's layout; return what the tuner should read."""
    rng = np.random.default_rng(seed)
    c, h, w = SHAPES[name]
    k = NUM_CLASSES[name]
    train_x = rng.integers(0, 256, size=(n_train, c, h, w), dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(n_test, c, h, w), dtype=np.uint8)
    train_y = rng.integers(0, k, size=n_train).astype(np.int64)
    test_y = rng.integers(0, k, size=n_test).astype(np.int64)
    train_y[:k] = np.arange(k) if k <= n_train else train_y[:k]  # every class in train
    md5s: dict[str, str] = {}
    if name in ("mnist", "fashion_mnist"):
        raw = root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for prefix, x, y in (("train", train_x, train_y), ("t10k", test_x, test_y)):
            _write_idx(raw / f"{prefix}-images-idx3-ubyte", x[:, 0])
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8))
    elif name == "cifar100":
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        for part, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
            batch = {"data": x.reshape(len(x), -1), "fine_labels": [int(v) for v in y],
                     "coarse_labels": [int(v) // 5 for v in y],
                     "filenames": [f"{part}_{i}.png" for i in range(len(x))]}  # fmt: skip
            with (folder / part).open("wb") as f:
                pickle.dump(batch, f, protocol=2)
        meta = {"fine_label_names": [f"fine_{i:02d}" for i in range(100)],
                "coarse_label_names": [f"coarse_{i:02d}" for i in range(20)]}  # fmt: skip
        with (folder / "meta").open("wb") as f:
            pickle.dump(meta, f, protocol=2)
        md5s = {p.name: _md5(p) for p in folder.iterdir()}
    elif name == "svhn":
        from scipy.io import savemat

        root.mkdir(parents=True, exist_ok=True)
        for part, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
            labels = np.where(y == 0, 10, y).astype(np.uint8)[:, None]  # SVHN stores 0 as 10
            path = root / f"{part}_32x32.mat"
            savemat(path, {"X": x.transpose(2, 3, 1, 0), "y": labels})  # (H, W, C, N)
            md5s[path.name] = _md5(path)
    else:
        raise ValueError(name)
    return FakeSet(name, train_x, train_y, test_x, test_y, md5s)


def accept_fake_md5s(monkeypatch: pytest.MonkeyPatch, fake: FakeSet) -> None:
    """torchvision's integrity checks take the fake files' md5s, for this test only."""
    from torchvision.datasets import CIFAR100, SVHN

    if fake.name == "cifar100":
        monkeypatch.setattr(CIFAR100, "train_list", [["train", fake.md5s["train"]]])
        monkeypatch.setattr(CIFAR100, "test_list", [["test", fake.md5s["test"]]])
        monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": fake.md5s["meta"]})
    elif fake.name == "svhn":
        split_list = {k: list(v) for k, v in SVHN.split_list.items()}
        for part in ("train", "test"):
            split_list[part][2] = fake.md5s[f"{part}_32x32.mat"]
        monkeypatch.setattr(SVHN, "split_list", split_list)
