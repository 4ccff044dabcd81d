"""An image folder whose decoded images would not fit in memory is refused before anything is
decoded, with the --image-size that would fit (README, --decode-workers); through `tuner
search` that is one line and exit 2, with nothing written. No Ray: the search fails while
preparing, and Ray's start is replaced by a stand-in that starts nothing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tuner.data.imagefolder as imagefolder
from tuner.cli import main
from tuner.data import DataError, load_dataset

PER_CLASS, SIDE = 6, 16  # 12 images of 16x16: 9,216 bytes decoded as uint8 RGB
AVAILABLE = 1_000  # bytes MemAvailable says: 60 % of it (600 B) is what decoding may use


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache-home"
    monkeypatch.setenv("TUNER_DATA_DIR", str(home))
    return home


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "pets"
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for k in range(PER_CLASS):
            pixels = np.full((SIDE, SIDE, 3), 20 * k + 100 * c, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{k}.png")
    return root


@pytest.fixture
def low_memory(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """MemAvailable reads AVAILABLE bytes, and decoding any image fails the test."""
    monkeypatch.setattr(imagefolder, "available_memory", lambda: AVAILABLE)
    decoded: list[int] = []

    def never(samples, *args, **kwargs):
        decoded.append(len(samples))
        raise AssertionError("decoded images although they do not fit in memory")

    monkeypatch.setattr(imagefolder, "_decode_images", never)
    return decoded


def test_available_memory_reads_meminfo():
    available = imagefolder.available_memory()
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        assert available is None
        return
    line = next(x for x in meminfo.read_text().splitlines() if x.startswith("MemAvailable:"))
    kib = int(line.split()[1])
    assert available is not None and abs(available - kib * 1024) < 2**30  # it moves a little


def test_a_folder_too_big_for_memory_is_refused_before_decoding(folder, low_memory, cache_home):
    with pytest.raises(DataError) as refused:
        load_dataset("imagefolder", folder, decode_workers=1)
    message = str(refused.value)
    assert "\n" not in message
    assert f"{2 * PER_CLASS} images at {SIDE}x{SIDE}" in message
    assert "more than this machine can spare" in message
    fits = int(re.search(r"pass --image-size (\d+) or less", message).group(1))
    # 600 bytes for 12 RGB images: 4x4 (576 B) fits, 5x5 (900 B) does not
    assert fits == 4
    assert low_memory == []  # nothing decoded
    assert not any(p.is_file() for p in cache_home.rglob("*"))  # nothing cached


def test_the_suggested_image_size_fits(folder, monkeypatch):
    """Under the same memory, the size the refusal names loads, and one pixel more does not."""
    monkeypatch.setattr(imagefolder, "available_memory", lambda: AVAILABLE)
    with pytest.raises(DataError, match=r"pass --image-size 4 or less"):
        load_dataset("imagefolder", folder, image_size=5, decode_workers=1)
    bundle = load_dataset("imagefolder", folder, image_size=4, val_count=2, decode_workers=1)
    assert bundle.input_shape == (3, 4, 4)
    assert len(bundle.train.y) + len(bundle.val.y) + len(bundle.test.y) == 2 * PER_CLASS


def test_tuner_search_refuses_it_in_one_line_exit_2_and_writes_nothing(
    folder, low_memory, tmp_path, monkeypatch, capsys
):
    import tuner.driver.ray_runtime as ray_runtime

    started: list[object] = []

    def no_ray(cfg, stream):  # Ray's start, beside which the dataset is loaded
        started.append(cfg.address)
        return False

    monkeypatch.setattr(ray_runtime, "start_ray", no_ray)
    out = tmp_path / "out"
    code = main(["search", "--dataset", "imagefolder", "--data-dir", str(folder),
                 "--decode-workers", "1", "--samples", "1", "--epochs", "1", "--no-confirm",
                 "--out", str(out), "--name", "big"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("tuner: error: ")
    assert "pass --image-size 4 or less" in err
    assert low_memory == []
    assert not (out / "big").exists()
