"""Image datasets, decoded once into uint8 arrays and cached on disk. May import numpy, PIL and
tuner.io; torchvision only inside the readers that need it (its datasets, image folders).

Every dataset comes back as a `DatasetBundle`: uint8 (N, C, H, W) images and int64 labels for
train, val and test. Decoding (PIL for image folders, pickle for CIFAR-10) runs once per dataset;
the result is cached under `<data_dir>/tuner-cache/<key>/` as plain .npy files, so every later
search, and every Ray worker, starts from a fast `np.load` (about 0.1 s for CIFAR-10's 50,000
images against about 6 s to decode its JPEGs on 2 cores).

Splits are fixed by seed 0, independent of any search seed, so every search and every trial
sees the same train / val / test images and their scores can be compared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import pickle
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from tuner.errors import DataError

# torchvision's own, read by its readers and cached like CIFAR-10 (tuner/data/torchvision_sets.py)
TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "cifar100", "svhn")
DATASETS = ("digits", "cifar10", *TORCHVISION_DATASETS, "imagefolder")
# Digits and house numbers: a mirrored image is another glyph, so no horizontal flips.
MIRROR_SENSITIVE = frozenset({"digits", "mnist", "svhn"})

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

CACHE_DIRNAME = "tuner-cache"
# Bump when the cached arrays' meaning changes (scaling, split rule) so old caches are rebuilt.
CACHE_FORMAT_VERSION = 1
CACHE_FILES = ("train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy", "meta.json")

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
# urllib waits forever by default; behind a firewall that drops packets a download attempt
# would hang the CLI instead of failing with the "put the files there" message.
DOWNLOAD_TIMEOUT_S = 30.0
# What torchvision raises for missing, corrupt or unreachable files (URLError is an OSError).
_CIFAR_FAILURES = (
    OSError,
    RuntimeError,
    ValueError,
    EOFError,
    pickle.UnpicklingError,
    tarfile.TarError,
)

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


# ---------------------------------------------------------------------------------------------
# Small helpers


def default_data_dir() -> Path:
    """$TUNER_DATA_DIR, else ~/.cache/cnn-tuner."""
    env = os.environ.get("TUNER_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cnn-tuner"


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


# ---------------------------------------------------------------------------------------------
# Cache: <cache_root>/<key>/{train_x,train_y,test_x,test_y}.npy + meta.json


def _read_cache(cache_dir: Path, fingerprint: Any, *, mmap: bool = False) -> _Decoded | None:
    """The cached arrays if they exist and match `fingerprint`, else None (a miss, never raises).

    mmap: map the files copy-on-write instead of reading them, so trials on one node share the
    page cache's single copy until they move the arrays to their device.
    """
    try:
        meta = json.loads((cache_dir / "meta.json").read_text())
        if meta.get("format_version") != CACHE_FORMAT_VERSION or meta.get("fingerprint") != (
            json.loads(json.dumps(fingerprint))  # compare in JSON form: tuples come back as lists
        ):
            return None
        arrays = {
            stem: np.load(
                cache_dir / f"{stem}.npy", allow_pickle=False, mmap_mode="c" if mmap else None
            )
            for stem in ("train_x", "train_y", "test_x", "test_y")
        }
        return _Decoded(
            trainval=Split(arrays["train_x"], arrays["train_y"]),
            test=Split(arrays["test_x"], arrays["test_y"]),
            classes=tuple(meta["classes"]),
            source=str(meta["source"]),
            cache_dir=cache_dir,
            fingerprint=fingerprint,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # Missing, truncated or foreign files are a cache miss: decode again and overwrite.
        return None


def _write_cache(cache_dir: Path, decoded: _Decoded, fingerprint: Any) -> None:
    """Write into a temp dir next to `cache_dir`, then rename it into place.

    A crash or Ctrl-C mid-write leaves at most a hidden temp dir that is removed on the way out,
    never a half-written cache that a later run would trust.
    """
    from tuner.io import dir_mode

    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.tmp-", dir=cache_dir.parent))
    try:
        tmp.chmod(dir_mode())  # mkdtemp makes it private: give it what mkdir would have
        np.save(tmp / "train_x.npy", decoded.trainval.x, allow_pickle=False)
        np.save(tmp / "train_y.npy", decoded.trainval.y, allow_pickle=False)
        np.save(tmp / "test_x.npy", decoded.test.x, allow_pickle=False)
        np.save(tmp / "test_y.npy", decoded.test.y, allow_pickle=False)
        meta = {
            "format_version": CACHE_FORMAT_VERSION,
            "classes": list(decoded.classes),
            "source": decoded.source,
            "fingerprint": fingerprint,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if cache_dir.exists():
            # rename() cannot replace a non-empty directory: move the stale one aside first.
            stale = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.old-", dir=cache_dir.parent))
            os.replace(cache_dir, stale / "cache")
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, cache_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cache_roots(preferred: Path) -> list[Path]:
    """Where to look for / put a cache: next to the data, else the user's default data dir."""
    roots = [preferred / CACHE_DIRNAME]
    fallback = default_data_dir() / CACHE_DIRNAME
    if fallback.resolve() != roots[0].resolve():
        roots.append(fallback)
    return roots


def _cached(
    key: str,
    fingerprint: Any,
    cache_roots: list[Path],
    decode: Callable[[], _Decoded],
    progress: Progress | None,
) -> _Decoded:
    for root in cache_roots:
        hit = _read_cache(root / key, fingerprint)
        if hit is not None:
            if progress:
                progress(f"loaded {key} from cache {root / key}")
            return hit
    decoded = decode()
    for root in cache_roots:
        try:
            _write_cache(root / key, decoded, fingerprint)
        except OSError:
            continue  # read-only or full: try the next place, and run uncached if none works
        if progress:
            progress(f"cached {key} in {root / key}")
        return dataclasses.replace(decoded, cache_dir=root / key, fingerprint=fingerprint)
    return decoded


# ---------------------------------------------------------------------------------------------
# digits


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


# ---------------------------------------------------------------------------------------------
# cifar10


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


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


def _cached_download(
    name: str,
    root: Path,
    fingerprint: Callable[[], Any],
    decode: Callable[[], _Decoded],
    progress: Progress | None,
) -> _Decoded:
    """A dataset torchvision reads from files under `root` (downloading them if need be): from
    the cache while `fingerprint()` (the files' sizes and mtimes, None while any is missing)
    matches, else decoded and cached."""
    key = f"{name}-{_root_hash(root)}"
    roots = _cache_roots(root)
    before = fingerprint()
    if before is not None:
        for cache_root in roots:
            hit = _read_cache(cache_root / key, before)
            if hit is not None:
                if progress:
                    progress(f"loaded {name} from cache {cache_root / key}")
                return hit
    decoded = decode()
    # A download has just created the files: fingerprint them now so the next run hits the cache.
    after = fingerprint()
    if after is None:
        return decoded
    return _cached(key, after, roots, lambda: decoded, progress)


def _load_cifar(root: Path, download: bool, progress: Progress | None) -> _Decoded:
    return _cached_download(
        "cifar10",
        root,
        lambda: _cifar_fingerprint(root),
        lambda: _decode_cifar(root, download, progress),
        progress,
    )


# ---------------------------------------------------------------------------------------------
# imagefolder


def _list_folder(root: Path, class_to_idx: dict[str, int] | None) -> tuple[list[str], list[Sample]]:
    """(classes, [(path, label)]) in torchvision ImageFolder's order and label numbering."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        if class_to_idx is None:
            classes, class_to_idx = find_classes(root)
            samples = make_dataset(root, class_to_idx, extensions=IMG_EXTENSIONS)
        else:
            # The test folder may lack a class; labels still follow the train folder's classes.
            classes = sorted(class_to_idx, key=class_to_idx.__getitem__)
            samples = make_dataset(root, class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"no images in --data-dir {root}: {_one_line(exc)}") from exc
    except OSError as exc:
        raise DataError(f"cannot read --data-dir {root}: {_one_line(exc)}") from exc
    if not samples:
        raise DataError(f"no images in {root} (expected one sub-folder of images per class)")
    return classes, samples


def _class_folders(folder: Path) -> list[str]:
    """The class folders torchvision's find_classes lists: every sub-folder, sorted."""
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def _refuse_too_few_classes(root: Path, folder: Path, classes: list[str]) -> None:
    """DataError (one line) unless `folder` (the root, or its train/) holds at least two class
    folders: with one, every trial would score 100 %; with none, there is nothing to learn."""
    if len(classes) >= MIN_CLASSES:
        return
    where = f"--data-dir {root}" if folder == root else f"--data-dir {root}: {folder.name}/"
    need = f"a classifier needs at least {MIN_CLASSES} class folders"
    if classes:
        only = folder / classes[0]
        hint = (
            f"is --data-dir one level too high? try --data-dir {only}"
            if _has_folders(only)
            else "is --data-dir one level too deep?"
        )
        raise DataError(f"{where} has 1 class folder ({classes[0]}): {need}; {hint}")
    if any(entry.is_file() for entry in os.scandir(folder)):
        raise DataError(
            f"{where} holds files but no class folders: {need} (one sub-folder of images per "
            f"class); is --data-dir one level too deep? try --data-dir {folder.parent}"
        )
    raise DataError(f"no images in {where} (expected one sub-folder of images per class)")


def _has_folders(path: Path) -> bool:
    try:
        return any(entry.is_dir() for entry in os.scandir(path))
    except OSError:
        return False


def check_image_folder(root: str | Path) -> None:
    """Refuse, before anything is decoded or Ray starts, an image tree that is not a dataset
    to classify: fewer than two class folders (in train/ for a train/ + test/ layout). Lists
    folders only; DataError (one line)."""
    root = Path(root).expanduser().absolute()
    try:
        trainval_dir, _ = _folder_layout(root)
        _refuse_too_few_classes(root, trainval_dir, _class_folders(trainval_dir))
    except OSError as exc:
        raise DataError(f"cannot read --data-dir {root}: {_one_line(exc)}") from exc


def _folder_layout(root: Path) -> tuple[Path, Path | None]:
    """(train+val folder, test folder or None when a test split must be held out)."""
    subdirs = {p.name for p in root.iterdir() if p.is_dir()}
    if "train" in subdirs:
        for test_name in ("test", "val"):
            if test_name in subdirs:
                return root / "train", root / test_name
        if subdirs == {"train"}:
            # A root holding only train/ (as the shared CIFAR-10 JPEG archive unpacks): without
            # this, "train" would become the one and only class.
            return root / "train", None
    return root, None


def _resize_shorter_and_crop(image: Any, size: int) -> Any:
    """torchvision's Resize(size) + CenterCrop(size), on a PIL image."""
    from PIL import Image

    w, h = image.size
    if (w, h) != (size, size):
        if w <= h:
            new_w, new_h = size, int(size * h / w)
        else:
            new_w, new_h = int(size * w / h), size
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
        left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
        image = image.crop((left, top, left + size, top + size))
    return image


# PIL modes without colour. A folder whose images are all of these (MNIST-style PNGs) is
# kept at one channel, as digits is: three identical channels cost 3x the memory and the
# first conv's MACs for nothing.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def _decode_one(path: str, image_size: int | None) -> tuple[np.ndarray, bool]:
    """One file -> uint8 (H, W, 3) and whether it was grayscale. DataError names the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            gray = opened.mode in GRAY_MODES
            image = opened.convert("RGB") if opened.mode != "RGB" else opened
            if image_size is not None:
                image = _resize_shorter_and_crop(image, image_size)
            return np.asarray(image), gray  # (H, W, 3)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot decode image {path}: {_one_line(exc)}") from exc


def _decode_chunk(paths: list[str], image_size: int | None) -> tuple[np.ndarray, bool, str]:
    """A worker's share: uint8 (n, 3, H, W), whether all were grayscale, and the first path
    (for the message when two chunks' sizes differ)."""
    x: np.ndarray | None = None
    gray = True
    for i, path in enumerate(paths):
        pixels, was_gray = _decode_one(path, image_size)
        gray = gray and was_gray
        if x is None:
            x = np.empty((len(paths), 3, *pixels.shape[:2]), dtype=np.uint8)
        elif pixels.shape[:2] != x.shape[2:]:
            raise _size_mismatch(paths[0], x.shape[2:], path, pixels.shape[:2])
        x[i] = pixels.transpose(2, 0, 1)
    assert x is not None  # paths is never empty
    return x, gray, paths[0]


def _size_mismatch(first: str, first_hw: tuple, path: str, hw: tuple) -> DataError:
    return DataError(
        f"images differ in size ({first} is {first_hw[1]}x{first_hw[0]}, {path} is "
        f"{hw[1]}x{hw[0]}); pass --image-size N to resize them all"
    )


DECODE_CHUNK = 500  # files per task: ~0.1 s of work, so a pool's per-task cost stays small
# The images of a forked decode: an anonymous shared mapping the workers write into, so that
# no decoded pixel goes through a pipe. Set in the parent just before its workers fork.
_SHARED: np.ndarray | None = None


def _decode_into(start: int, paths: list[str], image_size: int | None, first: str) -> bool:
    """In a forked worker: decode `paths` into _SHARED[start:...]; whether all were gray."""
    assert _SHARED is not None
    gray = True
    for i, path in enumerate(paths):
        pixels, was_gray = _decode_one(path, image_size)
        if pixels.shape[:2] != _SHARED.shape[2:]:
            raise _size_mismatch(first, _SHARED.shape[2:], path, pixels.shape[:2])
        _SHARED[start + i] = pixels.transpose(2, 0, 1)
        gray = gray and was_gray
    return gray


def _decode_forked(
    paths: list[str],
    chunks: list[list[str]],
    image_size: int | None,
    workers: int,
    progress: Progress | None,
    done: int,
    total: int,
) -> tuple[np.ndarray, bool]:
    """Decode in forked processes straight into shared memory. Measured on 2 cores, 20,000
    CIFAR JPEGs, 2 workers (bench/decode.py, images/s of the last round): spawned workers
    returning their arrays 13,070, forkserver 14,071, forked 15,311, forked into shared memory
    17,241 (1 worker: 8,700-10,700). On all 50,000: 1.81x one worker's rate, median of 5.
    Fork, although Ray may be starting in another thread of this process: the children run
    only PIL and numpy on memory of their own, and exit."""
    import concurrent.futures
    import mmap

    from PIL import Image

    global _SHARED
    # Every PIL format plugin imported here, before the fork: a child then imports nothing
    # (an import lock another thread of this process held at the fork would stay held there).
    Image.init()
    first, gray = _decode_one(paths[0], image_size)
    height, width = first.shape[:2]
    buffer = mmap.mmap(-1, len(paths) * 3 * height * width)  # MAP_SHARED | MAP_ANONYMOUS
    x = np.frombuffer(buffer, dtype=np.uint8).reshape(len(paths), 3, height, width)
    _SHARED = x
    try:
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            starts = [i * DECODE_CHUNK for i in range(len(chunks))]
            finished = 0
            for chunk, chunk_gray in zip(chunks, pool.map(
                _decode_into, starts, chunks, [image_size] * len(chunks),
                [paths[0]] * len(chunks),
            ), strict=True):  # fmt: skip
                gray = gray and chunk_gray
                before, finished = finished, finished + len(chunk)
                if (
                    progress
                    and (done + finished) // PROGRESS_EVERY > (done + before) // PROGRESS_EVERY
                ):
                    progress(f"decoded {done + finished:,}/{total:,} images")
    finally:
        _SHARED = None
    return x, gray


def _decode_images(
    samples: list[Sample],
    image_size: int | None,
    progress: Progress | None,
    done: int,
    total: int,
    workers: int = 1,
) -> tuple[Split, bool]:
    """Decode files to uint8 (N, 3, H, W), and whether every image was grayscale. workers > 1:
    in that many processes (PIL holds the GIL for much of a JPEG decode: 2 threads were slower
    than 1), in chunks, reassembled in order."""
    paths = [path for path, _ in samples]
    chunks = [paths[i : i + DECODE_CHUNK] for i in range(0, len(paths), DECODE_CHUNK)]
    x: np.ndarray | None = None
    first_path, gray, at = "", True, 0

    def take(part: tuple[np.ndarray, bool, str]) -> None:
        nonlocal x, first_path, gray, at
        images, chunk_gray, chunk_first = part
        if x is None:
            x = np.empty((len(paths), *images.shape[1:]), dtype=np.uint8)  # (N, C, H, W)
            first_path = chunk_first
        elif images.shape[2:] != x.shape[2:]:
            raise _size_mismatch(first_path, x.shape[2:], chunk_first, images.shape[2:])
        x[at : at + len(images)] = images
        at += len(images)
        gray = gray and chunk_gray
        if progress and (done + at) // PROGRESS_EVERY > (done + at - len(images)) // PROGRESS_EVERY:
            progress(f"decoded {done + at:,}/{total:,} images")

    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            take(_decode_chunk(chunk, image_size))
    elif "fork" in multiprocessing.get_all_start_methods():
        x, gray = _decode_forked(paths, chunks, image_size, min(workers, len(chunks)),
                                 progress, done, total)  # fmt: skip
    else:
        import concurrent.futures

        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(chunks)),
                                                    mp_context=context) as pool:  # fmt: skip
            for part in pool.map(_decode_chunk, chunks, [image_size] * len(chunks)):
                take(part)
    assert x is not None  # samples is never empty
    y = np.fromiter((label for _, label in samples), dtype=np.int64, count=len(samples))
    return Split(x, y), gray


def _folder_fingerprint(samples: list[Sample], image_size: int | None) -> dict[str, Any]:
    """File count, total size and newest mtime: cheap (0.2 s for 50k files) and catches edits."""
    sizes, newest = 0, 0
    for path, _ in samples:
        st = os.stat(path)
        sizes += st.st_size
        newest = max(newest, st.st_mtime_ns)
    return {
        "files": len(samples), "bytes": sizes, "newest_mtime_ns": newest, "size": image_size,
        "channels": "1 when every image is grayscale",  # caches from before held 3 always
    }  # fmt: skip


def available_memory() -> int | None:
    """Bytes of memory the kernel says a new allocation can have (MemAvailable), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


MEMORY_SHARE = 0.6  # of the memory available: the decoded arrays, and the cache written from them


def _refuse_if_too_big(samples: list[Sample], image_size: int | None) -> None:
    """Refuse, before decoding, a folder whose decoded uint8 arrays would not fit in memory,
    and say which --image-size would."""
    from PIL import Image

    available = available_memory()
    if available is None or not samples:
        return
    if image_size is not None:
        height = width = image_size
    else:
        try:
            with Image.open(samples[0][0]) as first:
                width, height = first.size  # the header only
        except OSError:
            return  # the decoder says which file is bad, in its own words
    need = len(samples) * 3 * height * width
    budget = MEMORY_SHARE * available
    if need <= budget:
        return
    fits = int(math.sqrt(budget / (3 * len(samples))))
    raise DataError(
        f"{len(samples):,} images at {width}x{height} need about {_bytes(need)} decoded, more "
        f"than this machine can spare ({_bytes(available)} available); pass --image-size {fits} "
        f"or less (about {_bytes(len(samples) * 3 * fits * fits)}), or use a subset of the images"
    )


def _bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _load_imagefolder(
    root: Path, image_size: int | None, progress: Progress | None, workers: int = 1
) -> _Decoded:
    if not root.exists():
        raise DataError(f"--data-dir {root} does not exist")
    if not root.is_dir():
        raise DataError(f"--data-dir {root} is not a directory")
    try:
        trainval_dir, test_dir = _folder_layout(root)
    except OSError as exc:
        raise DataError(f"cannot read --data-dir {root}: {_one_line(exc)}") from exc
    try:
        _refuse_too_few_classes(root, trainval_dir, _class_folders(trainval_dir))
    except OSError as exc:
        raise DataError(f"cannot read --data-dir {root}: {_one_line(exc)}") from exc
    classes, trainval_samples = _list_folder(trainval_dir, None)
    test_samples: list[Sample] = []
    if test_dir is not None:
        _, test_samples = _list_folder(test_dir, {c: i for i, c in enumerate(classes)})

    def decode() -> _Decoded:
        total = len(trainval_samples) + len(test_samples)
        _refuse_if_too_big(trainval_samples + test_samples, image_size)
        if progress:
            progress(f"decoding {total:,} images from {root} with {workers} process(es) (once; "
                     "later runs read the cache)")  # fmt: skip
        trainval, gray = _decode_images(
            trainval_samples, image_size, progress, 0, total, workers=workers
        )
        if test_dir is None:
            # Both parts come back in the permutation's (random) order.
            trainval, test = _split_off_test(trainval.x, trainval.y, IMAGEFOLDER_TEST_FRACTION)
        else:
            test, test_gray = _decode_images(
                test_samples, image_size, progress, len(trainval.y), total, workers=workers
            )
            gray = gray and test_gray
            if test.x.shape[1:] != trainval.x.shape[1:]:
                raise DataError(
                    f"{test_dir} images are {test.x.shape[3]}x{test.x.shape[2]} but {trainval_dir} "
                    f"images are {trainval.x.shape[3]}x{trainval.x.shape[2]}; pass --image-size N"
                )
            trainval = _shuffled(trainval)
        if gray:  # every image had one channel: keep one
            trainval = Split(np.ascontiguousarray(trainval.x[:, :1]), trainval.y)
            test = Split(np.ascontiguousarray(test.x[:, :1]), test.y)
        return _Decoded(trainval, test, tuple(classes), str(root))

    fingerprint = _folder_fingerprint(trainval_samples + test_samples, image_size)
    key = f"imagefolder-{_root_hash(root, image_size)}"
    # Never inside the image tree itself: a tuner-cache/ folder there would become a new class
    # for torchvision's ImageFolder (ours and the user's other tools).
    return _cached(key, fingerprint, [default_data_dir() / CACHE_DIRNAME], decode, progress)


# ---------------------------------------------------------------------------------------------
# Entry point


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
        decoded = _load_digits(root, progress)
    elif name == "cifar10":
        decoded = _load_cifar(root, download, progress)
    elif name in TORCHVISION_DATASETS:
        from tuner.data.torchvision_sets import load_torchvision

        decoded = load_torchvision(name, root, download, progress)
    else:
        workers = decode_workers if decode_workers is not None else (os.cpu_count() or 1)
        decoded = _load_imagefolder(root, image_size, progress, workers=max(1, workers))
    return _apply_val_split(name, decoded, val_count)


def open_cached(ref: CacheRef) -> tuple[Split, Split]:
    """(train, val) of a dataset another process cached, memory-mapped; never decodes.

    This is how a trial on a cluster node gets its data: the cache must be on storage that every
    node mounts at the same path (docker-compose.yml mounts /shared and sets TUNER_DATA_DIR).
    """
    cache_dir = Path(ref.cache_dir)
    decoded = _read_cache(cache_dir, ref.fingerprint, mmap=True)
    if decoded is None:
        raise DataError(
            f"dataset cache {cache_dir} is missing or differs on node {socket.gethostname()}; "
            "with --address, --data-dir (or $TUNER_DATA_DIR) must be on storage that every "
            "node mounts at the same path"
        )
    n_train = len(decoded.trainval.y) - ref.val_count
    x, y = decoded.trainval.x, decoded.trainval.y
    return Split(x[:n_train], y[:n_train]), Split(x[n_train:], y[n_train:])
