"""torchvision's own datasets (MNIST, Fashion-MNIST, CIFAR-100, SVHN), read by torchvision's
readers from `--data-dir` in torchvision's layout, downloaded there when missing, and cached
as uint8 arrays like CIFAR-10 (tuner/data/cifar10.py).

Layouts, as torchvision reads them under the root:
- mnist:          MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
- fashion_mnist:  FashionMNIST/raw/ (the same four files)
- cifar100:       cifar-100-python/{train,test,meta}
- svhn:           train_32x32.mat, test_32x32.mat (in the root itself, as torchvision keeps them)

None of these comes with a validation split: val is cut from the training split on load, the
official test split stays the held-out one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuner.data.cache import _cached_download
from tuner.data.download import _CIFAR_FAILURES, DOWNLOAD_TIMEOUT_S, _socket_timeout
from tuner.data.splits import Progress, Split, _Decoded, _one_line, _shuffled
from tuner.errors import DataError


@dataclass(frozen=True)
class _Source:
    """How torchvision names, places and sizes one dataset."""

    title: str  # for messages
    folder: str  # relative to the root ("" for SVHN, whose files lie in the root)
    files: tuple[str, ...]  # what must be there; their sizes and mtimes key the cache
    download_mb: int
    shuffle: bool  # MNIST's and SVHN's files are in writer / sequence order: shuffle before val


_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SOURCES = {
    "mnist": _Source("MNIST", "MNIST/raw", _MNIST_FILES, 12, shuffle=True),
    "fashion_mnist": _Source("Fashion-MNIST", "FashionMNIST/raw", _MNIST_FILES, 31, shuffle=True),
    # CIFAR-100's files are already shuffled, like CIFAR-10's: val is the last training images.
    "cifar100": _Source("CIFAR-100", "cifar-100-python", ("train", "test", "meta"), 169, False),
    "svhn": _Source("SVHN", "", ("train_32x32.mat", "test_32x32.mat"), 182, shuffle=True),
}


def _fingerprint(name: str, root: Path) -> list[list[Any]] | None:
    """Size and mtime of each file; None while any is missing."""
    source = SOURCES[name]
    folder = root / source.folder
    try:
        stats = [(f, (folder / f).stat()) for f in source.files]
    except OSError:
        return None
    return [[f, st.st_size, st.st_mtime_ns] for f, st in stats]


def _readers(name: str, root: Path, download: bool) -> tuple[Any, Any]:
    """(train, test) torchvision dataset objects."""
    from torchvision import datasets

    if name == "svhn":
        return (
            datasets.SVHN(root=str(root), split="train", download=download),
            datasets.SVHN(root=str(root), split="test", download=download),
        )
    cls = {
        "mnist": datasets.MNIST,
        "fashion_mnist": datasets.FashionMNIST,
        "cifar100": datasets.CIFAR100,
    }[name]
    return cls(root=str(root), train=True, download=download), cls(
        root=str(root), train=False, download=download
    )


def _to_split(name: str, ds: Any) -> Split:
    if name in ("mnist", "fashion_mnist"):
        x = ds.data.numpy()[:, None]  # (N, 28, 28) -> (N, 1, 28, 28)
        y = ds.targets.numpy()
    elif name == "cifar100":
        x = ds.data.transpose(0, 3, 1, 2)  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        y = ds.targets
    else:  # svhn: already (N, 3, 32, 32); torchvision maps the files' label 10 to digit 0
        x = ds.data
        y = ds.labels
    return Split(np.ascontiguousarray(x, dtype=np.uint8), np.asarray(y, dtype=np.int64))


def _classes(name: str, ds: Any) -> tuple[str, ...]:
    if name == "svhn":  # torchvision's SVHN has no class names: the labels are the digits
        return tuple(str(d) for d in range(10))
    return tuple(str(c) for c in ds.classes)


def _missing(name: str, root: Path, reason: str, *, tried_download: bool) -> DataError:
    source = SOURCES[name]
    what = "could not be downloaded" if tried_download else "downloading is off"
    where = root / source.folder if source.folder else root
    return DataError(
        f"{source.title} is not in --data-dir {root} and {what} ({reason}); put "
        f"{', '.join(source.files)} in {where}, or use --dataset imagefolder --data-dir DIR"
    )


def _decode(name: str, root: Path, download: bool, progress: Progress | None) -> _Decoded:
    source = SOURCES[name]
    try:
        train, test = _readers(name, root, download=False)
    except _CIFAR_FAILURES as first:
        if not download:
            raise _missing(name, root, _one_line(first), tried_download=False) from first
        if progress:
            progress(
                f"{source.title} not found in {root}; downloading it ({source.download_mb} MB)"
            )
        try:
            with _socket_timeout(DOWNLOAD_TIMEOUT_S):
                train, test = _readers(name, root, download=True)
        except _CIFAR_FAILURES as exc:
            raise _missing(name, root, _one_line(exc), tried_download=True) from exc
    if progress:
        progress(f"read {source.title} from {root / source.folder}")
    trainval, test_split = _to_split(name, train), _to_split(name, test)
    if source.shuffle:
        trainval = _shuffled(trainval)
    return _Decoded(
        trainval=trainval,
        test=test_split,
        classes=_classes(name, train),
        source=str(root / source.folder),
    )


def load_torchvision(name: str, root: Path, download: bool, progress: Progress | None) -> _Decoded:
    """`name`'s train+val and test splits, from the cache when its files have not changed."""
    return _cached_download(
        name,
        root,
        lambda: _fingerprint(name, root),
        lambda: _decode(name, root, download, progress),
        progress,
    )
