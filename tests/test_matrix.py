"""Every built-in space on every built-in dataset shape, and every searcher, scheduler and
objective kind on every space: real searches (real Ray, Optuna, torch), one or two trials of
one epoch each, all sharing one in-process Ray.

Shapes: digits (1x8x8), CIFAR-10's on-disk format with random pixels (3x32x32), a grayscale
image folder (1x28x28) and a colour one (3x64x64). Each cell must end as a search that a user
would call finished: no exception, and a complete experiment directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cifar_fixture import use_fake_cifar_md5s, write_fake_cifar10
from PIL import Image

from search_spaces import SPACES

pytestmark = pytest.mark.slow

COMPLETE = ["trials.csv", "epochs.csv", "best.json", "provenance.json", "report.html",
            "optuna.db"]  # fmt: skip


@pytest.fixture(scope="module")
def shared_ray():
    """One in-process Ray for every cell: a search finds it running and leaves it so (about
    3-5 s saved a cell). Loopback only, private temp dir (conftest)."""
    import ray

    from tuner.search import keep_local_ray_on_loopback

    keep_local_ray_on_loopback()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)  # fmt: skip
    yield
    ray.shutdown()


def _image_folder(root: Path, side: int, mode: str, per_class: int = 40) -> Path:
    rng = np.random.default_rng(side)
    for name in ("circle", "square"):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            shape = (side, side) if mode == "L" else (side, side, 3)
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("matrix-data")
    cifar = write_fake_cifar10(base / "cifar", n_train=80, n_test=20)
    return {
        "digits": {"dataset": "digits"},
        "cifar10": {
            "dataset": "cifar10",
            "data_dir": str(base / "cifar"),
            "val_count": 20,
            "_md5s": cifar.md5s,
        },  # fmt: skip
        "gray28": {
            "dataset": "imagefolder",
            "val_count": 20,
            "data_dir": str(_image_folder(base / "gray28", 28, "L")),
        },  # fmt: skip
        "rgb64": {
            "dataset": "imagefolder",
            "val_count": 20,
            "data_dir": str(_image_folder(base / "rgb64", 64, "RGB")),
        },  # fmt: skip
    }


SHAPES = {"digits": (1, 8, 8), "cifar10": (3, 32, 32), "gray28": (1, 28, 28),
          "rgb64": (3, 64, 64)}  # fmt: skip


def _search(tmp_path, monkeypatch, name: str, data: dict, **options):
    from tuner import SearchConfig, search

    data = dict(data)
    md5s = data.pop("_md5s", None)
    if md5s is not None:
        use_fake_cifar_md5s(monkeypatch, md5s)
    cfg = SearchConfig(out=str(tmp_path), name=name, epochs=1, samples=2, **data, **options)
    result = search(cfg)
    exp = result.experiment_dir
    for file in COMPLETE:
        assert (exp / file).is_file(), f"{name}: no {file}"
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == cfg.samples and not result.interrupted
    assert set(trials["status"]) <= {"completed", "stopped", "diverged"}, trials["error"]
    best = json.loads((exp / "best.json").read_text())
    assert best["test_acc"] is not None and best["test_images"] > 0
    provenance = json.loads((exp / "provenance.json").read_text())
    return result, provenance


@pytest.mark.parametrize("space", sorted(SPACES))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_space_runs_on_every_dataset_shape(
    shared_ray, datasets, tmp_path, monkeypatch, space, shape
):
    result, provenance = _search(tmp_path, monkeypatch, f"{space}-{shape}", datasets[shape],
                                 space=space)  # fmt: skip
    assert tuple(provenance["dataset"]["input_shape"]) == SHAPES[shape]


@pytest.mark.parametrize("space", sorted(SPACES))
@pytest.mark.parametrize(
    "options",
    [
        {"searcher": "random"},
        {"scheduler": "fifo"},
        {"objectives": "val_acc:max,params:min"},
    ],  # fmt: skip
    ids=["random", "fifo", "multi-objective"],
)
def test_every_searcher_scheduler_and_objective_kind_runs_on_every_space(
    shared_ray, datasets, tmp_path, monkeypatch, space, options
):
    result, _ = _search(tmp_path, monkeypatch, f"{space}-x", datasets["digits"], space=space,
                        **options)  # fmt: skip
    if "objectives" in options:
        assert result.best and result.best.get("pareto_front")
    if options.get("scheduler") == "fifo":
        assert not (result.experiment_dir / "asha_state.json").exists()
