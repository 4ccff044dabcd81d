"""Loading experiment directories (finished, partial, not one at all), the Pareto front and the
compute accounting, and that `analysis` never imports Ray."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from analysis_fixture import CIFAR_CLASSES, write_experiment, write_partial_experiment

from analysis import ExperimentError, compute_summary, load_experiment, pareto_front
from analysis._lab import LAB_PER_CLASS_ACC, lab_per_class
from analysis._load import best_trial_index, hyperparameters, outcome_label


def test_importing_analysis_does_not_import_ray():
    code = (
        "import sys, analysis, analysis.plots\nprint('ray' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_finished_experiment_loads_into_tidy_tables(tmp_path):
    exp = load_experiment(write_experiment(tmp_path / "exp", trials=30, epochs=10))
    assert not exp.partial and exp.epoch_budget == 10 and exp.name == "exp"
    assert len(exp.trials) == 30 and exp.trials["trial_index"].tolist() == list(range(30))
    assert exp.trials["is_baseline"].tolist() == [True] + [False] * 29
    # one epochs row per epoch each trial ran
    per_trial = exp.epochs.groupby("trial_index").size()
    assert per_trial.to_dict() == exp.trials.set_index("trial_index")["epochs_run"].to_dict()
    stopped = exp.trials[exp.trials["status"] == "stopped"].iloc[0]
    assert stopped["outcome"] == f"stopped by ASHA at epoch {stopped['epochs_run']}"
    assert exp.best["trial_index"] == best_trial_index(exp)
    assert "lr" in exp.hyperparameters and "epochs" not in exp.hyperparameters


def test_per_class_table_holds_best_baseline_and_the_lab_on_cifar10(tmp_path):
    exp = load_experiment(write_experiment(tmp_path / "exp", trials=8))
    table = exp.per_class
    assert list(table.columns) == ["class", "model", "test_acc"]
    models = list(dict.fromkeys(table["model"]))
    assert models == [f"best (trial {exp.best['trial_index']})", "baseline (trial 0)",
                      "lab report (CIFAR-10)"]  # fmt: skip
    lab = table[table["model"] == "lab report (CIFAR-10)"].set_index("class")["test_acc"]
    assert lab["airplane"] == LAB_PER_CLASS_ACC["plane"] and lab["cat"] == 0.56


def test_the_labs_figures_only_go_with_cifar10_classes():
    assert lab_per_class(CIFAR_CLASSES)[:2] == [0.84, 0.93]
    assert lab_per_class([str(d) for d in range(10)]) is None


def test_a_partial_experiment_is_rebuilt_from_trial_dirs(tmp_path):
    exp = load_experiment(write_partial_experiment(tmp_path / "partial", epochs=4))
    assert exp.partial and exp.best is None and exp.epoch_budget == 4
    assert exp.trials["status"].tolist() == ["completed", "stopped"]
    assert exp.trials["is_baseline"].tolist() == [True, False]
    assert len(exp.epochs) == 6 and exp.per_class.empty
    assert best_trial_index(exp) == 0  # highest best_val_acc, as pick_best would choose


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_not_an_experiment_is_a_one_line_error(tmp_path, make):
    path = tmp_path / "x"
    if make == "file":
        path.write_text("hi")
    elif make == "empty":
        path.mkdir()
    with pytest.raises(ExperimentError) as err:
        load_experiment(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_hyperparameters_are_the_config_columns_that_vary():
    trials = pd.DataFrame(
        {
            "config/lr": [0.1, 0.2],
            "config/epochs": [5, 5],
            "config/pool": ["max", "max"],  # constant: not searched here
            "config/channels_b1": [16, np.nan],  # conditional
            "config/zeta": [1, 2],
        }
    )
    assert hyperparameters(trials) == ["lr", "channels_b1", "zeta"]


def test_outcome_labels():
    assert outcome_label("stopped", 3) == "stopped by ASHA at epoch 3"
    assert outcome_label("stopped", 3, scheduler="fifo") == "stopped by the search at epoch 3"
    assert outcome_label("diverged", 2) == "diverged"


def test_pareto_front_keeps_exactly_the_undominated_points():
    cost = [1, 2, 3, 4, 2, 5, np.nan]
    acc = [0.5, 0.7, 0.6, 0.9, 0.7, 0.9, 1.0]
    # 0: cheapest; 1 and 4: tie, both kept; 2: dominated by 1; 3: best; 5: dominated by 3;
    # 6: no cost, never on the front
    assert pareto_front(cost, acc).tolist() == [True, True, False, True, True, False, False]
    assert pareto_front([], []).tolist() == []


def test_compute_summary_counts_what_asha_saved():
    trials = pd.DataFrame(
        {
            "status": ["completed", "stopped", "stopped", "diverged"],
            "epochs_run": [10, 1, 3, 2],
            "train_seconds": [20.0, 3.0, 3.0, 4.0],
        }
    )
    s = compute_summary(trials, epoch_budget=10)
    assert (s.epochs_run, s.epochs_full, s.epochs_saved) == (16, 32, 16)
    # stopped trials extrapolated at their own epoch time: 3 s/epoch x 9, 1 s/epoch x 7
    assert s.seconds_run == 30.0 and s.seconds_saved == pytest.approx(27.0 + 7.0)
    assert s.counts == {"completed": 1, "diverged": 1, "stopped": 2}


def test_result_files_cut_short_keep_every_line_that_parses_and_say_what_was_dropped(
    tmp_path, capsys
):
    """A crash or a full disk cuts files short: half a result line, an empty params.json.
    `tuner report` keeps what parses and says in one line what it dropped."""
    from tuner.cli import main

    exp = write_partial_experiment(tmp_path / "cut", epochs=4)
    first = exp / "trial_0000_id0" / "result.json"
    first.write_text(first.read_text()[:-40])  # the last epoch's line is cut in half
    (exp / "trial_0001_id1" / "params.json").write_text('{"lr": 0.0')  # cut short
    loaded = load_experiment(exp)
    assert loaded.trials["trial_index"].tolist() == [0]
    assert loaded.epochs["epoch"].tolist() == [1, 2, 3]  # epochs 1-3 parsed, 4 was cut
    assert len(loaded.warnings) == 1
    assert "dropped 1 result line(s)" in loaded.warnings[0]
    assert "skipped 1 trial(s) whose params.json" in loaded.warnings[0]

    assert main(["report", str(exp)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: dropped 1 result line(s)" in err
    assert (exp / "report.html").is_file()


def test_epochs_missing_from_result_json_are_read_from_the_checkpoints_history(tmp_path):
    """A driver killed before it synced result.json loses those lines, and the trial, restored
    from its checkpoint, never reports them again; every checkpoint keeps the epochs' metrics,
    and the tables take the missing ones from there."""
    from tuner.experiment import Damage, collect_tables
    from tuner.train.checkpoints import save_checkpoint

    exp = write_partial_experiment(tmp_path / "lost", epochs=4)
    trial = exp / "trial_0000_id0"
    rows = [json.loads(x) for x in (trial / "result.json").read_text().splitlines()]
    (trial / "result.json").write_text("\n".join(json.dumps(r) for r in rows if r["epoch"] != 2))
    (trial / "checkpoint_000003").mkdir()
    history = [{k: v for k, v in r.items() if k != "trial_id"} for r in rows[:3]]
    # As the trainable writes it: state.pt, and the same history as history.json.
    save_checkpoint(trial / "checkpoint_000003",
                    {"epoch": 3, "best_state": {}, "best": {}, "history": history})  # fmt: skip
    damage = Damage()
    trials, epochs = collect_tables(exp, 4, damage=damage)
    first = epochs[epochs["trial_index"] == 0]
    assert first["epoch"].tolist() == [1, 2, 3, 4]
    assert first.loc[first["epoch"] == 2, "val_loss"].item() == rows[1]["val_loss"]
    assert damage.recovered == 1 and trials.loc[0, "epochs_run"] == 4
