"""The diagnosis rules on hand-built learning curves, and the plain-language summary."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis import LABELS, diagnose, diagnose_trials, summarize
from analysis._diagnose import (
    IMPROVING_DROP,
    NOT_LEARNING_SHARE,
    OVERFIT_RISE,
    findings,
)
from tuner.experiment import EXPLODING_LOSS_FACTOR

FALLING = [2.0, 1.2, 0.8, 0.6, 0.5]  # a train loss that keeps falling


def test_a_non_finite_loss_is_diverged():
    d = diagnose([2.0, float("nan")], [2.1, 2.0])
    assert d.label == "diverged" and "nan" in d.reason and "epoch 2" in d.reason
    assert diagnose([2.0, 1.0], [2.1, float("inf")]).label == "diverged"


def test_an_exploding_loss_is_diverged_only_past_the_factor():
    limit = EXPLODING_LOSS_FACTOR * math.log(10)
    assert diagnose([2.3, limit * 1.01], [2.3, 2.2], num_classes=10).label == "diverged"
    # just under the limit it is not a divergence (the loss is merely bad)
    assert diagnose([2.3, limit * 0.99], [2.3, 2.2], num_classes=10).label != "diverged"


def test_the_trainers_verdict_is_diverged():
    assert diagnose([2.0], [2.1], status="diverged").label == "diverged"


def test_overfitting_needs_the_set_rise_and_a_falling_train_loss():
    low = 0.5
    rose = [1.0, 0.7, low, low * (1 + OVERFIT_RISE) + 1e-9, low * (1 + OVERFIT_RISE) + 0.01]
    d = diagnose(FALLING, rose)
    assert d.label == "overfitting"
    assert "epoch 3" in d.reason and "epoch 5" in d.reason
    # a rise just short of the threshold at the last epoch is not overfitting
    short = [1.0, 0.7, low, 0.53, low * (1 + OVERFIT_RISE) * 0.999]
    assert diagnose(FALLING, short).label != "overfitting"
    # the same validation curve with a training loss that went back up is not overfitting
    assert diagnose([2.0, 1.2, 0.8, 0.9, 1.0], rose).label != "overfitting"
    # a rise that came back down by the last epoch is not overfitting at the end
    assert diagnose(FALLING, [1.0, 0.7, low, 0.8, low]).label != "overfitting"


def test_overfitting_ignores_wobbles_of_near_zero_losses():
    # +50 % of 0.004 is 0.002: below the absolute floor of 0.01
    assert diagnose(FALLING, [0.1, 0.01, 0.004, 0.005, 0.006]).label != "overfitting"


def test_stopped_and_crashed_trials_are_stopped_early():
    d = diagnose([2.0, 1.5, 1.0], [2.0, 1.6, 1.2], status="stopped", budget=10)
    assert d == ("stopped early", "stopped at epoch 3 of 10")
    assert diagnose([2.0], [2.0], status="error", budget=10).label == "stopped early"
    assert diagnose([], [], status="error").label == "stopped early"


def test_a_curve_stuck_at_chance_is_not_learning():
    chance = math.log(10)
    flat = [chance * 1.001, chance * 1.0005, chance * 1.0002]
    assert diagnose(flat, flat, num_classes=10, budget=3).label == "not learning"
    below = [chance, chance * (NOT_LEARNING_SHARE - 0.01), chance * (NOT_LEARNING_SHARE - 0.02)]
    assert diagnose(flat, below, num_classes=10).label != "not learning"


def test_a_last_epoch_that_still_lowers_the_loss_is_still_improving():
    val = [1.0, 0.8, 0.6, 0.6 * (1 - IMPROVING_DROP)]
    d = diagnose(FALLING[:4], val, budget=4)
    assert d.label == "still improving"
    # a last epoch only a hair better than before counts as settled
    assert diagnose(FALLING[:4], [1.0, 0.8, 0.6, 0.6 * 0.995]).label == "healthy"


def test_a_settled_curve_is_healthy():
    d = diagnose(FALLING, [1.0, 0.7, 0.52, 0.5, 0.51])
    assert d.label == "healthy" and "epoch 4" in d.reason


def test_diagnose_trials_labels_every_trial_from_the_tables():
    trials = pd.DataFrame(
        {"trial_index": [0, 1, 2, 3], "status": ["completed", "diverged", "stopped", "completed"]}
    )
    epochs = pd.DataFrame(
        {
            "trial_index": [0, 0, 0, 1, 2, 3, 3, 3, 3, 3],
            "epoch": [1, 2, 3, 1, 1, 1, 2, 3, 4, 5],
            "train_loss": [2.0, 1.0, 0.5, 9.0, 2.0, *FALLING],
            "val_loss": [2.0, 1.0, 0.5, 9.0, 2.1, 1.0, 0.7, 0.5, 0.6, 0.7],
        }
    )
    out = diagnose_trials(trials, epochs, num_classes=10)
    assert list(out["trial_index"]) == [0, 1, 2, 3]
    assert list(out["diagnosis"]) == ["still improving", "diverged", "stopped early", "overfitting"]
    assert set(out["diagnosis"]) <= set(LABELS)


def _labelled(lrs, labels, optimizers):
    return pd.DataFrame(
        {
            "trial_index": range(len(lrs)),
            "diagnosis": labels,
            "config/lr": lrs,
            "config/optimizer": optimizers,
        }
    )


def test_the_summary_names_the_range_that_sets_a_label_apart():
    lrs = [0.05, 0.07, 0.09, 0.1] + [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008]
    labels = ["diverged"] * 4 + ["healthy"] * 8
    optimizers = ["adam", "sgd", "adam", "sgd"] + ["adam", "sgd"] * 4
    lines = summarize(_labelled(lrs, labels, optimizers), ["lr", "optimizer"])
    assert lines[0] == (
        "Diverged (trials 0, 1, 2, 3): all 4 diverged trials had lr >= 0.05 "
        "(vs 0 of 8 other trials)."
    )
    assert lines[1].startswith("Healthy (8): all 8 healthy trials had lr <= 0.008")


def test_one_trial_is_too_few_to_say_which_hyperparameters_go_with_it():
    lrs = [0.09, 0.01, 0.02, 0.03]
    labels = ["diverged", "healthy", "healthy", "healthy"]
    lines = summarize(_labelled(lrs, labels, ["adam"] * 4), ["lr", "optimizer"])
    assert lines[0] == (
        "Diverged (trial 0): one trial, too few to tell which hyperparameters go with it."
    )


def test_the_summary_names_a_categorical_value():
    lrs = [0.01] * 8
    labels = ["overfitting"] * 3 + ["healthy"] * 5
    optimizers = ["adam"] * 3 + ["sgd"] * 4 + ["adam"]
    found = [f for f in findings(_labelled(lrs, labels, optimizers), ["lr", "optimizer"])
             if f.label == "overfitting"]  # fmt: skip
    assert found[0].condition == "optimizer = adam"
    assert (found[0].in_group, found[0].group, found[0].in_others, found[0].others) == (3, 3, 1, 5)


def test_the_summary_says_so_when_nothing_sets_a_label_apart():
    lrs = [0.01, 0.02, 0.01, 0.02]
    lines = summarize(_labelled(lrs, ["healthy", "healthy", "overfitting", "overfitting"],
                                ["adam", "sgd", "adam", "sgd"]), ["lr", "optimizer"])  # fmt: skip
    assert "no single hyperparameter range" in lines[0]


@pytest.mark.parametrize("value", [0.0123456, 1e-5, 3.0])
def test_thresholds_are_rounded_so_the_sentence_stays_true(value):
    from analysis._diagnose import _round_sig

    assert _round_sig(value, down=True) <= value <= _round_sig(value, down=False)
