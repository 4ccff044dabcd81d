"""A model file or checkpoint whose pickle carries code is refused, and the code never runs
(README, "Security": both are loaded with torch.load(weights_only=True)). The payload here is
a live one: loaded the unsafe way it creates a marker directory; `tuner predict`, `tuner
export`, tuner.load_model and the checkpoint readers must refuse the file (one line and exit 2
on the command line) and leave no marker. No Ray."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tuner import load_model
from tuner.cli import main
from tuner.deploy.model_file import ModelFileError, model_record, write_model_file
from tuner.experiment import CHECKPOINT_FILE, MODEL_FILE
from tuner.train.checkpoints import load_best_weights, newest_readable, read_state
from tuner.train.config import TrainConfig
from tuner.train.model import ConvNet

TINY = {"n_blocks": 1, "channels_b0": 4, "fc_layers": 0}


class Payload:
    """Unpickled, it calls os.mkdir(marker): code of the file's author, run by whoever loads."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _record() -> dict:
    net = ConvNet(TrainConfig.from_dict(TINY).arch, 1, 3, 8)
    return model_record(config=TINY, state_dict=net.state_dict(), input_shape=(1, 8, 8),
                        classes=["a", "b", "c"], mean=[0.5], std=[0.5])  # fmt: skip


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PAYLOAD-RAN"


@pytest.fixture
def evil(tmp_path: Path, marker: Path) -> Path:
    """An experiment directory whose model.pt is a valid model file plus the payload."""
    exp = tmp_path / "exp"
    exp.mkdir()
    record = _record()
    record["provenance"] = {"note": Payload(marker)}
    torch.save(record, exp / MODEL_FILE)
    # The payload is live: an unsafe load runs it (then the marker is cleared again).
    torch.load(exp / MODEL_FILE, weights_only=False)
    assert marker.is_dir()
    marker.rmdir()
    return exp


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "digit.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path)
    return path


def test_the_same_file_without_the_payload_loads(tmp_path, image, capsys):
    """The control: everything but the payload is a model file the commands accept."""
    write_model_file(tmp_path / "ok.pt", _record())
    assert main(["predict", str(tmp_path / "ok.pt"), str(image)]) == 0
    assert capsys.readouterr().out.startswith(f"{image}: ")


@pytest.mark.parametrize("given", ["file", "directory"])
def test_predict_refuses_it_in_one_line(evil, marker, image, capsys, given):
    source = evil / MODEL_FILE if given == "file" else evil
    assert main(["predict", str(source), str(image)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "is not a cnn-tuner model file" in captured.err
    assert "weights_only loading refuses" in captured.err
    assert not marker.exists()


def test_export_refuses_it_in_one_line_and_writes_nothing(evil, marker, tmp_path, capsys):
    target = tmp_path / "m.torchscript.pt"
    assert main(["export", str(evil), "--format", "torchscript", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weights_only loading refuses" in err
    assert not marker.exists() and not target.exists()


def test_load_model_raises_and_runs_nothing(evil, marker):
    with pytest.raises(ModelFileError, match="weights_only loading refuses"):
        load_model(evil / MODEL_FILE)
    assert not marker.exists()


def test_a_checkpoint_carrying_code_is_passed_over_and_never_run(tmp_path, marker):
    trial = tmp_path / "trial_0000_abc"
    good, bad = trial / "checkpoint_000000", trial / "checkpoint_000001"
    for checkpoint in (good, bad):
        checkpoint.mkdir(parents=True)
    state = {"best_state": _record()["state_dict"], "best": {"val_loss": 1.0}, "epoch": 1}
    torch.save(state, good / CHECKPOINT_FILE)
    torch.save({**state, "epoch": 2, "extra": Payload(marker)}, bad / CHECKPOINT_FILE)

    assert read_state(bad) is None
    chosen, loaded, skipped = newest_readable(trial)
    assert chosen == good and loaded["epoch"] == 1 and skipped == [bad]
    with pytest.raises(Exception, match="Weights only load failed"):
        load_best_weights(bad)
    assert not marker.exists()
