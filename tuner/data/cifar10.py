"""CIFAR-10 from torchvision's files (`cifar-10-batches-py/` under --data-dir), downloaded there
when missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tuner.data.cache import _cached_download
from tuner.data.download import _CIFAR_FAILURES, DOWNLOAD_TIMEOUT_S, _socket_timeout
from tuner.data.splits import Progress, Split, _Decoded, _one_line
from tuner.errors import DataError

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "batches.meta",
)


def _cifar_fingerprint(root: Path) -> list[list[Any]] | None:
    """Size and mtime of each CIFAR file; None while any is missing."""
    folder = root / CIFAR_FOLDER
    try:
        stats = [(name, (folder / name).stat()) for name in CIFAR_FILES]
    except OSError:
        return None
    return [[name, st.st_size, st.st_mtime_ns] for name, st in stats]


def _cifar_missing(root: Path, reason: str, *, tried_download: bool) -> DataError:
    what = "could not be downloaded" if tried_download else "downloading is off"
    return DataError(
        f"CIFAR-10 is not in --data-dir {root} and {what} ({reason}); "
        f"put {CIFAR_FOLDER} there, or use --dataset imagefolder --data-dir DIR, "
        "or --dataset digits"
    )


def _decode_cifar(root: Path, download: bool, progress: Progress | None) -> _Decoded:
    from torchvision.datasets import CIFAR10

    def read() -> tuple[Any, Any]:
        return CIFAR10(root=root, train=True, download=False), CIFAR10(
            root=root, train=False, download=False
        )

    try:
        train, test = read()
    except _CIFAR_FAILURES as first:
        if not download:
            raise _cifar_missing(root, _one_line(first), tried_download=False) from first
        if progress:
            progress(f"CIFAR-10 not found in {root}; downloading it (170 MB)")
        try:
            with _socket_timeout(DOWNLOAD_TIMEOUT_S):
                CIFAR10(root=root, train=True, download=True)
            train, test = read()
        except _CIFAR_FAILURES as exc:
            raise _cifar_missing(root, _one_line(exc), tried_download=True) from exc
    if progress:
        progress(f"read CIFAR-10 from {root / CIFAR_FOLDER}")

    def to_split(ds: Any) -> Split:
        x = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        return Split(x, np.asarray(ds.targets, dtype=np.int64))

    # No shuffling: the CIFAR files are already shuffled, and the lab's 49,000 / 1,000 split
    # takes the first images as train and the last as val.
    return _Decoded(
        trainval=to_split(train),
        test=to_split(test),
        classes=tuple(train.classes),
        source=str(root / CIFAR_FOLDER),
    )


def _load_cifar(root: Path, download: bool, progress: Progress | None) -> _Decoded:
    return _cached_download(
        "cifar10",
        root,
        lambda: _cifar_fingerprint(root),
        lambda: _decode_cifar(root, download, progress),
        progress,
    )
