"""MNIST, Fashion-MNIST, CIFAR-100 and SVHN through torchvision's own readers, from files in
their real formats (tests/torchvision_fixture.py): every pixel and label comes back, the
official test split stays the held-out one, and the second load is the cache's."""

from __future__ import annotations

import numpy as np
import pytest
from torchvision_fixture import DATASETS, NUM_CLASSES, SHAPES, accept_fake_md5s, write_fake

from tuner.data import load_dataset
from tuner.errors import DataError


def _rows(x: np.ndarray, y: np.ndarray) -> list[tuple[bytes, int]]:
    return sorted((img.tobytes(), int(label)) for img, label in zip(x, y, strict=True))


@pytest.mark.parametrize("name", DATASETS)
def test_each_torchvision_dataset_reads_back_every_image(tmp_path, monkeypatch, name):
    fake = write_fake(name, tmp_path / "data")
    accept_fake_md5s(monkeypatch, fake)
    messages: list[str] = []
    bundle = load_dataset(name, tmp_path / "data", val_count=8, download=False,
                          progress=messages.append)  # fmt: skip
    assert bundle.input_shape == SHAPES[name]
    assert bundle.num_classes == NUM_CLASSES[name]
    assert len(bundle.val.y) == 8 and len(bundle.train.y) == len(fake.train_y) - 8
    got_trainval = _rows(np.concatenate([bundle.train.x, bundle.val.x]),
                         np.concatenate([bundle.train.y, bundle.val.y]))  # fmt: skip
    assert got_trainval == _rows(fake.train_x, fake.train_y)
    assert _rows(bundle.test.x, bundle.test.y) == _rows(fake.test_x, fake.test_y)
    assert any(m.startswith("cached") for m in messages), messages

    again: list[str] = []
    cached = load_dataset(name, tmp_path / "data", val_count=8, download=False,
                          progress=again.append)  # fmt: skip
    assert any(m.startswith(f"loaded {name} from cache") for m in again), again
    assert np.array_equal(cached.train.x, bundle.train.x)


def test_svhn_zero_is_digit_zero(tmp_path, monkeypatch):
    """SVHN's files store the digit 0 as label 10; the tuner's class 0 is the digit 0."""
    fake = write_fake("svhn", tmp_path)
    accept_fake_md5s(monkeypatch, fake)
    bundle = load_dataset("svhn", tmp_path, val_count=8, download=False)
    assert bundle.classes == tuple(str(d) for d in range(10))
    assert set(np.concatenate([bundle.train.y, bundle.val.y])) <= set(range(10))
    assert (fake.train_y == 0).any()


@pytest.mark.parametrize("name", DATASETS)
def test_a_missing_dataset_without_download_says_where_to_put_it(tmp_path, name):
    with pytest.raises(DataError) as err:
        load_dataset(name, tmp_path, download=False)
    text = str(err.value)
    assert "\n" not in text and "downloading is off" in text and str(tmp_path) in text
