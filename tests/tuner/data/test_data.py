"""tuner.data on tiny self-made data: sklearn digits, a fake CIFAR-10, little PNG trees."""

from __future__ import annotations

import os
import shutil
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from cifar_fixture import LABEL_NAMES, use_fake_cifar_md5s, write_fake_cifar10
from PIL import Image
from torchvision.datasets import CIFAR10

from tuner.data import (
    CACHE_DIRNAME,
    CACHE_FILES,
    DATASETS,
    DataError,
    DatasetBundle,
    cache,
    default_data_dir,
    default_val_count,
    digits,
    download,
    imagefolder,
    load_dataset,
)

CLASSES = ("a_red", "b_green", "c_blue")  # sorted names = label order; class i lights channel i


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every default-dir cache inside the test's tmp_path, never in ~/.cache."""
    home = tmp_path / "cache-home"
    monkeypatch.setenv("TUNER_DATA_DIR", str(home))
    return home


def _png(path: Path, channel: int, value: int, size: tuple[int, int] = (8, 8)) -> None:
    """A PNG lighting only `channel` at `value`, so pixels tell the label and the image apart."""
    w, h = size
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    pixels[:, :, channel] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _tree(root: Path, per_class: int, first_value: int = 20) -> None:
    for label, name in enumerate(CLASSES):
        for k in range(per_class):
            _png(root / name / f"{k:03d}.png", label, first_value + k)


def _check_labels_match_pixels(bundle: DatasetBundle) -> None:
    for split in (bundle.train, bundle.val, bundle.test):
        lit = split.x.reshape(len(split.y), 3, -1).max(axis=2).argmax(axis=1)  # (N,)
        np.testing.assert_array_equal(lit, split.y)


def _identities(bundle: DatasetBundle, split_name: str) -> set[tuple[int, int]]:
    split = getattr(bundle, split_name)
    values = split.x.reshape(len(split.y), -1).max(axis=1)
    return {(int(label), int(v)) for label, v in zip(split.y, values, strict=True)}


def _cache_entries(cache_root: Path) -> list[str]:
    return sorted(p.name for p in cache_root.iterdir()) if cache_root.exists() else []


def _check_split_types(bundle: DatasetBundle) -> None:
    for split in (bundle.train, bundle.val, bundle.test):
        assert split.x.dtype == np.uint8 and split.x.flags.c_contiguous
        assert split.y.dtype == np.int64


# --- names, defaults, arguments --------------------------------------------------------------


def test_default_val_count_follows_the_labs_ratio_with_a_per_class_floor() -> None:
    assert default_val_count(50_000, 10) == 1_000  # the lab's 49,000 / 1,000
    assert default_val_count(1_437, 10) == 200  # digits: 20 per class beats 2 %
    assert default_val_count(40, 10) == 10  # never more than a quarter


def test_default_data_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUNER_DATA_DIR", str(tmp_path / "x"))
    assert default_data_dir() == tmp_path / "x"
    monkeypatch.delenv("TUNER_DATA_DIR")
    assert default_data_dir() == Path.home() / ".cache" / "cnn-tuner"


def test_unknown_dataset_lists_the_choices() -> None:
    with pytest.raises(DataError) as err:
        load_dataset("no_such_set")
    assert all(name in str(err.value) for name in DATASETS)


@pytest.mark.parametrize("val_count", [0, -3, 1437, 5000])
def test_val_count_out_of_range_is_a_data_error(val_count: int) -> None:
    with pytest.raises(DataError, match="val count"):
        load_dataset("digits", val_count=val_count)


def test_image_size_is_rejected_outside_imagefolder() -> None:
    with pytest.raises(DataError, match="--image-size"):
        load_dataset("digits", image_size=16)


# --- digits ---------------------------------------------------------------------------------


def test_digits_shapes_and_split_sizes() -> None:
    bundle = load_dataset("digits")
    assert bundle.name == "digits" and bundle.source == "sklearn digits"
    assert bundle.classes == tuple(str(i) for i in range(10)) and bundle.num_classes == 10
    assert bundle.input_shape == (1, 8, 8)
    assert (len(bundle.train.y), len(bundle.val.y), len(bundle.test.y)) == (1237, 200, 360)
    _check_split_types(bundle)
    assert bundle.train.x.max() == 255 and bundle.train.x.min() == 0


def test_digits_splits_partition_the_images_with_a_fixed_test_split() -> None:
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = np.rint(raw.images * 255 / 16).astype(np.uint8)[:, None]
    bundle = load_dataset("digits")
    # The documented rule: the first ceil(20 %) of a seed-0 permutation is the test split.
    order = np.random.default_rng(0).permutation(len(x))
    np.testing.assert_array_equal(bundle.test.x, x[order[:360]])
    np.testing.assert_array_equal(bundle.test.y, raw.target[order[:360]])
    # Together the three splits are exactly the 1,797 images (as a multiset: digits has repeats).
    rows = np.concatenate([s.x for s in (bundle.train, bundle.val, bundle.test)]).reshape(1797, -1)
    np.testing.assert_array_equal(np.unique(rows, axis=0), np.unique(x.reshape(1797, -1), axis=0))
    assert sorted(map(bytes, rows)) == sorted(map(bytes, x.reshape(1797, -1)))

    # Fixed across calls, rebuilds and val sizes: the test split never moves.
    shutil.rmtree(default_data_dir() / CACHE_DIRNAME)
    again = load_dataset("digits", val_count=300)
    np.testing.assert_array_equal(again.test.x, bundle.test.x)
    np.testing.assert_array_equal(again.train.x, bundle.train.x[:1137])
    assert len(again.val.y) == 300


def test_second_digits_load_reads_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset("digits")
    entry = default_data_dir() / CACHE_DIRNAME / "digits"
    assert sorted(p.name for p in entry.iterdir()) == sorted(CACHE_FILES)
    written = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}

    def no_decode() -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(digits, "_decode_digits", no_decode)
    said: list[str] = []
    second = load_dataset("digits", progress=said.append)
    assert said == [f"loaded digits from cache {entry}"]
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == written  # read, not rewritten
    np.testing.assert_array_equal(second.train.x, first.train.x)
    np.testing.assert_array_equal(second.test.y, first.test.y)


# --- cifar10 --------------------------------------------------------------------------------


def test_cifar10_round_trips_torchvisions_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = write_fake_cifar10(tmp_path, n_train=60, n_test=20)
    use_fake_cifar_md5s(monkeypatch, fake.md5s)
    bundle = load_dataset("cifar10", tmp_path, val_count=10, download=False)
    assert bundle.classes == LABEL_NAMES and bundle.input_shape == (3, 32, 32)
    # Pixel-exact, through the (N, 3072) rows -> (N, 32, 32, 3) -> (N, 3, 32, 32) transposes,
    # and in file order: the first 50 train, the last 10 val.
    np.testing.assert_array_equal(bundle.train.x, fake.train_x[:50])
    np.testing.assert_array_equal(bundle.train.y, fake.train_y[:50])
    np.testing.assert_array_equal(bundle.val.x, fake.train_x[50:])
    np.testing.assert_array_equal(bundle.val.y, fake.train_y[50:])
    np.testing.assert_array_equal(bundle.test.x, fake.test_x)
    np.testing.assert_array_equal(bundle.test.y, fake.test_y)
    _check_split_types(bundle)
    assert bundle.source == str(tmp_path / "cifar-10-batches-py")

    default = load_dataset("cifar10", tmp_path)  # default val: min(60 // 4, 200) = 15
    assert (len(default.train.y), len(default.val.y)) == (45, 15)


def test_cifar10_cache_is_used_and_refreshed_when_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = write_fake_cifar10(tmp_path)
    use_fake_cifar_md5s(monkeypatch, fake.md5s)
    load_dataset("cifar10", tmp_path, val_count=10)
    cache_root = tmp_path / CACHE_DIRNAME
    [entry] = _cache_entries(cache_root)  # only the finished cache: no temp dirs left behind
    assert entry.startswith("cifar10-")

    def unreadable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("torchvision should not be asked: the cache is fresh")

    with monkeypatch.context() as m:
        m.setattr(CIFAR10, "__init__", unreadable)
        cached = load_dataset("cifar10", tmp_path, val_count=20)  # new val size, same cache
    np.testing.assert_array_equal(cached.train.x, fake.train_x[:40])

    # New files (same sizes, newer mtimes) make the cache stale.
    newer = write_fake_cifar10(tmp_path, seed=1)
    for name in newer.md5s:
        path = tmp_path / "cifar-10-batches-py" / name
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    use_fake_cifar_md5s(monkeypatch, newer.md5s)
    rebuilt = load_dataset("cifar10", tmp_path, val_count=10)
    np.testing.assert_array_equal(rebuilt.train.x, newer.train_x[:50])
    assert _cache_entries(cache_root) == [entry]


def test_cifar10_missing_offline_is_one_line_naming_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up = []

    def offline(*args: object, **kwargs: object) -> None:
        looked_up.append(args[0])
        raise socket.gaierror(-2, "Name or service not known")

    # Simulate no network even where there is one: a test must never fetch 170 MB.
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    empty = tmp_path / "empty"
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", empty)
    assert len(looked_up) == 1  # one try, no retries: the error comes at once
    message = str(err.value)
    assert "\n" not in message
    assert f"--data-dir {empty}" in message
    assert "--dataset imagefolder" in message and "--dataset digits" in message
    assert "could not be downloaded" in message


def test_cifar10_without_download_fails_without_touching_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(self: CIFAR10) -> None:
        raise AssertionError("download=False must not download")

    monkeypatch.setattr(CIFAR10, "download", no_download)
    with pytest.raises(DataError, match="--data-dir") as err:
        load_dataset("cifar10", tmp_path, download=False)
    assert "\n" not in str(err.value)


def test_cifar10_download_runs_under_a_socket_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float | None] = []

    def hanging_host(self: CIFAR10) -> None:
        seen.append(socket.getdefaulttimeout())
        raise urllib.error.URLError(TimeoutError("timed out"))

    monkeypatch.setattr(CIFAR10, "download", hanging_host)
    before = socket.getdefaulttimeout()
    with pytest.raises(DataError, match="timed out"):
        load_dataset("cifar10", tmp_path)
    assert seen == [download.DOWNLOAD_TIMEOUT_S]
    assert socket.getdefaulttimeout() == before


def test_cifar10_is_read_after_a_successful_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "mirror"
    fake = write_fake_cifar10(source)
    use_fake_cifar_md5s(monkeypatch, fake.md5s)

    def download_from_mirror(self: CIFAR10) -> None:
        shutil.copytree(source / "cifar-10-batches-py", Path(self.root) / "cifar-10-batches-py")

    monkeypatch.setattr(CIFAR10, "download", download_from_mirror)
    messages: list[str] = []
    bundle = load_dataset("cifar10", tmp_path / "fresh", val_count=10, progress=messages.append)
    np.testing.assert_array_equal(bundle.test.x, fake.test_x)
    assert any("downloading" in m for m in messages)
    assert _cache_entries(tmp_path / "fresh" / CACHE_DIRNAME)  # cached right after the download


def test_unwritable_data_dir_caches_in_the_default_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = write_fake_cifar10(tmp_path / "ro")
    use_fake_cifar_md5s(monkeypatch, fake.md5s)
    real_write = cache._write_cache

    def read_only_data_dir(cache_dir: Path, *args: object) -> None:
        if cache_dir.is_relative_to(tmp_path / "ro"):
            raise PermissionError(13, "Permission denied", str(cache_dir))
        real_write(cache_dir, *args)

    monkeypatch.setattr(cache, "_write_cache", read_only_data_dir)
    load_dataset("cifar10", tmp_path / "ro", val_count=10)
    assert not (tmp_path / "ro" / CACHE_DIRNAME).exists()
    assert _cache_entries(default_data_dir() / CACHE_DIRNAME)

    def unreadable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("torchvision should not be asked: the fallback cache is fresh")

    monkeypatch.setattr(CIFAR10, "__init__", unreadable)
    again = load_dataset("cifar10", tmp_path / "ro", val_count=10)
    np.testing.assert_array_equal(again.train.x, fake.train_x[:50])


# --- imagefolder ----------------------------------------------------------------------------


def test_imagefolder_flat_root_holds_out_a_sixth_as_test(tmp_path: Path) -> None:
    _tree(tmp_path / "tree", per_class=12)
    bundle = load_dataset("imagefolder", tmp_path / "tree", val_count=6)
    assert bundle.classes == CLASSES and bundle.input_shape == (3, 8, 8)
    assert (len(bundle.train.y), len(bundle.val.y), len(bundle.test.y)) == (24, 6, 6)
    _check_split_types(bundle)
    _check_labels_match_pixels(bundle)
    parts = [_identities(bundle, s) for s in ("train", "val", "test")]
    assert len(set.union(*parts)) == 36 and sum(map(len, parts)) == 36  # disjoint, complete
    # Shuffled before the val cut: val is not just the last class.
    assert len(set(bundle.val.y.tolist())) > 1
    assert bundle.source == str(tmp_path / "tree")


def test_imagefolder_train_and_test_folders_are_the_splits(tmp_path: Path) -> None:
    _tree(tmp_path / "tree" / "train", per_class=10, first_value=20)
    _tree(tmp_path / "tree" / "test", per_class=4, first_value=200)
    bundle = load_dataset("imagefolder", tmp_path / "tree")
    assert bundle.classes == CLASSES
    assert len(bundle.test.y) == 12 and len(bundle.train.y) + len(bundle.val.y) == 30
    assert all(v >= 200 for _, v in _identities(bundle, "test"))
    assert all(v < 200 for s in ("train", "val") for _, v in _identities(bundle, s))
    _check_labels_match_pixels(bundle)
    assert len(set(bundle.val.y.tolist())) > 1  # shuffled before the val cut


def test_imagefolder_uses_val_folder_when_there_is_no_test_folder(tmp_path: Path) -> None:
    _tree(tmp_path / "tree" / "train", per_class=10, first_value=20)
    _tree(tmp_path / "tree" / "val", per_class=3, first_value=200)
    bundle = load_dataset("imagefolder", tmp_path / "tree")
    assert len(bundle.test.y) == 9
    assert all(v >= 200 for _, v in _identities(bundle, "test"))


def test_imagefolder_root_with_only_train_is_not_one_class(tmp_path: Path) -> None:
    _tree(tmp_path / "tree" / "train", per_class=12)
    bundle = load_dataset("imagefolder", tmp_path / "tree")
    assert bundle.classes == CLASSES and len(bundle.test.y) == 6


def test_imagefolder_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    _tree(tmp_path / "tree", per_class=4)
    _png(tmp_path / "tree" / "b_green" / "wide.png", 1, 99, size=(12, 8))
    with pytest.raises(DataError, match="--image-size") as err:
        load_dataset("imagefolder", tmp_path / "tree", val_count=2)
    assert "\n" not in str(err.value)

    bundle = load_dataset("imagefolder", tmp_path / "tree", val_count=2, image_size=6)
    assert bundle.input_shape == (3, 6, 6)
    _check_labels_match_pixels(bundle)  # solid colours survive resize + center crop
    bigger = load_dataset("imagefolder", tmp_path / "tree", val_count=2, image_size=16)
    assert bigger.input_shape == (3, 16, 16)


def test_imagefolder_grayscale_files_become_rgb(tmp_path: Path) -> None:
    _tree(tmp_path / "tree", per_class=4)
    Image.fromarray(np.full((8, 8), 77, dtype=np.uint8), mode="L").save(
        tmp_path / "tree" / "a_red" / "gray.png"
    )
    bundle = load_dataset("imagefolder", tmp_path / "tree", val_count=2)
    everything = np.concatenate([bundle.train.x, bundle.val.x, bundle.test.x])
    assert any((img == 77).all() for img in everything)


def test_imagefolder_reports_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path / "tree", per_class=12)
    monkeypatch.setattr(imagefolder, "PROGRESS_EVERY", 10)
    monkeypatch.setattr(imagefolder, "DECODE_CHUNK", 10)  # progress comes as each chunk is decoded
    messages: list[str] = []
    load_dataset("imagefolder", tmp_path / "tree", progress=messages.append)
    assert any(m.startswith("decoding 36 images") for m in messages)
    assert [m for m in messages if m.startswith("decoded")] == [
        "decoded 10/36 images",
        "decoded 20/36 images",
        "decoded 30/36 images",
    ]


@pytest.mark.parametrize("problem", ["missing", "file", "empty", "no images", "none"])
def test_imagefolder_bad_data_dir_is_a_data_error(tmp_path: Path, problem: str) -> None:
    path: Path | None = tmp_path / "tree"
    assert path is not None
    if problem == "file":
        path.write_text("not a folder")
    elif problem == "empty":
        path.mkdir()
    elif problem == "no images":
        (path / "cats").mkdir(parents=True)
        (path / "cats" / "notes.txt").write_text("no pictures here")
    elif problem == "none":
        path = None
    with pytest.raises(DataError, match="--data-dir") as err:
        load_dataset("imagefolder", path)
    if path is not None:
        assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_imagefolder_unreadable_image_is_a_data_error(tmp_path: Path) -> None:
    _tree(tmp_path / "tree", per_class=4)
    (tmp_path / "tree" / "a_red" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset("imagefolder", tmp_path / "tree", val_count=2)


# --- imagefolder cache ----------------------------------------------------------------------


def test_imagefolder_cache_lives_outside_the_tree_and_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path / "tree", per_class=12)
    first = load_dataset("imagefolder", tmp_path / "tree", val_count=6)
    assert sorted(p.name for p in (tmp_path / "tree").iterdir()) == list(CLASSES)
    cache_root = default_data_dir() / CACHE_DIRNAME
    [entry] = _cache_entries(cache_root)
    assert entry.startswith("imagefolder-")
    assert sorted(p.name for p in (cache_root / entry).iterdir()) == sorted(CACHE_FILES)

    def no_decode(*args: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(imagefolder, "_decode_images", no_decode)
    second = load_dataset("imagefolder", tmp_path / "tree", val_count=9)  # no re-decode
    trainval = np.concatenate([first.train.x, first.val.x])
    np.testing.assert_array_equal(np.concatenate([second.train.x, second.val.x]), trainval)
    np.testing.assert_array_equal(second.test.x, first.test.x)
    assert len(second.val.y) == 9


def test_imagefolder_stale_cache_is_rebuilt(tmp_path: Path) -> None:
    _tree(tmp_path / "tree", per_class=12)
    load_dataset("imagefolder", tmp_path / "tree")
    _png(tmp_path / "tree" / "c_blue" / "new.png", 2, 250)
    bundle = load_dataset("imagefolder", tmp_path / "tree")
    assert len(bundle.train.y) + len(bundle.val.y) + len(bundle.test.y) == 37
    assert len(_cache_entries(default_data_dir() / CACHE_DIRNAME)) == 1  # replaced, not added


def test_image_size_gets_its_own_cache(tmp_path: Path) -> None:
    _tree(tmp_path / "tree", per_class=4)
    load_dataset("imagefolder", tmp_path / "tree", val_count=2)
    load_dataset("imagefolder", tmp_path / "tree", val_count=2, image_size=4)
    assert len(_cache_entries(default_data_dir() / CACHE_DIRNAME)) == 2


def test_unwritable_cache_dir_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path / "tree", per_class=4)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TUNER_DATA_DIR", str(blocker))  # cannot mkdir under a file
    bundle = load_dataset("imagefolder", tmp_path / "tree", val_count=2)
    assert len(bundle.test.y) == 2


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_interrupted_cache_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    _tree(tmp_path / "tree", per_class=4)
    real_save = np.save
    calls = 0

    def save_then_fail(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # two arrays written, then the disk fills up / the user hits Ctrl-C
            raise failure
        real_save(*args, **kwargs)

    monkeypatch.setattr(cache.np, "save", save_then_fail)
    if isinstance(failure, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            load_dataset("imagefolder", tmp_path / "tree", val_count=2)
    else:
        bundle = load_dataset("imagefolder", tmp_path / "tree", val_count=2)  # runs uncached
        assert len(bundle.test.y) == 2
    assert _cache_entries(default_data_dir() / CACHE_DIRNAME) == []


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    _tree(tmp_path / "tree", per_class=4)
    first = load_dataset("imagefolder", tmp_path / "tree", val_count=2)
    [entry] = (default_data_dir() / CACHE_DIRNAME).iterdir()
    (entry / "train_x.npy").write_bytes(b"\x93NUMPY garbage")
    again = load_dataset("imagefolder", tmp_path / "tree", val_count=2)
    np.testing.assert_array_equal(again.train.x, first.train.x)


def test_a_cached_dataset_opens_by_reference_with_the_same_split(tmp_path: Path) -> None:
    """What a trial on a cluster node does: open the driver's cache by path, no decoding."""
    from tuner.data import open_cached
    from tuner.train.trial_data import TrialData

    bundle = load_dataset("digits", tmp_path, val_count=150)
    assert bundle.cache is not None and Path(bundle.cache.cache_dir).is_dir()
    data = TrialData.from_bundle(bundle, from_cache=True)
    assert data.train is None and data.val is None  # only the location travels
    opened = data.opened()
    np.testing.assert_array_equal(opened.train.x, bundle.train.x)
    np.testing.assert_array_equal(opened.val.y, bundle.val.y)
    assert len(opened.val.y) == 150
    assert opened.input_shape == data.input_shape and opened.mean == data.mean
    train, _ = open_cached(bundle.cache)
    assert isinstance(train.x, np.memmap)  # mapped, so trials on one node share the pages


def test_a_missing_or_different_cache_is_a_one_line_error_naming_shared_storage(
    tmp_path: Path,
) -> None:
    import dataclasses

    from tuner.data import open_cached

    bundle = load_dataset("digits", tmp_path)
    changed = dataclasses.replace(bundle.cache, fingerprint={"other": 1})
    with pytest.raises(DataError, match="every node mounts") as err:
        open_cached(changed)
    assert "\n" not in str(err.value)
    shutil.rmtree(bundle.cache.cache_dir)
    with pytest.raises(DataError, match="missing or differs"):
        open_cached(bundle.cache)
