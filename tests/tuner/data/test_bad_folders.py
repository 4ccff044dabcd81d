"""Image folders that are not a classification dataset: fewer than two class folders (the
--data-dir one level too deep or too high) is one DataError line, before anything is decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tuner.data import DataError, check_image_folder, load_dataset


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every default-dir cache inside the test's tmp_path, never in ~/.cache."""
    home = tmp_path / "cache-home"
    monkeypatch.setenv("TUNER_DATA_DIR", str(home))
    return home


def _pngs(folder: Path, count: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        Image.fromarray(np.full((8, 8, 3), 10 * k, dtype=np.uint8)).save(folder / f"{k}.png")


def _layout(root: Path, kind: str) -> tuple[Path, str]:
    """A tree and the --data-dir a user gives for it by mistake; the message's telling part."""
    if kind == "one class":  # DIR holding a single class folder
        _pngs(root / "cat")
        return root, "has 1 class folder (cat): a classifier needs at least 2 class folders; " \
            "is --data-dir one level too deep?"  # fmt: skip
    if kind == "too deep":  # DIR/cat given for DIR: images, no class folders
        _pngs(root / "cat")
        _pngs(root / "dog")
        return root / "cat", f"one level too deep? try --data-dir {root}"
    if kind == "too high":  # the parent of the tree: its only folder is the tree
        _pngs(root / "pets" / "cat")
        _pngs(root / "pets" / "dog")
        return root, f"has 1 class folder (pets): a classifier needs at least 2 class folders; " \
            f"is --data-dir one level too high? try --data-dir {root / 'pets'}"  # fmt: skip
    assert kind == "train/test"  # the splits' layout, with one class in train/
    _pngs(root / "train" / "cat")
    _pngs(root / "test" / "cat")
    return root, "train/ has 1 class folder (cat): a classifier needs at least 2 class folders"


KINDS = ["one class", "too deep", "too high", "train/test"]


@pytest.mark.parametrize("kind", KINDS)
def test_fewer_than_two_classes_is_one_line_naming_them(
    tmp_path: Path, cache_home: Path, kind: str
) -> None:
    data_dir, needle = _layout(tmp_path / "tree", kind)
    for check in (check_image_folder, lambda d: load_dataset("imagefolder", d, val_count=1)):
        with pytest.raises(DataError) as err:
            check(data_dir)
        message = str(err.value)
        assert "\n" not in message and needle in message, message
        assert message.startswith(f"--data-dir {data_dir}"), message
    assert not cache_home.exists()  # refused before decoding: nothing cached


def test_two_classes_pass_the_check(tmp_path: Path) -> None:
    _pngs(tmp_path / "tree" / "cat")
    _pngs(tmp_path / "tree" / "dog")
    check_image_folder(tmp_path / "tree")
    _pngs(tmp_path / "split" / "train" / "cat")
    _pngs(tmp_path / "split" / "train" / "dog")
    _pngs(tmp_path / "split" / "test" / "cat")  # a test folder may lack a class
    check_image_folder(tmp_path / "split")


def test_an_empty_folder_says_there_are_no_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in --data-dir"):
        check_image_folder(tmp_path / "empty")
