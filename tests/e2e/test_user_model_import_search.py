"""`--model package.module:build` end to end (README, "Your own network"): a network in a
package on PYTHONPATH, searched on digits (2 trials x 1 epoch, no confirm stage), every trial
built from the import path as given (not turned into a file path), model.pt recording that
import path and no code, and tuner.load_model importing build from there again. Real Ray, in
the search's own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from tuner import load_model
from tuner.data import load_dataset
from tuner.deploy.model_file import ModelFileError

pytestmark = pytest.mark.slow

NET = """
from torch import nn


def build(params, input_shape, num_classes):
    c, width = input_shape[0], params["width"]
    return nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(width, num_classes))


def space(trial):
    trial.suggest_int("width", 4, 16, log=True)
    trial.suggest_float("lr", 3e-3, 3e-2, log=True)
    return {"optimizer": "adam", "batch_size": 64}
"""
SPEC = "tinynets.convs:build"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    work = tmp_path_factory.mktemp("import-model")
    package = work / "lib" / "tinynets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "convs.py").write_text(NET)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(work / "lib"), *filter(None, [os.environ.get("PYTHONPATH")])])}  # fmt: skip
    command = [sys.executable, "-m", "tuner.cli", "search", "--model", SPEC,
               "--space", "lib/tinynets/convs.py:space", "--dataset", "digits", "--samples",
               "2", "--epochs", "1", "--no-confirm", "--report-every", "0",
               "--out", "out", "--name", "imported"]  # fmt: skip
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                          timeout=540)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, work / "out" / "imported"


def test_every_trial_built_the_network_from_the_import_path(searched):
    _, exp = searched
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"completed"}
    assert set(trials["config/model"]) == {SPEC}  # as given: an import, not a file path
    for _, row in trials.iterrows():
        width = int(row["config/width"])
        assert row["params"] == (9 * width + width) + (10 * width + 10)  # conv 1->w, linear
    provenance = json.loads((exp / "provenance.json").read_text())
    assert provenance["model_source"] == {"import": SPEC}


def test_the_model_file_records_the_import_and_loads_from_it(searched, monkeypatch):
    work, exp = searched
    raw = torch.load(exp / "model.pt", weights_only=True)
    assert raw["build"]["spec"] == SPEC and raw["arch"] is None
    with pytest.raises(ModelFileError, match="pass build="):  # tinynets is not importable here
        load_model(exp)
    monkeypatch.syspath_prepend(str(work / "lib"))
    model = load_model(exp)
    test = load_dataset("digits").test
    accuracy = float(np.mean(np.asarray(model.predict(test.x).indices) == test.y))
    best = json.loads((exp / "best.json").read_text())
    assert accuracy == raw["test_acc"] == best["model"]["test_acc"]
