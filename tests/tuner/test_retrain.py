"""`tuner train` (tuner/retrain.py): one configuration retrained from scratch in this
process, no Ray. A config file retrained on digits over two seeds (train, and trainval without
validation) leaves a directory whose files agree with each other; an experiment directory
retrains its winner; bad input is one line, exit 2, and nothing written."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from tuner.cli import main
from tuner.experiment import (
    BEST_JSON,
    CHECKPOINT_FILE,
    EPOCHS_CSV,
    MODEL_FILE,
    PARAMS_JSON,
    PROVENANCE_JSON,
    RETRAIN_JSON,
)
from tuner.experiment.stats import accuracy_interval
from tuner.retrain import RetrainResult, retrain

EPOCHS = 2
TINY = {
    "n_blocks": 2, "channels_b0": 8, "channels_b1": 16, "batch_norm": True, "fc_layers": 0,
    "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 64, "hflip": False,
    "epochs": EPOCHS,
}  # fmt: skip


def _write_config(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config))
    return path


def _fake_experiment(root: Path, best: dict, trials: dict[str, dict]) -> Path:
    """A search's directory as far as `tuner train` reads it: provenance.json's config,
    best.json and the trials' params.json."""
    exp = root / "fake"
    exp.mkdir()
    provenance = {"config": {"dataset": "digits", "data_dir": None, "val_count": None,
                             "image_size": None, "space": "seed_cnn", "samples": 2}}  # fmt: skip
    (exp / PROVENANCE_JSON).write_text(json.dumps(provenance))
    (exp / BEST_JSON).write_text(json.dumps(best))
    for name, params in trials.items():
        (exp / name).mkdir()
        (exp / name / PARAMS_JSON).write_text(json.dumps(params))
    return exp


@pytest.fixture(scope="module")
def retrained(tmp_path_factory) -> dict[str, tuple[RetrainResult, str]]:
    """The tiny config retrained over 2 seeds, on train (validated) and on trainval."""
    root = tmp_path_factory.mktemp("retrain")
    config = _write_config(root / "tiny.json", TINY)
    done = {}
    for train_on in ("train", "trainval"):
        stream = io.StringIO()
        result = retrain(config, seeds=2, train_on=train_on, out=root / "out", name=train_on,
                         threads=2, stream=stream)  # fmt: skip
        done[train_on] = (result, stream.getvalue())
    return done


@pytest.mark.parametrize("train_on", ["train", "trainval"])
def test_a_retrain_writes_its_directory_and_the_files_agree(retrained, train_on):
    result, output = retrained[train_on]
    exp = result.directory
    assert exp.name == train_on
    for name in (PROVENANCE_JSON, EPOCHS_CSV, RETRAIN_JSON, MODEL_FILE):
        assert (exp / name).is_file(), name
    summary = json.loads((exp / RETRAIN_JSON).read_text())
    assert summary["seeds"] == [2000, 2001] and summary["epochs"] == EPOCHS
    assert summary["train_on"] == train_on
    assert summary["config"] == {k: v for k, v in TINY.items() if k != "seed"}
    runs = summary["runs"]
    assert [r["seed"] for r in runs] == [2000, 2001]
    for run in runs:
        assert (exp / run["checkpoint"] / CHECKPOINT_FILE).is_file()
        assert run["checkpoint"] == f"seed_{run['seed']}/checkpoint_000000"
        assert 0.0 <= run["test_acc"] <= 1.0
    test_accs = [r["test_acc"] for r in runs]
    provenance = json.loads((exp / PROVENANCE_JSON).read_text())
    images = provenance["dataset"]["test"]
    assert summary["test"] == pytest.approx(accuracy_interval(test_accs, images))
    assert 0.0 <= summary["test"]["low"] <= summary["test"]["high"] <= 1.0
    assert result.test == pytest.approx(summary["test"])

    # The two seeds trained differently: their first epochs and their weights differ.
    epochs = pd.read_csv(exp / EPOCHS_CSV)
    assert len(epochs) == 2 * EPOCHS
    assert sorted(epochs["seed"].unique()) == [2000, 2001]
    first = epochs[epochs["epoch"] == 1].set_index("seed")["train_loss"]
    assert first[2000] != first[2001]
    weights = [torch.load(exp / r["checkpoint"] / CHECKPOINT_FILE, weights_only=True)
               ["best_state"] for r in runs]  # fmt: skip
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])

    model = torch.load(exp / MODEL_FILE, weights_only=True)
    chosen = next(r for r in runs if r["seed"] == summary["chosen_seed"])
    assert model["test_acc"] == pytest.approx(chosen["test_acc"])
    assert model["source"]["seed"] == chosen["seed"] and model["source"]["train_on"] == train_on
    assert model["config"]["seed"] == chosen["seed"]
    assert result.model_path == exp / MODEL_FILE

    assert provenance["seed"] == 2000 and provenance["finished"]
    assert provenance["source"]["config_file"].endswith("tiny.json")
    dataset = provenance["dataset"]
    trained_on = dataset["train"] + (dataset["val"] if train_on == "trainval" else 0)
    assert dataset["trained_on"] == trained_on

    assert "seed 2000 (1/2) epoch 1/2: train loss" in output
    assert "seed 2001 (2/2) epoch 2/2" in output and "elapsed" in output
    low, high = summary["test"]["low"], summary["test"]["high"]
    assert f"(95 % t interval on the logit over 2 seeds: [{low:.4f}, {high:.4f}])" in output
    assert f"Results: {exp}" in output and str(exp / MODEL_FILE) in output


def test_train_keeps_the_lowest_val_loss_weights_and_picks_the_best_seed(retrained):
    result, output = retrained["train"]
    summary = json.loads((result.directory / RETRAIN_JSON).read_text())
    runs = summary["runs"]
    assert all(r["val_acc"] is not None for r in runs)
    images = json.loads((result.directory / PROVENANCE_JSON).read_text())["dataset"]["val"]
    val = accuracy_interval([r["val_acc"] for r in runs], images)
    assert summary["val"] == pytest.approx(val)
    best = max(runs, key=lambda r: r["val_acc"])
    assert summary["chosen_seed"] == best["seed"]
    epochs = pd.read_csv(result.directory / EPOCHS_CSV)
    for run in runs:
        mine = epochs[epochs["seed"] == run["seed"]]
        assert run["kept_epoch"] == int(mine.loc[mine["val_loss"].idxmin(), "epoch"])
    assert "val acc" in output and "Validation accuracy (kept weights)" in output


def test_trainval_trains_without_validation_and_keeps_the_last_epoch(retrained):
    result, output = retrained["trainval"]
    summary = json.loads((result.directory / RETRAIN_JSON).read_text())
    assert summary["val"] is None and result.val is None
    assert all(r["val_acc"] is None and r["kept_epoch"] == EPOCHS for r in summary["runs"])
    assert summary["chosen_seed"] == 2000  # no validation to choose by: the first seed
    epochs = pd.read_csv(result.directory / EPOCHS_CSV)
    assert epochs["val_acc"].isna().all() and epochs["val_loss"].isna().all()
    model = torch.load(result.directory / MODEL_FILE, weights_only=True)
    assert model["val_acc"] is None
    assert "val acc" not in output and "Validation accuracy" not in output


def test_an_experiment_directory_retrains_its_winner(tmp_path, capsys):
    """The confirm stage's winner when it ran, else best.json's trial: trial 0's config would
    not even build (an unknown key), so picking it would fail."""
    tiny = {**TINY, "epochs": 1}
    trials = {"trial_0000_ab": {**TINY, "bogus": 1}, "trial_0001_cd": tiny}
    exp = _fake_experiment(tmp_path, {"trial_index": 0, "confirm": {"winner": 1}}, trials)
    out = tmp_path / "out"
    assert main(["train", str(exp), "--out", str(out), "--threads", "2"]) == 0
    (made,) = out.iterdir()
    assert made.name.startswith("fake-retrain-")
    summary = json.loads((made / RETRAIN_JSON).read_text())
    assert summary["source"]["trial_index"] == 1 and summary["source"]["winner"] is True
    assert summary["config"] == tiny and summary["seeds"] == [2000]
    assert summary["test"]["n"] == 1 and summary["test"]["low"] is None
    provenance = json.loads((made / PROVENANCE_JSON).read_text())
    assert provenance["config"]["dataset"] == "digits"
    assert "Test accuracy: " in capsys.readouterr().out

    (exp / BEST_JSON).write_text(json.dumps({"trial_index": 1}))  # no confirm stage
    result = retrain(exp, epochs=1, out=out, name="plain", threads=2, stream=io.StringIO())
    summary = json.loads((result.directory / RETRAIN_JSON).read_text())
    assert summary["source"]["trial_index"] == 1 and summary["epochs"] == 1

    result = retrain(exp, trial=1, epochs=1, out=out, threads=2, stream=io.StringIO())
    assert result.directory.name.startswith("fake-trial1-retrain-")


def test_a_toml_config_file_is_read_like_json(tmp_path):
    lines = [f"{k} = {json.dumps(v)}" for k, v in {**TINY, "epochs": 1}.items()]
    config = tmp_path / "tiny.toml"
    config.write_text("\n".join(lines) + "\n")
    result = retrain(config, out=tmp_path / "out", threads=2, stream=io.StringIO())
    assert result.directory.name.startswith("tiny-retrain-")
    assert len(pd.read_csv(result.directory / EPOCHS_CSV)) == 1


@pytest.mark.parametrize(
    "args, needle",
    [
        (["{missing}"], "is neither an experiment directory nor a config file"),
        (["{plain_dir}"], "is not an experiment directory"),
        (["{exp}", "--trial", "7"], "has no trial 7 (its trials: 0-1)"),
        (["{exp}", "--trial", "0"], "unknown config key(s) ['bogus']"),
        (["{exp}", "--dataset", "cifar10"], "--dataset apply to a config file"),
        (["{config}", "--seeds", "0"], "--seeds must be a whole number >= 1"),
        (["{config}", "--epochs", "0"], "--epochs must be a whole number >= 1"),
        (["{config}", "--trial", "1"], "--trial applies to an experiment directory"),
        (["{not_json}"], "cannot parse"),
        (["{too_deep}"], "shrinks to nothing"),
        (["{config}", "--name", "a/b"], "--name 'a/b' must be"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, needle):
    paths = {
        "missing": tmp_path / "nope",
        "plain_dir": tmp_path / "plain",
        "exp": _fake_experiment(tmp_path, {"trial_index": 1},
                                {"trial_0000_ab": {**TINY, "bogus": 1}, "trial_0001_cd": TINY}),
        "config": _write_config(tmp_path / "tiny.json", TINY),
        "not_json": tmp_path / "broken.json",
        # 8x8 digits halve to nothing in four pooled blocks: refused before anything is written
        "too_deep": _write_config(tmp_path / "deep.json", {
            **TINY, "n_blocks": 4, "channels_b2": 8, "channels_b3": 8}),
    }  # fmt: skip
    paths["plain_dir"].mkdir()
    paths["not_json"].write_text("{not json")
    out = tmp_path / "out"
    argv = ["train", *(a.format(**paths) for a in args), "--out", str(out)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuner: error: "), captured.err
    assert needle in lines[0]
    assert not out.exists()


def test_an_existing_output_directory_is_refused(tmp_path, capsys):
    config = _write_config(tmp_path / "tiny.json", TINY)
    (tmp_path / "out" / "taken").mkdir(parents=True)
    assert main(["train", str(config), "--out", str(tmp_path / "out"), "--name", "taken"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert list((tmp_path / "out" / "taken").iterdir()) == []


def test_a_trial_without_validation_keeps_each_newest_epoch():
    """run_trial(validate=False), what --train-on trainval runs: NaN validation figures, and
    the kept weights are always the newest epoch's."""
    from tuner.data import load_dataset
    from tuner.train.trial import run_trial
    from tuner.train.trial_data import TrialData

    data = TrialData.from_bundle(load_dataset("digits"))
    reports: list[tuple[dict, dict | None]] = []
    threads = torch.get_num_threads()
    try:
        run_trial({**TINY, "epochs": 2}, data, lambda m, s, wait=False: reports.append((m, s)),
                  validate=False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)  # set_up pins them
    assert [m["epoch"] for m, _ in reports] == [1, 2]
    for metrics, state in reports:
        assert math.isnan(metrics["val_loss"]) and math.isnan(metrics["val_acc"])
        assert metrics["best_epoch"] == metrics["epoch"] and not metrics["diverged"]
        assert state is not None and state["best"]["epoch"] == metrics["epoch"]
        assert all(torch.equal(state["best_state"][k], v) for k, v in state["model"].items())
