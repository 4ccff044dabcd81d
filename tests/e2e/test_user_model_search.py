"""Your own network, end to end: a build() in a temporary .py file, searched with TPE + ASHA on
digits under a size budget, the driver killed with SIGKILL and resumed, confirmed over seeds,
reported, written as model.pt, exported to ONNX and loaded back. Real Ray, real training.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_fixture import Child, run_here, tail, tuner
from study_fixture import journal_study

from tuner import load_model
from tuner.data import load_dataset

pytestmark = pytest.mark.slow

NET = '''
"""A tiny network of the user's own, and the space that searches it."""
from torch import nn


def build(params, input_shape, num_classes):
    c, h, w = input_shape
    width, depth = params["width"], params["depth"]
    layers = [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)]
    return nn.Sequential(*layers)


def space(trial):
    trial.suggest_int("width", 8, 64, log=True)
    trial.suggest_int("depth", 1, 3)
    trial.suggest_float("lr", 3e-3, 3e-2, log=True)
    return {"optimizer": "adam", "batch_size": 32}
'''

MAX_PARAMS = 20_000  # depth 3 at width 64 has ~75k: some of the space is over the budget


def epochs_on_disk(exp: Path) -> int:
    return sum(
        sum(1 for line in f.read_text().splitlines() if line.strip().endswith("}"))
        for f in exp.glob("trial_*/result.json")
    )


@pytest.fixture(scope="module")
def searched(tmp_path_factory, shared_ray):
    """The search, killed once after it trained something and resumed to the end."""
    work = tmp_path_factory.mktemp("user-model")
    (work / "net.py").write_text(NET)
    exp = work / "out" / "mine"
    command = tuner(
        "search", "--model", "net.py:build", "--space", "net.py:space", "--dataset", "digits",
        "--samples", "4", "--max-trials", "4", "--epochs", "3", "--grace-period", "1",
        "--seed", "3",
        "--concurrency", "2", "--max-params", str(MAX_PARAMS), "--confirm-top", "2",
        "--confirm-seeds", "2",
        "--out", "out", "--name", "mine",
    )  # fmt: skip
    # Relative paths, from the user's directory: trials run elsewhere, so --model must be
    # resolved before they start.
    child = Child(command, work / "search.log", cwd=work)
    child.wait_for(lambda: epochs_on_disk(exp) >= 3, "3 epochs on disk")  # fails if it ended
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait()
    resumed = run_here("resume", str(exp), cwd=work)
    assert resumed.returncode == 0, tail(resumed.stderr)
    return work, exp, resumed.stdout


def test_the_search_trains_the_users_network_within_the_budget(searched):
    work, exp, _ = searched
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 4 and set(trials["status"]) <= {"completed", "stopped"}
    # Every trial built the user's network from the absolute path, with its own keys.
    assert set(trials["config/model"]) == {f"{(work / 'net.py').resolve()}:build"}
    for _, row in trials.iterrows():
        width, depth = int(row["config/width"]), int(row["config/depth"])
        # a 3x3 conv from 1 channel, depth - 1 convs of width -> width, the linear classifier
        expected = 10 * width + (depth - 1) * (9 * width * width + width) + 10 * width + 10
        assert row["params"] == expected
        assert row["params"] <= MAX_PARAMS
    study = journal_study(exp, "mine")
    trained = [t for t in study.trials if not t.user_attrs.get("rejected")]
    assert len(trained) == 4 and "RUNNING" not in {t.state.name for t in study.trials}
    assert all({"width", "depth", "lr"} == set(t.params) for t in study.trials)
    provenance = json.loads((exp / "provenance.json").read_text())
    assert provenance["model_source"]["path"] == str((work / "net.py").resolve())
    assert len(provenance["resumed"]) == 1


def test_the_report_and_the_confirm_stage_cover_the_users_network(searched):
    _, exp, stdout = searched
    best = json.loads((exp / "best.json").read_text())
    assert best["confirm"]["winner"] is not None and "Over 2 fresh seeds" in stdout
    html = (exp / "report.html").read_text()
    assert "network <b>" in html and "net.py:build" in html
    assert "Is the winner really better?" in html


def test_model_file_records_the_build_and_reproduces_its_test_accuracy(searched, tmp_path):
    work, exp, _ = searched
    raw = torch.load(exp / "model.pt", weights_only=True)
    assert raw["build"]["spec"] == f"{(work / 'net.py').resolve()}:build"
    assert len(raw["build"]["source"]["sha256"]) == 64 and raw["arch"] is None
    bundle = load_dataset("digits")
    model = load_model(exp)
    accuracy = float(np.mean(np.asarray(model.predict(bundle.test.x).indices) == bundle.test.y))
    best = json.loads((exp / "best.json").read_text())
    assert accuracy == raw["test_acc"] == best["model"]["test_acc"]

    # The code moved: the model loads with --build pointing at its new place.
    moved = tmp_path / "elsewhere.py"
    moved.write_text(NET)
    copy = tmp_path / "copy.pt"
    copy.write_bytes((exp / "model.pt").read_bytes())
    (work / "net.py").rename(work / "net.py.away")
    try:
        with pytest.raises(Exception, match="pass build="):
            load_model(copy)
        again = load_model(copy, build=f"{moved}:build")
        assert (again.predict(bundle.test.x).indices == model.predict(bundle.test.x).indices).all()
        target = tmp_path / "m.onnx"
        proc = run_here("export", str(copy), "--format", "onnx", "-o", str(target), "--build",
                        f"{moved}:build")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    finally:
        (work / "net.py.away").rename(work / "net.py")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    batch = torch.tensor(bundle.test.x).float() / 255
    got = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
    assert float(np.mean(got.argmax(1) == bundle.test.y)) == raw["test_acc"]


def test_a_build_that_fails_in_the_dry_run_is_one_line_and_writes_nothing(tmp_path, shared_ray):
    (tmp_path / "net.py").write_text(
        NET.replace(
            'width, depth = params["width"], params["depth"]',
            'width, depth = params["width"], params["deep"]',
        )
    )
    proc = run_here("search", "--model", "net.py:build", "--space", "net.py:space", "--samples",
                    "2", "--out", "out", "--name", "broken", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    error = [line for line in proc.stderr.splitlines() if line.startswith("tuner: error:")]
    assert len(error) == 1 and f"--model {tmp_path / 'net.py'}:build failed for width=" in error[0]
    assert error[0].endswith("KeyError: 'deep'") and "at 1x8x8" in error[0]
    assert not (tmp_path / "out" / "broken").exists()
