"""`tuner train params.json --dataset X` trains one configuration file on the dataset named
(README, "Retrain a configuration"): a trial's params.json, on digits and on an image folder of
another shape and other classes, one epoch each, through the command line. No Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tuner import load_model
from tuner.cli import main
from tuner.experiment import EPOCHS_CSV, MODEL_FILE, PROVENANCE_JSON, RETRAIN_JSON

# A trial's params.json as a search leaves it: the flat config, its epoch budget and seed.
PARAMS = {
    "n_blocks": 1, "channels_b0": 8, "batch_norm": True, "fc_layers": 0, "optimizer": "adam",
    "lr": 0.01, "batch_size": 32, "epochs": 4, "seed": 7,
}  # fmt: skip
CLASSES = ("ant", "bee", "cow")


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache-home"
    monkeypatch.setenv("TUNER_DATA_DIR", str(home))
    return home


@pytest.fixture
def params(tmp_path: Path) -> Path:
    path = tmp_path / "trial_0003_abc" / "params.json"
    path.parent.mkdir()
    path.write_text(json.dumps(PARAMS))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three classes of 12x12 RGB images, one colour each with noise."""
    rng = np.random.default_rng(0)
    root = tmp_path / "pics"
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for k in range(30):
            pixels = rng.integers(0, 60, size=(12, 12, 3))
            pixels[..., c] += 180
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{k}.png")
    return root


def _train(params: Path, out: Path, *dataset: str) -> Path:
    argv = ["train", str(params), *dataset, "--epochs", "1", "--threads", "1",
            "--out", str(out), "--name", "run"]  # fmt: skip
    assert main(argv) == 0
    return out / "run"


def test_a_params_json_trains_on_digits(params, tmp_path, capsys):
    exp = _train(params, tmp_path / "out", "--dataset", "digits")
    output = capsys.readouterr().out
    assert "on digits (1, 8, 8)" in output
    provenance = json.loads((exp / PROVENANCE_JSON).read_text())
    assert provenance["dataset"]["name"] == "digits"
    assert provenance["dataset"]["input_shape"] == [1, 8, 8]
    assert provenance["source"]["config_file"] == str(params.resolve())
    summary = json.loads((exp / RETRAIN_JSON).read_text())
    assert summary["epochs"] == 1 and len(summary["runs"]) == 1
    assert summary["config"]["lr"] == PARAMS["lr"]
    model = torch.load(exp / MODEL_FILE, weights_only=True)
    assert model["input_shape"] == [1, 8, 8] and len(model["classes"]) == 10
    assert (exp / EPOCHS_CSV).read_text().count("\n") == 2  # header and one epoch


def test_a_params_json_trains_on_an_image_folder(params, folder, tmp_path, capsys):
    exp = _train(params, tmp_path / "out", "--dataset", "imagefolder", "--data-dir",
                 str(folder), "--image-size", "8")  # fmt: skip
    provenance = json.loads((exp / PROVENANCE_JSON).read_text())
    dataset = provenance["dataset"]
    assert dataset["name"] == "imagefolder" and dataset["classes"] == list(CLASSES)
    assert dataset["input_shape"] == [3, 8, 8]
    assert dataset["train"] + dataset["val"] + dataset["test"] == 3 * 30
    summary = json.loads((exp / RETRAIN_JSON).read_text())
    assert summary["epochs"] == 1 and 0.0 <= summary["runs"][0]["test_acc"] <= 1.0
    model = load_model(exp / MODEL_FILE)
    assert model.classes == CLASSES and model.input_shape == (3, 8, 8)
    picture = folder / "bee" / "0.png"
    assert model.predict([picture]).classes[0] in CLASSES
    assert "imagefolder (3, 8, 8)" in capsys.readouterr().out
