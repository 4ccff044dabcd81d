"""The confirm stage end to end (real Ray, real training on digits): the top configurations
and the baseline retrained over fresh seeds as Tune trials of their own, the winner by its mean,
the intervals, model.pt and `tuner predict` on image files, `tuner confirm`, and an interrupted
stage continued by `tuner resume`."""

from __future__ import annotations

import json
import math
import signal
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_fixture import Child, run_here, tail, tuner
from gate_fixture import Gate, write_net
from PIL import Image
from study_fixture import journal_study

from tuner import load_model
from tuner.config.search_config import SearchConfig
from tuner.data import load_dataset
from tuner.driver.run import search

pytestmark = pytest.mark.slow

T95 = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305}  # two-sided 95 % Student t quantiles


def _logit_t(values: list[float], images: int) -> tuple[float, float]:
    """The 95 % t interval on the logit of the seeds' accuracies (each moved off 0 and 1 by
    half an image), mapped back and holding the plain mean: tuner.experiment.stats's, by hand."""
    eps = 0.5 / images
    logits = [math.log(p / (1 - p)) for p in (min(max(v, eps), 1 - eps) for v in values)]
    half = T95[len(values) - 1] * statistics.stdev(logits) / math.sqrt(len(values))
    centre, mean = statistics.fmean(logits), statistics.fmean(values)
    low, high = (1 / (1 + math.exp(-(centre + s * half))) for s in (-1, 1))
    return max(0.0, min(low, mean)), min(1.0, max(high, mean))


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory, shared_ray):
    out = tmp_path_factory.mktemp("confirm")
    cfg = SearchConfig(dataset="digits", samples=5, epochs=2, seed=2, confirm_top=2,
                       confirm_seeds=3, concurrency=2, out=str(out), name="c",
                       max_trials=5)  # fmt: skip
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
        assert epochs == [1, 2], run_dir
        params = json.loads((run_dir / "params.json").read_text())["confirm"]
        assert params["config"]["seed"] == params["seed"] and params["config"]["epochs"] == 2
    # Not Optuna trials: the study holds the search's 5 only; ASHA's rungs know only those.
    study = journal_study(exp, "c")
    assert len(study.trials) == 5
    rungs = json.loads((exp / "asha_state.json").read_text())
    assert "confirm" not in json.dumps(rungs)


def test_the_winner_is_the_best_mean_and_the_intervals_are_t_on_the_logit(confirmed):
    stage = confirmed.best["confirm"]
    dataset = json.loads((confirmed.experiment_dir / "provenance.json").read_text())["dataset"]
    runs = pd.read_csv(confirmed.experiment_dir / "confirm.csv")
    means = runs[~runs["is_baseline"]].groupby("trial_index")["val_acc"].mean()
    assert stage["winner"] == int(means.idxmax())
    for c in stage["configs"]:
        mine = runs[runs["trial_index"] == c["trial_index"]].sort_values("seed")
        for split, column in (("val", "val_acc"), ("test", "test_acc")):
            values = mine[column].tolist()
            assert [r[f"{split}_acc"] for r in c["per_seed"]] == pytest.approx(values)
            low, high = _logit_t(values, dataset[split])
            assert c[split]["mean"] == pytest.approx(statistics.fmean(values))
            assert c[split]["low"] == pytest.approx(low) and c[split]["high"] == pytest.approx(high)
            assert 0.0 <= c[split]["low"] <= c[split]["high"] <= 1.0
    # The difference to the runner-up: Welch's interval, by hand.
    d = stage["vs_runner_up"]
    a = runs[runs["trial_index"] == stage["winner"]]["val_acc"].to_numpy()
    b = runs[runs["trial_index"] == d["trial_index"]]["val_acc"].to_numpy()
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    diff = a.mean() - b.mean()
    assert d["val"]["diff"] == pytest.approx(diff)
    from scipy.stats import t

    se = math.sqrt(va + vb)  # 0 when every seed gave the same figure on both sides
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2) if se > 0 else math.inf
    half = t.ppf(0.975, df) * se
    low, high = max(-1.0, diff - half), min(1.0, diff + half)
    assert d["val"]["low"] == pytest.approx(low) and d["val"]["high"] == pytest.approx(high)
    tied = low <= 0 <= high
    assert d["val"]["tied"] == tied
    # The verdict says which: the winner's mean is the best, so it is never worse.
    runner_up = f"trial {d['trial_index']}"
    said = f"is tied with {runner_up}" if tied else f"is better than {runner_up}"
    assert said in stage["verdict"], stage["verdict"]
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
    proc = run_here("predict", model_file, *paths, "--top", "2")  # no Ray: in this process
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(paths)
    png_classes = load_model(model_file).predict([paths[0], paths[2]]).classes
    assert png_classes == load_model(model_file).predict(bundle.test.x[[0, 2]]).classes
    for line, path in zip(lines, paths, strict=True):
        assert line.startswith(path) and line.count(",") == 1  # two classes


def trained_epochs(run_dir: Path) -> dict[int, set[float]]:
    """When each epoch of a confirm run started training (epoch_started_at), from its reports
    and its checkpoints' histories (which also hold an epoch trained and saved as the stage
    stopped, before the driver heard of it)."""
    epochs: dict[int, set[float]] = {}
    rows = [json.loads(line) for line in (run_dir / "result.json").read_text().splitlines()]
    for history in run_dir.glob("checkpoint_*/history.json"):
        rows += json.loads(history.read_text())
    for row in rows:
        epochs.setdefault(row["epoch"], set()).add(row["epoch_started_at"])
    return epochs


def test_tuner_confirm_on_a_search_without_the_stage(tmp_path, shared_ray):
    # The gated network (tests/gate_fixture.py): free in this process's search; the confirm
    # stage below trains only the epochs the test hands it.
    net = write_net(tmp_path)
    cfg = SearchConfig(dataset="digits", samples=3, epochs=2, seed=4, no_confirm=True,
                       model=f"{net}:build", space=f"{net}:space", scheduler="fifo",
                       concurrency=1, out=str(tmp_path), name="later")  # fmt: skip
    first = search(cfg)
    exp = first.experiment_dir
    assert "confirm" not in first.best and first.best["model"]["from"] == "search"
    assert not (exp / "confirm").exists()
    before = (exp / "best.json").read_bytes()
    bad = run_here("confirm", str(exp), "--confirm-top", "0")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert (exp / "best.json").read_bytes() == before and not (exp / "confirm").exists()

    # Started, interrupted by one Ctrl-C once a run has reported, then continued by resume.
    # One epoch is handed out: the first of the stage's 2 x 2 runs (one at a time, as the
    # search ran) reports it and waits, with every run unfinished, when the Ctrl-C comes. Once
    # the stage says it is stopping, the gate opens and that run finishes its epoch in hand.
    gate = Gate(tmp_path / "gate")
    gate.give(1)
    stage = Child(tuner("confirm", str(exp), "--confirm-top", "2", "--confirm-seeds", "2"),
                  tmp_path / "confirm.log", env=gate.env())  # fmt: skip
    stage.wait_for(
        lambda: any(f.stat().st_size for f in (exp / "confirm").glob("run_*/result.json")),
        "a confirm run's first epoch on disk",
    )
    stage.proc.send_signal(signal.SIGINT)
    stage.wait_for_output("\nCtrl-C: ")
    gate.open()
    assert stage.wait() == 130, tail(stage.output())
    assert "tuner resume" in stage.output()
    runs = pd.read_csv(exp / "confirm.csv")
    assert (runs["status"] == "done").sum() <= 1  # of 4: the stage stopped with runs left
    held = {d.name: trained_epochs(d) for d in (exp / "confirm").glob("run_*")}
    resumed = run_here("resume", str(exp))
    assert resumed.returncode == 0, tail(resumed.stdout) + tail(resumed.stderr)

    runs = pd.read_csv(exp / "confirm.csv")
    best = json.loads((exp / "best.json").read_text())
    # Without a baseline (the network is the user's), the stage is the 2 best trials x 2 seeds.
    assert len(runs) == 4 and set(runs["status"]) == {"done"}
    assert best["confirm"]["complete"] and best["model"]["from"] == "confirm"
    for run_dir in (exp / "confirm").glob("run_*"):  # no epoch trained twice, none missing
        epochs = trained_epochs(run_dir)
        assert sorted(epochs) == [1, 2] and all(len(s) == 1 for s in epochs.values()), epochs
        # What a run had trained when the stage stopped, the resume did not train again (a
        # run restored at its last epoch reports that epoch again, with the same start).
        for epoch, started in held.get(run_dir.name, {}).items():
            assert epochs[epoch] == started, (run_dir, epoch)
    report = (exp / "report.html").read_text()
    assert "Is the winner really better?" in report and best["confirm"]["verdict"][:40] in report


def test_tuner_train_retrains_the_winner_on_train_and_val(confirmed, tmp_path):
    exp = confirmed.experiment_dir
    # `tuner train` needs no Ray: in this process, its output captured all the same
    proc = run_here("train", str(exp), "--train-on", "trainval", "--seeds", "2", "--epochs",
                    "2", "--out", str(tmp_path), "--name", "again")  # fmt: skip
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
    test_images = json.loads((out / "provenance.json").read_text())["dataset"]["test"]
    assert summary["test"]["mean"] == pytest.approx(statistics.fmean(tests))
    assert summary["test"]["low"] == pytest.approx(_logit_t(tests, test_images)[0])
    assert "t interval on the logit over 2 seeds" in proc.stdout
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
    proc = run_here("export", str(exp), "--format", fmt, "-o", str(target))  # no Ray
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
