"""A class-per-folder tree of images (`--dataset imagefolder`): listed in torchvision
ImageFolder's order, decoded once by PIL in forked processes, kept at one channel when every
image is grayscale, refused before decoding when it would not fit in memory."""

from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path
from typing import Any

import numpy as np

from tuner.data.cache import CACHE_DIRNAME, _cached, default_data_dir
from tuner.data.splits import (
    IMAGEFOLDER_TEST_FRACTION,
    MIN_CLASSES,
    PROGRESS_EVERY,
    Progress,
    Sample,
    Split,
    _Decoded,
    _one_line,
    _root_hash,
    _shuffled,
    _split_off_test,
)
from tuner.errors import DataError


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
