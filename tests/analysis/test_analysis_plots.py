"""Each figure, both halves: the info record holds what the tables say, and the figure draws
exactly that info (counts, axes, Pareto membership, labels)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
import pytest
from analysis_fixture import write_experiment

from analysis import load_experiment
from analysis.plots._accuracy_cost import _get_accuracy_cost_info, _get_accuracy_cost_plot
from analysis.plots._best_model import _get_best_model_info, _get_best_model_plot
from analysis.plots._diagnoses import _get_diagnoses_info, _get_diagnoses_plot
from analysis.plots._importance import _get_importance_info, _get_importance_plot
from analysis.plots._learning_curves import _get_learning_curves_info, _get_learning_curves_plot
from analysis.plots._parallel import _get_parallel_info, _get_parallel_plot
from analysis.plots._param_effects import _get_param_effects_info, _get_param_effects_plot
from analysis.plots._progress import _get_progress_info, _get_progress_plot
from analysis.plots._rungs import _get_rungs_info, _get_rungs_plot
from tuner.experiment import rung_epochs

NAN = float("nan")


@pytest.fixture
def trials() -> pd.DataFrame:
    """Six trials with hand-picked numbers; trial 5 never finished an epoch."""
    return pd.DataFrame(
        {
            "trial_index": [0, 1, 2, 3, 4, 5],
            "is_baseline": [True, False, False, False, False, False],
            "status": ["completed", "completed", "stopped", "stopped", "diverged", "error"],
            "epochs_run": [3, 3, 1, 1, 2, 0],
            "outcome": [
                "completed",
                "completed",
                "stopped by ASHA at epoch 1",
                "stopped by ASHA at epoch 1",
                "diverged",
                "error",
            ],
            "best_val_acc": [0.60, 0.90, 0.70, 0.40, 0.20, NAN],
            "best_val_loss": [1.0, 0.3, 0.8, 1.5, 2.0, NAN],
            "best_epoch": [3, 2, 1, 1, 1, NAN],
            "params": [2_000_000, 50_000, 10_000, 5_000, 80_000, NAN],
            "train_seconds": [30.0, 6.0, 1.0, 0.5, 2.0, 0.0],
            "config/lr": [0.01, 0.001, 0.0003, 0.05, 0.09, 0.02],
            "config/batch_size": [64, 32, 128, 64, 512, 32],
            "config/optimizer": ["sgd", "adam", "adamw", "adam", "adam", "sgd"],
            "config/n_blocks": [3, 2, 1, 1, 2, 1],
            "config/convs_per_block": [2, 1, 3, 1, 2, 1],
            "config/channels_b0": [64, 32, 16, 16, 32, 16],
            "config/channels_b1": [128, 64, NAN, NAN, 256, NAN],
            "config/kernel_size": [3, 5, 3, 5, 3, 3],
            "config/dropout": [True, False, NAN, True, False, NAN],
            "config/dropout_rate": [0.2, NAN, NAN, 0.5, NAN, NAN],
            "config/epochs": [3, 3, 3, 3, 3, 3],
        }
    )


@pytest.fixture
def epochs() -> pd.DataFrame:
    rows = {
        0: [2.3, 2.2, 2.1],
        1: [1.0, 0.3, 0.4],
        2: [0.8],
        3: [1.5],
        4: [2.0, NAN],
    }
    out = []
    for index, losses in rows.items():
        best = -math.inf
        for e, v in enumerate(losses, 1):
            acc = 1 - v / 3 if math.isfinite(v) else NAN
            best = max(best, acc) if math.isfinite(acc) else best
            out.append({"trial_index": index, "epoch": e, "train_loss": v * 0.9, "val_loss": v,
                        "best_val_acc": best, "epoch_time_s": 1.0 + index})  # fmt: skip
    return pd.DataFrame(out)


def test_accuracy_cost_info_and_pareto_membership(trials):
    info = _get_accuracy_cost_info(trials, epoch_budget=3)
    assert info.trial_index == [0, 1, 2, 3, 4]  # trial 5 has no accuracy
    assert info.val_acc == [0.60, 0.90, 0.70, 0.40, 0.20]
    # by parameters: 3 (5k, .4), 2 (10k, .7), 1 (50k, .9) are undominated
    assert [i for i, on in zip(info.trial_index, info.front["params"], strict=True) if on] == [
        1,
        2,
        3,
    ]
    # by seconds: 3 (0.5 s), 2 (1 s), 1 (6 s)
    fast = zip(info.trial_index, info.front["train_seconds"], strict=True)
    assert [i for i, on in fast if on] == [1, 2, 3]
    assert info.baseline == 0
    assert "lr = 0.001" in info.hover[1] and "optimizer = adam" in info.hover[1]


def test_accuracy_cost_figure_draws_the_info(trials):
    info = _get_accuracy_cost_info(trials, epoch_budget=3)
    fig = _get_accuracy_cost_plot(info)
    points = [t for t in fig.data if t.mode == "markers" and t.name != "lab baseline (trial 0)"]
    assert sum(len(t.x) for t in points) == 2 * len(info.trial_index)  # both panels
    stopped = [t for t in points if t.name == "stopped by ASHA at epoch 1" and t.xaxis == "x"][0]
    assert list(stopped.x) == [10_000, 5_000] and list(stopped.y) == [0.70, 0.40]
    front = [t for t in fig.data if t.name == "Pareto front" and t.xaxis == "x"][0]
    assert list(front.x) == [5_000, 10_000, 50_000] and list(front.y) == [0.40, 0.70, 0.90]
    star = [t for t in fig.data if t.name == "lab baseline (trial 0)" and t.xaxis == "x"][0]
    assert list(star.x) == [2_000_000] and star.marker.symbol == "star"
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "log"


def test_parallel_coordinates_info_has_a_dimension_per_hyperparameter(trials):
    info = _get_parallel_info(trials)
    labels = [d.label for d in info.dimensions]
    assert labels[-1] == "val acc" and info.dimensions[-1].values == info.val_acc
    assert "epochs" not in labels  # a constant, not a searched parameter
    assert labels[:3] == ["lr", "batch_size", "optimizer"]
    opt = info.dimensions[labels.index("optimizer")]
    assert opt.ticktext == ["adam", "adamw", "sgd"]
    decoded = [opt.ticktext[int(v)] for v in opt.values]
    assert decoded == ["sgd", "adam", "adamw", "adam", "adam"]
    ch1 = info.dimensions[labels.index("channels_b1")]
    assert ch1.ticktext[0] == "n/a" and [ch1.ticktext[int(v)] for v in ch1.values] == [
        "128", "64", "n/a", "n/a", "256"]  # fmt: skip
    fig = _get_parallel_plot(info)
    assert isinstance(fig.data[0], go.Parcoords)
    assert len(fig.data[0].dimensions) == len(info.dimensions)
    assert list(fig.data[0].line.color) == info.val_acc


def test_parallel_coordinates_puts_wide_ranges_on_a_log_axis():
    n = 12
    lrs = np.logspace(-4, -1, n)
    acc = np.linspace(0, 1, n)
    frame = pd.DataFrame(
        {"config/lr": lrs, "config/x": range(n), "best_val_acc": acc, "trial_index": range(n)}
    )
    info = _get_parallel_info(frame)
    lr = info.dimensions[0]
    assert lr.label == "lr (log)" and lr.values == pytest.approx(list(np.log10(lrs)))
    assert lr.ticktext == ["1e-4", "1e-3", "1e-2", "1e-1"]


def test_param_effects_info_derives_depth_width_and_dropout(trials):
    info = _get_param_effects_info(trials, epoch_budget=3)
    panels = {p.name: p for p in info.panels}
    assert list(panels) == ["lr", "batch_size", "depth", "width", "kernel_size", "dropout",
                            "optimizer"]  # fmt: skip
    assert panels["lr"].kind == "log" and panels["lr"].x == [0.01, 0.001, 0.0003, 0.05, 0.09]
    assert panels["depth"].x == ["6", "2", "3", "1", "4"]  # blocks x convs
    assert panels["width"].x == ["128", "64", "16", "16", "256"]
    assert panels["dropout"].x == [0.2, 0.0, 0.0, 0.5, 0.0]  # off (or no FC) = 0
    assert panels["batch_size"].categories == ["32", "64", "128", "512"]
    assert info.outcome.count("stopped by ASHA at epoch 1") == 2


def test_param_effects_figure_colours_by_outcome(trials):
    info = _get_param_effects_info(trials, epoch_budget=3)
    fig = _get_param_effects_plot(info)
    first_panel = [t for t in fig.data if t.xaxis == "x"]
    assert {t.name for t in first_panel} == {"completed", "stopped by ASHA at epoch 1", "diverged"}
    assert sum(len(t.x) for t in first_panel) == 5
    legend = [t.name for t in fig.data if t.showlegend]
    assert sorted(legend) == sorted({t.name for t in first_panel})  # one entry per outcome
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis2.ticktext) == ["32", "64", "128", "512"]


def test_learning_curves_pick_best_baseline_and_top_k(trials, epochs):
    info = _get_learning_curves_info(trials, epochs, best=1, k=2)
    assert [(c.trial_index, c.role) for c in info.curves] == [
        (1, "best"), (0, "baseline"), (2, "top k"), (3, "top k")]  # fmt: skip
    best = info.curves[0]
    assert best.epochs == [1, 2, 3] and best.val_loss == [1.0, 0.3, 0.4]
    assert (best.min_epoch, best.min_val_loss) == (2, 0.3)
    fig = _get_learning_curves_plot(info)
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    assert [(s.x[0], s.y[0]) for s in stars] == [(2, 0.3), (3, 2.1), (1, 0.8), (1, 1.5)]
    assert fig.layout.yaxis.type == "log"


def test_learning_curves_name_no_baseline_where_the_search_has_none(trials, epochs):
    with_one = _get_learning_curves_plot(_get_learning_curves_info(trials, epochs, best=1, k=2))
    assert "lab baseline" in with_one.layout.title.text
    none = trials.assign(is_baseline=False)  # the lab's network left out (a size budget)
    fig = _get_learning_curves_plot(_get_learning_curves_info(none, epochs, best=1, k=2))
    assert "baseline" not in fig.layout.title.text
    assert not any("baseline" in (t.name or "") for t in fig.data)


def test_learning_curves_drop_non_finite_losses(trials, epochs):
    info = _get_learning_curves_info(trials, epochs, best=4, k=0)
    assert info.curves[0].val_loss == [2.0, None] and info.curves[0].min_epoch == 1


def test_search_progress_is_the_running_best_against_compute(trials, epochs):
    info = _get_progress_info(trials, epochs, epoch_budget=3)
    assert info.cum_epochs == list(range(1, len(epochs) + 1))
    assert info.best_so_far == list(epochs["best_val_acc"].cummax())
    assert info.cum_seconds[-1] == pytest.approx(epochs["epoch_time_s"].sum())
    assert info.baseline_acc == 0.60
    assert (info.epochs_run, info.epochs_full) == (10, 14)  # two trials stopped at 1 of 3
    fig = _get_progress_plot(info)
    line = [t for t in fig.data if t.name == "best so far" and t.xaxis == "x"][0]
    assert list(line.x) == info.cum_epochs and list(line.y) == info.best_so_far
    assert [(s.x0, s.x1) for s in fig.layout.shapes][0] == (10, 14)  # the saved epochs


def test_the_progress_caption_says_what_the_search_saved_against_a_sweep(trials, epochs):
    from analysis.plots import epochs_to_near_best
    from analysis.report import against_sweep

    # Trial 1 reaches the final best (0.9) at its epoch 2, the 5th epoch trained.
    assert epochs_to_near_best(trials, epochs, 3) == 5
    assert against_sweep(trials, epochs, 3, used=10) == (
        "A sweep of the same 10 epochs trains 3 network(s) to the end; this search tried 6, "
        "and was within 1 point of its best after 5 epochs (50 % of its compute)."
    )
    assert against_sweep(trials, epochs.iloc[0:0], 3, used=0) == ""  # nothing trained yet


def test_asha_rungs_follow_grace_and_reduction_factor():
    # (grace_period, reduction_factor, epoch budget)
    assert rung_epochs(1, 3, 10) == [1, 3, 9]
    assert rung_epochs(1, 3, 6) == [1, 3]
    assert rung_epochs(2, 2, 20) == [2, 4, 8, 16]


def test_rungs_count_trials_by_the_epoch_they_ended(trials):
    info = _get_rungs_info(trials, epoch_budget=3)
    assert info.epochs == [1, 2, 3] and info.rungs == [1]
    assert info.counts["stopped"] == [2, 0, 0]
    assert info.counts["completed"] == [0, 0, 2]
    assert info.counts["diverged"] == [0, 1, 0]
    fig = _get_rungs_plot(info)
    bars = {t.name: list(t.y) for t in fig.data}
    assert bars["stopped by ASHA"] == [2, 0, 0] and bars["ran the whole budget"] == [0, 0, 2]
    assert "rung" in fig.layout.xaxis.ticktext[0] and "rung" not in fig.layout.xaxis.ticktext[1]


def _study(n: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(
        lambda t: t.suggest_float("x", 0, 1) + 0.001 * t.suggest_float("y", 0, 1), n_trials=n
    )
    return study


def test_importance_finds_the_parameter_that_matters():
    info = _get_importance_info(_study(30))
    assert info.params == ["x", "y"] and info.importances[0] > 0.9
    assert info.trials == 30 and "fANOVA" in info.note
    fig = _get_importance_plot(info)
    assert list(fig.data[0].y) == ["y", "x"]  # largest at the top of a horizontal bar chart


def test_importance_says_when_there_are_too_few_trials_or_no_study():
    info = _get_importance_info(_study(3))
    assert info.params == [] and info.note.startswith("Not enough trials for fANOVA: 3")
    fig = _get_importance_plot(info)
    assert fig.layout.annotations[0].text.startswith("Not enough trials")
    assert _get_importance_info(None).note.startswith("No Optuna study")


def test_importance_reads_the_stored_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(1))  # fmt: skip
    study.optimize(lambda t: t.suggest_float("a", 0, 1) ** 2, n_trials=8)
    exp_dir = write_experiment(tmp_path / "e", trials=4)
    (tmp_path / "optuna.db").rename(exp_dir / "optuna.db")
    from analysis import load_study

    loaded = load_study(load_experiment(exp_dir))
    assert loaded.study_name == "s" and len(loaded.trials) == 8


def test_best_model_info_and_figure(tmp_path):
    exp = load_experiment(write_experiment(tmp_path / "e", trials=6))
    info = _get_best_model_info(exp.best, exp.per_class)
    assert info.classes == exp.best["classes"] and len(info.confusion) == 10
    assert all(sum(row) == pytest.approx(1.0) for row in info.confusion)
    names = [name for name, _ in info.series]
    assert names[1:] == ["baseline (trial 0)", "lab report (CIFAR-10)"]
    assert info.series[2][1][3] == 0.56  # the lab's cat
    best_diag = [info.confusion[i][i] for i in range(10)]
    assert info.series[0][1] == pytest.approx(best_diag)
    fig = _get_best_model_plot(info)
    heat = [t for t in fig.data if isinstance(t, go.Heatmap)][0]
    assert np.allclose(heat.z, info.confusion)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert [b.name for b in bars] == names and list(bars[2].y)[3] == 0.56


def test_best_model_without_best_json_says_so():
    info = _get_best_model_info(None, pd.DataFrame(columns=["class", "model", "test_acc"]))
    fig = _get_best_model_plot(info)
    assert "No best trial" in fig.layout.annotations[0].text


def test_diagnoses_figure_has_a_panel_per_label(epochs):
    diagnoses = pd.DataFrame(
        {"trial_index": [0, 1, 2, 3, 4],
         "diagnosis": ["healthy", "overfitting", "stopped early", "stopped early", "diverged"]}
    )  # fmt: skip
    info = _get_diagnoses_info(diagnoses, epochs)
    assert [(p.label, p.trial_index) for p in info.panels] == [
        ("diverged", [4]),
        ("overfitting", [1]),
        ("stopped early", [2, 3]),
        ("healthy", [0]),
    ]
    assert info.panels[0].val_loss == [[2.0, None]]
    fig = _get_diagnoses_plot(info)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["diverged (1)", "overfitting (1)", "stopped early (2)", "healthy (1)"]
    val = [t for t in fig.data if t.name == "validation loss" and t.xaxis == "x3"][0]
    assert list(val.x) == [1, None, 1, None]  # both stopped trials, gaps between them
    assert all(getattr(fig.layout, f"yaxis{i}").type == "log" for i in ("", "2", "3", "4"))


@pytest.mark.parametrize(
    "build",
    [
        lambda t, e: _get_accuracy_cost_plot(_get_accuracy_cost_info(t)),
        lambda t, e: _get_parallel_plot(_get_parallel_info(t)),
        lambda t, e: _get_param_effects_plot(_get_param_effects_info(t)),
        lambda t, e: _get_learning_curves_plot(_get_learning_curves_info(t, e, None)),
        lambda t, e: _get_progress_plot(_get_progress_info(t, e, 3)),
        lambda t, e: _get_rungs_plot(_get_rungs_info(t, 3)),
        lambda t, e: _get_diagnoses_plot(_get_diagnoses_info(pd.DataFrame(), e)),
    ],
)
def test_every_figure_copes_with_an_experiment_without_trials(build):
    fig = build(pd.DataFrame(), pd.DataFrame())
    assert isinstance(fig, go.Figure) and fig.layout.annotations  # a note, not a crash


# --- Pareto front (multi-objective) -------------------------------------------------------------


def _mo_trials() -> pd.DataFrame:
    return pd.DataFrame({
        "trial_index": [0, 1, 2, 3, 4],
        "status": ["completed", "completed", "completed", "stopped", "completed"],
        "best_val_acc": [0.90, 0.80, 0.70, 0.95, 0.60],
        "params": [9000, 1000, 5000, 100, 2000],
        "is_baseline": [False] * 5,
        "outcome": ["completed"] * 3 + ["stopped by ASHA at epoch 1", "completed"],
    })  # fmt: skip


def _mo_best() -> dict:
    objectives = [
        {"name": "val_acc", "metric": "best_val_acc", "column": "best_val_acc", "mode": "max"},
        {"name": "params", "metric": "params", "column": "params", "mode": "min"},
    ]
    front = [{"trial_index": 0, "objectives": {"val_acc": 0.9, "params": 9000}},
             {"trial_index": 1, "objectives": {"val_acc": 0.8, "params": 1000}}]  # fmt: skip
    return {"trial_index": 1, "objectives": objectives, "pareto_front": front}


def test_pareto_info_takes_the_front_knee_and_pick_from_best_json():
    from analysis.plots._pareto_front import _get_pareto_info

    info = _get_pareto_info(_mo_trials(), _mo_best(), picked=0)
    assert info.names == ["val_acc", "params"] and info.modes == ["max", "min"]
    assert sorted(info.x) == [1000, 2000, 5000, 9000]  # completed trials only...
    assert info.stopped_x == [100] and info.stopped_y == [0.95]  # ...stopped ones apart
    assert info.front_index == [0, 1] and info.front_x == [9000, 1000]
    assert (info.knee, info.picked) == (1, 0)
    assert _get_pareto_info(_mo_trials(), {"trial_index": 0}) is None  # single objective


def test_pareto_plot_draws_front_knee_and_pick():
    from analysis.plots import plot_pareto_front

    fig = plot_pareto_front(_mo_trials(), _mo_best(), picked=0)
    names = [t.name for t in fig.data]
    assert names[:3] == ["stopped early (truncated: not on the front)", "completed trials",
                         "Pareto front"]  # fmt: skip
    assert "knee (the search's pick)" in names and "your pick (--pick)" in names
    front = fig.data[2]
    assert list(front.x) == [1000, 9000]  # drawn in order along the x axis
    assert fig.layout.xaxis.type == "log"  # params span orders of magnitude
    empty = plot_pareto_front(_mo_trials(), None)
    assert "Not a multi-objective search" in str(empty.layout.annotations[0].text)
