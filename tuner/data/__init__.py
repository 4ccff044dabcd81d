"""Image datasets, decoded once into uint8 arrays and cached on disk. May import numpy, PIL and
tuner.io; torchvision only inside the readers that need it (its datasets, image folders).

Every dataset comes back as a `DatasetBundle`: uint8 (N, C, H, W) images and int64 labels for
train, val and test. Decoding (PIL for image folders, pickle for CIFAR-10) runs once per dataset;
the result is cached under `<data_dir>/tuner-cache/<key>/` as plain .npy files, so every later
search, and every Ray worker, starts from a fast `np.load` (about 0.1 s for CIFAR-10's 50,000
images against about 6 s to decode its JPEGs on 2 cores).

Splits are fixed by seed 0, independent of any search seed, so every search and every trial
sees the same train / val / test images and their scores can be compared.

One module per source (digits.py, cifar10.py, torchvision_sets.py, imagefolder.py), what they
share in splits.py (the arrays and the split rules), cache.py (the decoded-arrays cache) and
download.py; this face file holds the list of datasets and `load_dataset`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tuner.data.cache import (
    CACHE_DIRNAME,
    CACHE_FILES,
    CACHE_FORMAT_VERSION,
    default_data_dir,
    open_cached,
)
from tuner.data.imagefolder import GRAY_MODES, _resize_shorter_and_crop, check_image_folder
from tuner.data.splits import (
    CacheRef,
    DatasetBundle,
    Split,
    _apply_val_split,
    default_val_count,
)
from tuner.errors import DataError

__all__ = [
    "CACHE_DIRNAME", "CACHE_FILES", "CACHE_FORMAT_VERSION", "DATASETS", "GRAY_MODES",
    "MIRROR_SENSITIVE", "TORCHVISION_DATASETS", "CacheRef", "DataError", "DatasetBundle",
    "Split", "_resize_shorter_and_crop", "check_image_folder", "default_data_dir",
    "default_val_count", "load_dataset", "open_cached",
]  # fmt: skip

# torchvision's own, read by its readers and cached like CIFAR-10 (tuner/data/torchvision_sets.py)
TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "cifar100", "svhn")
DATASETS = ("digits", "cifar10", *TORCHVISION_DATASETS, "imagefolder")
# Digits and house numbers: a mirrored image is another glyph, so no horizontal flips.
MIRROR_SENSITIVE = frozenset({"digits", "mnist", "svhn"})


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    val_count: int | None = None,
    image_size: int | None = None,
    download: bool = True,
    progress: Callable[[str], None] | None = None,
    decode_workers: int | None = None,
) -> DatasetBundle:
    """Load `name` as uint8 train / val / test splits, decoding it only the first time.

    data_dir: the torchvision root (holding cifar-10-batches-py, MNIST/raw, ...) or the
        image-folder root; default
        `default_data_dir()`. Required for imagefolder.
    val_count: validation images cut from train+val; default `default_val_count`.
    image_size: imagefolder only: resize the shorter side and center-crop to this square size.
    download: torchvision's datasets: fetch the official files when they are not in data_dir.
    progress: called with one-line status messages (decoding, caching, downloading).
    decode_workers: imagefolder: processes that decode the files (default: every core).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if image_size is not None and name != "imagefolder":
        raise DataError("--image-size applies only to --dataset imagefolder")
    if image_size is not None and image_size < 1:
        raise DataError(f"--image-size must be a positive number of pixels, got {image_size}")
    if name == "imagefolder" and data_dir is None:
        raise DataError("--dataset imagefolder needs --data-dir DIR (a folder of class folders)")
    root = Path(data_dir).expanduser().absolute() if data_dir is not None else default_data_dir()

    if name == "digits":
        from tuner.data.digits import _load_digits

        decoded = _load_digits(root, progress)
    elif name == "cifar10":
        from tuner.data.cifar10 import _load_cifar

        decoded = _load_cifar(root, download, progress)
    elif name in TORCHVISION_DATASETS:
        from tuner.data.torchvision_sets import load_torchvision

        decoded = load_torchvision(name, root, download, progress)
    else:
        from tuner.data.imagefolder import _load_imagefolder

        workers = decode_workers if decode_workers is not None else (os.cpu_count() or 1)
        decoded = _load_imagefolder(root, image_size, progress, workers=max(1, workers))
    return _apply_val_split(name, decoded, val_count)
