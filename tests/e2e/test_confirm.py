"""The confirm stage end to end (real Ray, real training on digits): the top configurations
and the baseline retrained over fresh seeds as Tune trials of their own, the winner by its mean,
the intervals, model.pt and `tuner predict` on image files, `tuner confirm`, and an interrupted
stage continued by `tuner resume`."""

from __future__ import annotations

import json
import math
import signal
import statistics
import subprocess
import sys
import time

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from PIL import Image

from tuner import load_model
from tuner.data import load_dataset
from tuner.driver.config import SearchConfig
from tuner.driver.run import search

pytestmark = pytest.mark.slow

T95 = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305}  # two-sided 95 % Student t quantiles


def tuner(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuner.cli", *args]


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory):
    out = tmp_path_factory.mktemp("confirm")
    cfg = SearchConfig(dataset="digits", samples=5, epochs=3, seed=2, confirm_top=2,
                       confirm_seeds=3, concurrency=2, out=str(out), name="c")  # fmt: skip
    result = search(cfg)
    return result


def test_the_stage_trains_k_x_s_runs_apart_from_the_study(confirmed):
    exp = confirmed.experiment_dir
    runs = pd.read_csv(exp / "confirm.csv")
    best = confirmed.best
    stage = best["confirm"]
    # The top 2 by validation, plus the lab's baseline (trial 0) when it is not among them.
    top = (
        confirmed.trials[~confirmed.trials["is_baseline"] & (confirmed.trials["best_epoch"] >= 1)]
        .sort_values(["best_val_acc", "best_val_loss"], ascending=[False, True])
        .head(2)["trial_index"]
        .tolist()
    )
    assert stage["trials"] == [*top, 0]
    assert stage["seeds"] == [1000, 1001, 1002]
    assert len(runs) == 3 * 3 and set(runs["status"]) == {"done"}
    assert sorted(zip(runs["trial_index"], runs["seed"], strict=True)) == sorted(
        (t, s) for t in [*top, 0] for s in [1000, 1001, 1002]
    )
    # Each run is a Tune trial of DIR/confirm/ that trained the full budget from scratch.
    run_dirs = sorted((exp / "confirm").glob("run_*"))
    assert len(run_dirs) == 9
    for run_dir in run_dirs:
        epochs = [json.loads(line)["epoch"] for line in (run_dir / "result.json").open()]
        assert epochs == [1, 2, 3], run_dir
        params = json.loads((run_dir / "params.json").read_text())["confirm"]
        assert params["config"]["seed"] == params["seed"] and params["config"]["epochs"] == 3
    # Not Optuna trials: the study holds the search's 5 only; ASHA's rungs know only those.
    study = optuna.load_study(study_name="c", storage=f"sqlite:///{exp / 'optuna.db'}")
    assert len(study.trials) == 5
    rungs = json.loads((exp / "asha_state.json").read_text())
    assert "confirm" not in json.dumps(rungs)


def test_the_winner_is_the_best_mean_and_the_intervals_are_students(confirmed):
    stage = confirmed.best["confirm"]
    runs = pd.read_csv(confirmed.experiment_dir / "confirm.csv")
    means = runs[~runs["is_baseline"]].groupby("trial_index")["val_acc"].mean()
    assert stage["winner"] == int(means.idxmax())
    for c in stage["configs"]:
        mine = runs[runs["trial_index"] == c["trial_index"]].sort_values("seed")
        for split, column in (("val", "val_acc"), ("test", "test_acc")):
            values = mine[column].tolist()
            assert [r[f"{split}_acc"] for r in c["per_seed"]] == pytest.approx(values)
            mean, sd = statistics.fmean(values), statistics.stdev(values)
            half = T95[2] * sd / math.sqrt(3)
            assert c[split]["mean"] == pytest.approx(mean)
            assert c[split]["low"] == pytest.approx(mean - half)
            assert c[split]["high"] == pytest.approx(mean + half)
    # The difference to the runner-up: Welch's interval, by hand.
    d = stage["vs_runner_up"]
    a = runs[runs["trial_index"] == stage["winner"]]["val_acc"].to_numpy()
    b = runs[runs["trial_index"] == d["trial_index"]]["val_acc"].to_numpy()
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    assert d["val"]["diff"] == pytest.approx(a.mean() - b.mean())
    if va + vb > 0:
        from scipy.stats import t

        df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
        half = t.ppf(0.975, df) * math.sqrt(va + vb)
        assert d["val"]["low"] == pytest.approx(a.mean() - b.mean() - half)
        assert d["val"]["tied"] == (d["val"]["low"] <= 0 <= d["val"]["high"])
        if d["val"]["tied"]:
            assert "tied with trial" in stage["verdict"]
    assert stage["vs_baseline"]["trial_index"] == 0
    assert f"trial {stage['winner']}" in stage["verdict"]


def test_model_file_reproduces_the_recorded_test_accuracy(confirmed):
    exp = confirmed.experiment_dir
    raw = torch.load(exp / "model.pt", weights_only=True)
    assert raw["format_version"] == 1 and raw["input_shape"] == [1, 8, 8]
    assert raw["classes"] == [str(i) for i in range(10)]
    model_info = confirmed.best["model"]
    assert model_info["from"] == "confirm"
    assert model_info["trial_index"] == confirmed.best["confirm"]["winner"]
    bundle = load_dataset("digits")
    model = load_model(exp / "model.pt")
    predicted = model.predict(bundle.test.x)
    accuracy = float(np.mean(np.asarray(predicted.indices) == bundle.test.y))
    assert accuracy == model_info["test_acc"] == raw["test_acc"]
    # The weights are those of the winner's run chosen on validation.
    runs = pd.read_csv(exp / "confirm.csv")
    mine = runs[runs["trial_index"] == model_info["trial_index"]]
    assert model_info["val_acc"] == mine["val_acc"].max()


def test_tuner_predict_on_png_and_jpeg_files(confirmed, tmp_path):
    bundle = load_dataset("digits")
    paths = []
    for i in range(4):
        image = Image.fromarray(bundle.test.x[i, 0])  # 8x8 grayscale, as the dataset holds it
        path = tmp_path / (f"d{i}.png" if i % 2 == 0 else f"d{i}.jpg")
        image.save(path)
        paths.append(str(path))
    Image.fromarray(bundle.test.x[0, 0]).convert("RGB").resize((24, 24)).save(tmp_path / "big.png")
    paths.append(str(tmp_path / "big.png"))
    model_file = str(confirmed.experiment_dir / "model.pt")
    proc = subprocess.run(tuner("predict", model_file, *paths, "--top", "2"),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(paths)
    png_classes = load_model(model_file).predict([paths[0], paths[2]]).classes
    assert png_classes == load_model(model_file).predict(bundle.test.x[[0, 2]]).classes
    for line, path in zip(lines, paths, strict=True):
        assert line.startswith(path) and line.count(",") == 1  # two classes


def test_tuner_confirm_on_a_search_without_the_stage(tmp_path):
    cfg = SearchConfig(dataset="digits", samples=3, epochs=2, seed=4, no_confirm=True,
                       scheduler="fifo", out=str(tmp_path), name="later")  # fmt: skip
    first = search(cfg)
    exp = first.experiment_dir
    assert "confirm" not in first.best and first.best["model"]["from"] == "search"
    assert not (exp / "confirm").exists()
    before = (exp / "best.json").read_bytes()
    bad = subprocess.run(tuner("confirm", str(exp), "--confirm-top", "0"),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert (exp / "best.json").read_bytes() == before and not (exp / "confirm").exists()

    # Started, interrupted by one Ctrl-C once a run has reported, then continued by resume.
    proc = subprocess.Popen(tuner("confirm", str(exp), "--confirm-top", "1", "--confirm-seeds",
                                  "2"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not any(f.stat().st_size for f in (exp / "confirm").glob("run_*/result.json")):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "no confirm run reported"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    runs = pd.read_csv(exp / "confirm.csv")
    if proc.returncode == 130:  # stopped with runs left (they may all have ended first)
        assert "tuner resume" in out
        assert (runs["status"] != "done").any()
        resumed = subprocess.run(tuner("resume", str(exp)), capture_output=True, text=True,
                                 timeout=600)  # fmt: skip
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    else:
        assert proc.returncode == 0, out[-3000:]
    runs = pd.read_csv(exp / "confirm.csv")
    best = json.loads((exp / "best.json").read_text())
    # Trial 0 is the baseline, so the stage is the best searched trial plus the baseline.
    assert len(runs) == 4 and set(runs["status"]) == {"done"}
    assert best["confirm"]["complete"] and best["model"]["from"] == "confirm"
    for run_dir in (exp / "confirm").glob("run_*"):  # no epoch trained twice
        rows = [json.loads(line) for line in (run_dir / "result.json").open()]
        assert sorted({r["epoch"] for r in rows}) == [1, 2], run_dir
        # A run restored at its last epoch reports that epoch again (so that Tune hears how it
        # ended), but trains it once: every report of an epoch is of the same training.
        for epoch in (1, 2):
            started = {r["epoch_started_at"] for r in rows if r["epoch"] == epoch}
            assert len(started) == 1, (run_dir, epoch, started)
    report = (exp / "report.html").read_text()
    assert "Is the winner really better?" in report and best["confirm"]["verdict"][:40] in report


def test_tuner_train_retrains_the_winner_on_train_and_val(confirmed, tmp_path):
    exp = confirmed.experiment_dir
    proc = subprocess.run(
        tuner("train", str(exp), "--train-on", "trainval", "--seeds", "2", "--epochs", "2",
              "--out", str(tmp_path), "--name", "again"),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "epoch 2/2" in proc.stdout and "left" in proc.stdout  # the progress lines
    out = tmp_path / "again"
    summary = json.loads((out / "retrain.json").read_text())
    winner = confirmed.best["confirm"]["winner"]
    winner_dir = next(exp.glob(f"trial_{winner:04d}_*"))
    searched = json.loads((winner_dir / "params.json").read_text())
    assert summary["config"] == {k: v for k, v in searched.items() if k != "seed"} | {"epochs": 2}
    assert summary["train_on"] == "trainval" and len(summary["runs"]) == 2
    assert [r["seed"] for r in summary["runs"]] == [2000, 2001]
    assert all(r["val_acc"] is None for r in summary["runs"])
    tests = [r["test_acc"] for r in summary["runs"]]
    half = T95[1] * statistics.stdev(tests) / math.sqrt(2)
    assert summary["test"]["mean"] == pytest.approx(statistics.fmean(tests))
    assert summary["test"]["low"] == pytest.approx(statistics.fmean(tests) - half)
    epochs = pd.read_csv(out / "epochs.csv")
    assert len(epochs) == 2 * 2 and epochs["val_acc"].isna().all()
    # Its model file scores what it says on the test split, with the same loader as a search's.
    bundle = load_dataset("digits")
    model = load_model(out / "model.pt")
    accuracy = float(np.mean(np.asarray(model.predict(bundle.test.x).indices) == bundle.test.y))
    assert accuracy == torch.load(out / "model.pt", weights_only=True)["test_acc"]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_models_match_pytorch(confirmed, tmp_path, fmt):
    exp = confirmed.experiment_dir
    target = tmp_path / ("m.onnx" if fmt == "onnx" else "m.pt")
    proc = subprocess.run(tuner("export", str(exp), "--format", fmt, "-o", str(target)),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    bundle = load_dataset("digits")
    batch = torch.tensor(bundle.test.x[:64]).float() / 255  # the exported input: [0, 1] floats
    with torch.no_grad():
        expected = load_model(exp)(batch).numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        got = session.run(None, {name: batch.numpy()})[0]
    else:
        got = torch.jit.load(str(target)).eval()(batch).detach().numpy()
    assert np.abs(got - expected).max() <= 1e-4
    # The normalization is inside: the same argmax as the classifier's predict on raw pixels.
    predicted = load_model(exp).predict(bundle.test.x[:64]).indices.numpy()
    assert (got.argmax(1) == predicted).all()
