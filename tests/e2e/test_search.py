"""End to end: real Ray, a real Optuna study, real training on the real (tiny) digits data."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from study_fixture import journal_study

from search_spaces.seed_cnn import BASELINE
from tuner import SearchConfig, search

pytestmark = pytest.mark.slow

EXPERIMENT_FILES = [
    "trials.csv",
    "epochs.csv",
    "best.json",
    "provenance.json",
    "optuna.journal",
    "tuner.pkl",
    "model.pt",
    "search.toml",
]


# A budget of 9 trials x 3 epochs whose savings buy more trials (--max-trials 27), the default
# search otherwise: ASHA (reduction factor 3) judges rung 1 by its peers when 9 or more trials
# are expected to reach it (16 here), and the epochs it saves start more trials than 9, so a
# silent fall-back to FIFO, or to a trial count, fails these tests.
SAMPLES = 9
BUDGET = SAMPLES * 3


@pytest.fixture(scope="module")
def nine_trials(tmp_path_factory, shared_ray):
    out = tmp_path_factory.mktemp("exp")
    log = io.StringIO()
    cfg = SearchConfig(
        no_confirm=True,
        dataset="digits",
        samples=SAMPLES,
        epochs=3,
        out=str(out),
        name="e2e",
        seed=3,
        concurrency=2,
        max_trials=BUDGET,
        grace_period=1,  # the rung at epoch 1 these tests describe (the default is 2 at 3 epochs)
    )
    result = search(cfg, stream=log)
    return cfg, result, log.getvalue()


def test_search_writes_every_file_of_the_experiment_directory(nine_trials):
    cfg, result, log = nine_trials
    exp = result.experiment_dir
    assert exp == Path(cfg.out).resolve() / "e2e"
    for name in EXPERIMENT_FILES:
        assert (exp / name).is_file(), name
    assert len(list(exp.glob("experiment_state-*.json"))) == 1  # Ray's own state
    assert f"Results: {exp}" in log


def test_trials_csv_has_one_row_per_trial_with_config_and_metrics(nine_trials):
    _, result, _ = nine_trials
    trials = pd.read_csv(result.experiment_dir / "trials.csv")
    # What ASHA saved started more trials than --samples; they spent the budget's epochs
    # (the trials running when it was spent finished theirs: at most 2 x 3 more).
    assert len(trials) > SAMPLES
    assert BUDGET <= trials["epochs_run"].sum() <= BUDGET + 2 * 3
    assert sorted(trials["trial_index"]) == list(range(len(trials)))
    assert trials["trial_id"].is_unique
    for col in [
        "status",
        "epochs_run",
        "val_acc",
        "best_val_acc",
        "best_val_loss",
        "params",
        "train_seconds",
        "config/lr",
        "config/batch_size",
        "config/n_blocks",
    ]:
        assert col in trials.columns, col
    assert set(trials["status"]) <= {"completed", "stopped", "diverged"}
    assert (trials["epochs_run"].between(1, 3)).all()
    assert (trials["params"] > 0).all()


def test_the_labs_baseline_is_trial_zero(nine_trials):
    _, result, _ = nine_trials
    trials = pd.read_csv(result.experiment_dir / "trials.csv")
    first = trials[trials["trial_index"] == 0].iloc[0]
    assert bool(first["is_baseline"]) and trials["is_baseline"].sum() == 1
    for key, value in BASELINE.items():
        if key == "padding":  # not sampled at 8x8: digits are too small for valid padding
            continue
        assert first[f"config/{key}"] == value, key
    # The lab's network on 1x8x8 digits: same layers, flatten 256*1*1.
    assert first["params"] == 1_227_146


def test_epochs_csv_has_one_row_per_epoch_reported(nine_trials):
    _, result, _ = nine_trials
    trials = pd.read_csv(result.experiment_dir / "trials.csv")
    epochs = pd.read_csv(result.experiment_dir / "epochs.csv")
    per_trial = epochs.groupby("trial_index")["epoch"].apply(list)
    for _, row in trials.iterrows():
        assert per_trial[row["trial_index"]] == list(range(1, row["epochs_run"] + 1))
    for col in [
        "val_loss",
        "val_acc",
        "train_loss",
        "train_acc",
        "epoch_time_s",
        "images_per_s",
        "params",
    ]:  # a diverged epoch may have no finite validation figures
        finite = epochs[~epochs["diverged"].fillna(False).astype(bool)]
        assert finite[col].notna().all(), col


def test_best_json_is_chosen_on_validation_and_scored_on_test(nine_trials):
    _, result, _ = nine_trials
    best = json.loads((result.experiment_dir / "best.json").read_text())
    trials = pd.read_csv(result.experiment_dir / "trials.csv")
    assert best["val_acc"] == pytest.approx(trials["best_val_acc"].max())
    assert 0.0 <= best["test_acc"] <= 1.0
    assert best["test_images"] == 360  # digits' fixed held-out 20 %
    matrix = best["confusion_matrix"]
    assert len(matrix) == 10 and sum(map(sum, matrix)) == 360
    diag = sum(matrix[i][i] for i in range(10))
    assert diag / 360 == pytest.approx(best["test_acc"])
    assert set(best["per_class_acc"]) == set(best["classes"])
    assert best["config"]["lr"] == pytest.approx(
        trials.loc[trials["trial_index"] == best["trial_index"], "config/lr"].iloc[0]
    )
    assert "baseline" in best and best["baseline"]["trial_index"] == 0


def test_provenance_records_config_versions_git_and_seed(nine_trials):
    cfg, result, _ = nine_trials
    prov = json.loads((result.experiment_dir / "provenance.json").read_text())
    assert prov["config"]["samples"] == SAMPLES and prov["seed"] == 3
    assert {"torch", "ray", "optuna", "python"} <= set(prov["libraries"])
    assert all(prov["libraries"][k] for k in ("torch", "ray", "optuna"))
    assert "commit" in prov["git"]
    assert prov["hardware"]["cpu_count"] >= 1
    assert prov["dataset"]["train"] + prov["dataset"]["val"] + prov["dataset"]["test"] == 1797
    assert prov["finished"] and prov["seconds"] > 0
    (timings,) = prov["timings"]  # one entry per run (a resume adds one)
    # No "ray_shutdown": the search found the module's Ray running and left it so.
    phases = {"dataset", "space_check", "provenance", "study_storage", "ray_start",
              "build_tuner", "fit", "test_evaluation", "model_file", "report"}  # fmt: skip
    assert set(timings) == phases and all(v >= 0 for v in timings.values())
    assert timings["fit"] > 0


def test_optuna_study_is_stored_in_the_experiment_dir(nine_trials):
    cfg, result, _ = nine_trials
    study = journal_study(result.experiment_dir, "e2e")
    assert len(study.trials) == len(pd.read_csv(result.experiment_dir / "trials.csv"))
    assert study.trials[0].params["lr"] == BASELINE["lr"]
    assert study.trials[0].params["channels_b2"] == 256


def test_optuna_states_match_the_trial_outcomes(nine_trials):
    _, result, _ = nine_trials
    study = journal_study(result.experiment_dir, "e2e")
    trials = pd.read_csv(result.experiment_dir / "trials.csv")
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    outcomes = trials["status"].value_counts().to_dict()
    assert states.get("COMPLETE", 0) == outcomes.get("completed", 0)
    assert states.get("PRUNED", 0) == outcomes.get("stopped", 0)
    assert states.get("FAIL", 0) == outcomes.get("diverged", 0) + outcomes.get("error", 0)
    assert "RUNNING" not in states
    # ASHA really stopped trials (PRUNED == stopped also holds as 0 == 0 without ASHA), at its
    # first rung, and recorded them there.
    stopped = trials[trials["status"] == "stopped"]
    assert len(stopped) >= 1 and set(stopped["epochs_run"]) == {1}
    rungs = json.loads((result.experiment_dir / "asha_state.json").read_text())["brackets"][0]
    assert set(stopped["trial_id"]) <= {tid for _, rec in rungs for tid in rec}
    # Decided over 16+ trials, logged a line each, and folded into that one file at the end.
    assert not (result.experiment_dir / "asha_state.jsonl").exists()
    assert sum(len(rec) for _, rec in rungs) >= 16
    epochs = pd.read_csv(result.experiment_dir / "epochs.csv")
    for ot_trial in study.trials:  # every epoch is an intermediate value, the last one included
        row = epochs[epochs["trial_index"] == ot_trial.number]
        assert sorted(ot_trial.intermediate_values) == row["epoch"].tolist()


def test_trainable_reports_every_epoch_and_resumes_from_its_checkpoint(tmp_path, shared_ray):
    """Kill the trial's worker process mid-run: Tune restarts it from its last checkpoint and
    the trial continues from that epoch instead of starting over. The trial is held at its
    fourth epoch (tests/gate_fixture.py) until the kill, so the kill always lands mid-run."""
    from gate_fixture import Gate, write_net

    gate = Gate(tmp_path / "gate")
    gate.give(3)
    net = write_net(tmp_path, gate=gate)  # the module's Ray started before this gate
    cfg = SearchConfig(
        no_confirm=True,
        dataset="digits",
        model=f"{net}:build",
        space=f"{net}:space",
        samples=1,
        epochs=6,
        scheduler="fifo",
        out=str(tmp_path),
        name="resume",
        max_failures=1,
        checkpoint_interval=0,  # every epoch: the kill must find a checkpoint after epoch 1
    )
    trial_dirs: list[Path] = []
    killed: list[int] = []

    def killer():
        deadline = time.monotonic() + 240  # ends only a test whose trial never gets going
        try:
            while time.monotonic() < deadline and not killed:
                for result_file in (tmp_path / "resume").glob("trial_*/result.json"):
                    lines = result_file.read_text().splitlines()
                    rows = [json.loads(x) for x in lines if x.strip()]
                    if len(rows) >= 3:  # held at epoch 4 now: no fourth ticket yet
                        os.kill(rows[-1]["pid"], signal.SIGKILL)
                        killed.append(rows[-1]["epoch"])
                        trial_dirs.append(result_file.parent)
                        return
                time.sleep(0.05)
        finally:
            gate.open()  # the restored trial runs freely

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = search(cfg, stream=io.StringIO())
    thread.join(timeout=5)
    assert killed == [3], "the trial was not killed while held at its fourth epoch"
    rows = [json.loads(x) for x in (trial_dirs[0] / "result.json").read_text().splitlines()]
    restarts = [r for r in rows if r["iterations_since_restore"] == 1 and r["epoch"] > 1]
    assert len(restarts) == 1, "the trial should have been restored exactly once"
    assert restarts[0]["epoch"] == 4  # continued from epoch 3's checkpoint, not from epoch 1
    assert [r["epoch"] for r in rows if r["iterations_since_restore"] == r["epoch"]] == [1, 2, 3]
    epochs = result.epochs
    assert list(epochs["epoch"]) == list(range(1, 7))  # every epoch reported, no duplicates
    assert result.trials.iloc[0]["status"] == "completed"  # TERMINATED in Tune, not ERROR
    assert result.trials.iloc[0]["num_failures"] == 1


def test_checkpoints_only_at_asha_rungs_and_the_last_epoch_when_epochs_are_quick(
    tmp_path, shared_ray
):
    """With a long --checkpoint-interval a trial checkpoints where ASHA may stop it (its rungs)
    and at its last epoch, and nowhere else; what it leaves still holds its kept weights."""
    from tuner.driver.tuner_setup import scheduler_stop_epochs
    from tuner.train.checkpoints import load_best_weights
    from tuner.train.scoring import latest_checkpoint

    cfg = SearchConfig(no_confirm=True,
                       dataset="digits", samples=3, epochs=6, reduction_factor=2, seed=5,
                       grace_period=1, concurrency=2, out=str(tmp_path), name="ck",
                       checkpoint_interval=3600)  # fmt: skip
    assert scheduler_stop_epochs(cfg) == {1, 2, 4}
    result = search(cfg, stream=io.StringIO())
    for _, row in result.trials.iterrows():
        trial_dir = result.experiment_dir / row["trial_dir"]
        rows = [json.loads(x) for x in (trial_dir / "result.json").read_text().splitlines()]
        saved = [r["epoch"] for r in rows if r.get("checkpoint_dir_name")]
        last = rows[-1]["epoch"]
        assert saved == [e for e in (1, 2, 4) if e < last] + [last], (saved, last)
        _, kept = load_best_weights(latest_checkpoint(trial_dir))
        assert kept["epoch"] == row["best_epoch"]


def test_checkpoint_policy():
    from tuner.train.checkpoints import CheckpointPolicy

    every_epoch = CheckpointPolicy(interval_s=0)
    assert all(every_epoch.due(e, 10, 0.0) for e in range(1, 11))
    timed = CheckpointPolicy(interval_s=30, stop_epochs=frozenset({1, 3, 9}))
    assert [e for e in range(1, 11) if timed.due(e, 10, 5.0)] == [1, 3, 9, 10]
    assert timed.due(5, 10, 30.0) and not timed.due(5, 10, 29.9)


def test_kept_weights_are_the_lowest_validation_loss_weights(nine_trials):
    """The checkpoint's kept weights score exactly the best validation loss the trial reported."""
    import torch

    from tuner.data import load_dataset
    from tuner.train.checkpoints import load_best_weights
    from tuner.train.config import TrainConfig
    from tuner.train.loop import evaluate
    from tuner.train.scoring import latest_checkpoint
    from tuner.train.trial import build_model, make_loaders
    from tuner.train.trial_data import TrialData

    _, result, _ = nine_trials
    data = TrialData.from_bundle(load_dataset("digits"))
    for _, row in result.trials.iterrows():
        if row["status"] == "diverged" and not row["best_epoch"]:
            continue  # diverged in its first epoch: no weights were ever kept
        config = json.loads((result.experiment_dir / row["trial_dir"] / "params.json").read_text())
        weights, kept = load_best_weights(
            latest_checkpoint(result.experiment_dir / row["trial_dir"])
        )
        assert kept["epoch"] == row["best_epoch"]
        cfg = TrainConfig.from_dict(config)
        model = build_model(cfg, data, torch.device("cpu"))
        model.load_state_dict(weights)
        _, val = make_loaders(cfg, data, torch.device("cpu"))
        stats, _ = evaluate(model, val, torch.device("cpu"))
        assert stats.loss == pytest.approx(row["best_val_loss"], rel=1e-4)
        epochs = result.epochs[result.epochs["trial_index"] == row["trial_index"]]
        assert row["best_val_loss"] == pytest.approx(epochs["val_loss"].min())


def test_a_diverging_trial_ends_at_once_with_diverged_true(tmp_path, shared_ray):
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from tuner.data import load_dataset
    from tuner.driver.trainable import train_trial
    from tuner.train.trial_data import TrialData

    data = TrialData.from_bundle(load_dataset("digits"))
    config = {"n_blocks": 1, "channels_b0": 8, "fc_layers": 0, "hflip": False,
              "lr": 1e6, "epochs": 5}  # fmt: skip
    tuner = tune.Tuner(
        tune.with_parameters(train_trial, data=data),
        param_space=config,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path),
            name="div",
            verbose=0,
            callbacks=[JsonLoggerCallback()],
        ),
    )
    (res,) = tuner.fit()
    assert res.error is None
    assert res.metrics["diverged"] is True
    assert res.metrics["epoch"] == 1  # ended at once, not after the 5-epoch budget
    reports = (Path(res.path) / "result.json").read_text().splitlines()
    assert len(reports) == 1  # one report, then the trial ended


def test_the_search_states_its_epoch_budget_and_what_it_saved_against_a_sweep(nine_trials):
    import re

    _, result, log = nine_trials
    exp = result.experiment_dir
    trials = pd.read_csv(exp / "trials.csv")
    assert (f"a budget of {BUDGET} epochs ({SAMPLES} trials x 3; what ASHA saves starts more "
            f"trials, up to {BUDGET})") in log  # fmt: skip
    assert re.search(rf"\[{len(trials)} done, \d+/{BUDGET} epochs\]", log)  # the last trial line
    used = int(trials["epochs_run"].sum())
    page = (exp / "report.html").read_text()
    assert (f"A sweep of the same {used} epochs trains {used // 3} network(s) to the end; this "
            f"search tried {len(trials)}") in page  # fmt: skip
