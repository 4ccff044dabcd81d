"""Every built-in space on every built-in dataset shape, and every searcher, scheduler and
objective kind on every space: real searches (real Ray, Optuna, torch), one or two trials of
one epoch each, all sharing one in-process Ray.

Shapes: digits (1x8x8), CIFAR-10's on-disk format with random pixels (3x32x32), a grayscale
image folder (1x28x28) and a colour one (3x48x48). Each cell must end as a search that a user
would call finished: no exception, and a complete experiment directory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cifar_fixture import use_fake_cifar_md5s, write_fake_cifar10
from PIL import Image
from torchvision_fixture import DATASETS as TORCHVISION_SETS
from torchvision_fixture import SHAPES as TORCHVISION_SHAPES
from torchvision_fixture import accept_fake_md5s, write_fake

from search_spaces import SPACES

pytestmark = pytest.mark.slow

COMPLETE = ["trials.csv", "epochs.csv", "best.json", "provenance.json", "report.html",
            "optuna.journal"]  # fmt: skip


# Few images (16 a shape): the cells prove that every space builds, trains and reports on
# every shape, not that it learns. A resnet_cnn baseline (4.7M parameters) trained 17 s an
# epoch on 46 images of 64x64 on CI's 2 cores; 48x48 is still a shape no built-in dataset has,
# at about half the multiply-adds.
def _image_folder(root: Path, side: int, mode: str, per_class: int = 8) -> Path:
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
    cifar = write_fake_cifar10(base / "cifar", n_train=30, n_test=10)
    return {
        "digits": {"dataset": "digits"},
        "cifar10": {
            "dataset": "cifar10",
            "data_dir": str(base / "cifar"),
            "val_count": 6,
            "_md5s": cifar.md5s,
        },  # fmt: skip
        "gray28": {
            "dataset": "imagefolder",
            "val_count": 6,
            "data_dir": str(_image_folder(base / "gray28", 28, "L")),
        },  # fmt: skip
        "rgb48": {
            "dataset": "imagefolder",
            "val_count": 6,
            "data_dir": str(_image_folder(base / "rgb48", 48, "RGB")),
        },  # fmt: skip
    }


SHAPES = {"digits": (1, 8, 8), "cifar10": (3, 32, 32), "gray28": (1, 28, 28),
          "rgb48": (3, 48, 48)}  # fmt: skip


def _search(tmp_path, monkeypatch, name: str, data: dict, **options):
    from tuner import SearchConfig, search

    data = dict(data)
    md5s = data.pop("_md5s", None)
    if md5s is not None:
        use_fake_cifar_md5s(monkeypatch, md5s)
    # One trial at a time: the cells are about spaces, shapes and kinds, not concurrency, and
    # a second trial process (torch, Ray's trainable: ~3 s of CI's CPU) would be started only
    # to train one epoch; the cells beside them with concurrency as their subject keep it.
    options = {"epochs": 1, "samples": 2, "concurrency": 1, **options}
    cfg = SearchConfig(no_confirm=True, out=str(tmp_path), name=name, **data, **options)
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


# Every space on every input shape, each cell with another of the searchers, schedulers and
# objective kinds, so that every space meets each of them once (a search each, not one for
# every combination: CI's time): TPE + ASHA on one objective, the random searcher, FIFO, and
# several objectives (the Pareto front, every objective kind among them).
CELLS = {
    ("seed_cnn", "digits"): {},
    ("seed_cnn", "cifar10"): {"searcher": "random"},
    ("seed_cnn", "gray28"): {"scheduler": "fifo", "objectives": "val_loss:min,latency:min"},
    ("seed_cnn", "rgb48"): {"objectives": "val_acc:max,params:min"},
    ("resnet_cnn", "digits"): {"objectives": "macs:min,train_time:min"},
    ("resnet_cnn", "cifar10"): {"scheduler": "fifo"},
    ("resnet_cnn", "gray28"): {},
    ("resnet_cnn", "rgb48"): {"searcher": "random", "objectives": "val_acc:max,params:min"},
}


def test_the_cells_cover_every_space_shape_and_kind():
    assert {space for space, _ in CELLS} == set(SPACES)
    for space in SPACES:
        assert {shape for s, shape in CELLS if s == space} == set(SHAPES)
        kinds = [CELLS[space, shape] for shape in SHAPES]
        assert {} in kinds  # the defaults: TPE, ASHA, one objective
        assert any(o.get("searcher") == "random" for o in kinds)
        assert any(o.get("scheduler") == "fifo" for o in kinds)
        assert any("objectives" in o for o in kinds)
    named = {o.split(":")[0] for c in CELLS.values() for o in c.get("objectives", "").split(",")}
    assert {"val_acc", "val_loss", "params", "macs", "latency", "train_time"} <= named


ONE = sorted(cell for cell, options in CELLS.items() if "objectives" not in options)
SEVERAL = sorted(cell for cell, options in CELLS.items() if "objectives" in options)


def _cell(shared_ray, datasets, tmp_path, monkeypatch, space, shape):
    options = CELLS[space, shape]
    result, provenance = _search(tmp_path, monkeypatch, f"{space}-{shape}", datasets[shape],
                                 space=space, **options)  # fmt: skip
    assert tuple(provenance["dataset"]["input_shape"]) == SHAPES[shape]
    assert provenance["config"]["space"] == space
    assert (result.experiment_dir / "asha_state.json").exists() == (
        options.get("scheduler") != "fifo")  # fmt: skip
    return result


@pytest.mark.parametrize(("space", "shape"), ONE, ids=[f"{a}-{b}" for a, b in ONE])
def test_every_space_runs_on_every_dataset_shape(
    shared_ray, datasets, tmp_path, monkeypatch, space, shape
):
    result = _cell(shared_ray, datasets, tmp_path, monkeypatch, space, shape)
    assert result.best["trial_index"] in set(result.trials["trial_index"])


@pytest.mark.parametrize(("space", "shape"), SEVERAL, ids=[f"{a}-{b}" for a, b in SEVERAL])
def test_every_space_runs_on_every_dataset_shape_with_several_objectives(
    shared_ray, datasets, tmp_path, monkeypatch, space, shape
):
    result = _cell(shared_ray, datasets, tmp_path, monkeypatch, space, shape)
    wanted = CELLS[space, shape]["objectives"].split(",")
    names = [o["name"] for o in result.best["objectives"]]
    assert names == [o.split(":")[0] for o in wanted]
    assert result.best["pareto_front"]
    for point in result.best["pareto_front"]:
        assert set(point["objectives"]) == set(names)
        assert all(math.isfinite(v) for v in point["objectives"].values())


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_each_torchvision_dataset_is_searched_to_a_finished_experiment(
    shared_ray, tmp_path, monkeypatch, name
):
    """MNIST, Fashion-MNIST, CIFAR-100 and SVHN, a few dozen images each in their real formats,
    read by torchvision's own readers (no download), through a search to its report."""
    fake = write_fake(name, tmp_path / "data")
    accept_fake_md5s(monkeypatch, fake)
    data = {"dataset": name, "data_dir": str(tmp_path / "data"), "val_count": 8}
    _, provenance = _search(tmp_path, monkeypatch, name, data, space="seed_cnn", samples=1)
    assert tuple(provenance["dataset"]["input_shape"]) == TORCHVISION_SHAPES[name]
    assert provenance["dataset"]["name"] == name


def smoothed_space(trial, input_size=8):
    """A small net trained with heavy label smoothing: its training loss is not plain CE."""
    trial.suggest_categorical("channels_b0", [8])
    return {"n_blocks": 1, "fc_layers": 0, "batch_norm": True, "hflip": False,
            "optimizer": "adam", "lr": 3e-3, "label_smoothing": 0.3}  # fmt: skip


def test_validation_loss_stays_plain_cross_entropy_under_label_smoothing(
    shared_ray, datasets, tmp_path, monkeypatch
):
    """Trials compare on validation loss, so it must not depend on a trial's label smoothing:
    recomputed from the kept weights, the reported best_val_loss is plain cross entropy."""
    import torch

    import search_spaces
    from search_spaces import SearchSpace
    from tuner.data import load_dataset
    from tuner.train.checkpoints import load_best_weights
    from tuner.train.config import TrainConfig
    from tuner.train.loader import DeviceLoader
    from tuner.train.scoring import latest_checkpoint
    from tuner.train.trial import build_model, normalization
    from tuner.train.trial_data import TrialData

    space = SearchSpace("smoothed", "label smoothing 0.3", smoothed_space, baseline=None)
    monkeypatch.setitem(search_spaces.SPACES, "smoothed", space)
    result, _ = _search(tmp_path, monkeypatch, "smoothed", datasets["digits"], space="smoothed",
                        samples=1)  # fmt: skip
    row = result.trials.iloc[0]
    trial_dir = result.experiment_dir / row["trial_dir"]
    config = json.loads((trial_dir / "params.json").read_text())
    cfg = TrainConfig.from_dict(config)
    assert cfg.label_smoothing == 0.3
    data = TrialData.from_bundle(load_dataset("digits"))
    model = build_model(cfg, data, torch.device("cpu"))
    weights, kept = load_best_weights(latest_checkpoint(trial_dir))
    model.load_state_dict(weights)
    model.eval()
    mean, std = normalization(cfg, data)
    val = DeviceLoader(data.val.x, data.val.y, batch_size=1024,
                       device=torch.device("cpu"), mean=mean, std=std, shuffle=False)  # fmt: skip
    logits, labels = zip(*[(model(x), y) for x, y in val], strict=True)
    logits, labels = torch.cat(logits), torch.cat(labels)
    plain = torch.nn.functional.cross_entropy(logits, labels).item()
    smoothed = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.3).item()
    assert kept["val_loss"] == pytest.approx(plain, rel=1e-4)
    assert row["best_val_loss"] == pytest.approx(plain, rel=1e-4)
    assert abs(smoothed - plain) > 0.05  # the two would be told apart


def test_max_macs_refuses_configurations_over_the_budget_and_concurrency_limits_the_trials(
    shared_ray, datasets, tmp_path, monkeypatch
):
    """--max-macs refuses what is over it before training. And two CPUs would run two trials
    at once; --concurrency 1 must keep it to one, counted by the driver from Tune's start and
    end events (provenance.json)."""
    budget = 60_000
    result, provenance = _search(tmp_path, monkeypatch, "macs", datasets["digits"],
                                 space="seed_cnn", samples=3, max_macs=budget,
                                 concurrency=1)  # fmt: skip
    rejected = pd.read_csv(result.experiment_dir / "rejected.csv")
    assert len(rejected) >= 1 and (rejected["macs"] > budget).all()  # the lab's net among them
    assert (result.trials["macs"] <= budget).all()
    assert provenance["peak_concurrent_trials"] == [1]
