"""Parameter importance for every search: fANOVA on the COMPLETE trials when there are enough,
else on the validation loss at the highest epoch at least 5 trials reached (ASHA stops most
trials early). Synthetic experiments with a real optuna.db; no Ray."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import optuna
import pytest
from analysis_fixture import write_experiment

from analysis import build_report, load_experiment, load_study
from analysis.plots._importance import (
    TITLE,
    _get_importance_info,
    _get_importance_plot,
    objective_names,
)

BUDGET = 4
# 2 trials ran the whole budget, 6 more were stopped at epoch 2, 2 at epoch 1
ASHA_LIKE = [4, 4, 2, 2, 2, 2, 2, 2, 1, 1]


def _experiment(tmp_path, reached, **kw):
    return write_experiment(
        tmp_path / "e", trials=len(reached), epochs=BUDGET, reached=reached, study=True, **kw
    )


def _info(exp_dir, **kw):
    exp = load_experiment(exp_dir)
    return _get_importance_info(
        load_study(exp), trials=exp.trials, epochs=exp.epochs,
        scheduler=str(exp.config.get("scheduler")), objectives=objective_names(exp.config), **kw,
    )  # fmt: skip


def _complete(exp_dir) -> int:
    study = load_study(load_experiment(exp_dir))
    return len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))


def _figure(page: str, fig_id: str) -> dict:
    data = re.search(r'<script type="application/json" id="figure-data">(.*?)</script>', page, re.S)
    assert data is not None
    return json.loads(data.group(1))[fig_id]


def test_report_with_two_complete_trials_shows_importance_at_the_shared_epoch(tmp_path):
    exp_dir = _experiment(tmp_path, ASHA_LIKE)
    assert _complete(exp_dir) == 2  # the classic fANOVA would refuse
    # the all-digit trial ids (00000003) come back from the CSVs as numbers: the join holds
    assert load_experiment(exp_dir).trials["trial_id"].dtype.kind in "iuf"
    page = build_report(exp_dir)
    fig = _figure(page, "fig-importance")
    title = fig["layout"]["title"]["text"]
    assert title == "Parameter importance (fANOVA on validation loss at epoch 2)"
    shares = fig["data"][0]["x"]
    assert len(shares) >= 2 and all(isinstance(v, float) and math.isfinite(v) for v in shares)
    assert sum(shares) == pytest.approx(1.0)
    assert "validation loss at epoch 2" in fig["layout"]["xaxis"]["title"]["text"]
    assert (
        "Only 2 trials are complete in the Optuna study (fANOVA needs 5), so this is fANOVA "
        "(seed 0) on the validation loss at epoch 2, the highest epoch at least 5 trials reached: "
        "8 did (of the others, ASHA stopped 2 earlier)"
    ) in page


def test_five_complete_trials_keep_the_classic_fanova(tmp_path):
    exp_dir = _experiment(tmp_path, [BUDGET] * 6 + [1] * 6)
    assert _complete(exp_dir) == 6
    info = _info(exp_dir)
    assert info.title == TITLE and info.epoch is None and info.trials == 6
    assert info.note.startswith("fANOVA (seed 0) on the 6 complete trials of study 'e', "
                                "objective best_val_acc;")  # fmt: skip
    assert sum(info.importances) == pytest.approx(1.0)
    page = build_report(exp_dir)
    assert _figure(page, "fig-importance")["layout"]["title"]["text"] == TITLE
    assert "objective best_val_acc" in page and "at epoch" not in info.note


@pytest.mark.parametrize(
    "param, loss",
    [("lr", lambda v: 0.5 * (np.log10(v) + 5)),  # 0.5 at lr 1e-4 up to 2 at lr 0.1
     ("batch_size", lambda v: 0.3 * np.log2(v))],  # a categorical one the fixture ignores
)  # fmt: skip
def test_the_parameter_that_drives_the_loss_comes_out_on_top(tmp_path, param, loss):
    # 2 complete, 20 stopped at epoch 2 (8 trials make a weak forest: the winner's margin is
    # small there, so the margin is checked on more)
    exp = load_experiment(_experiment(tmp_path, [BUDGET] * 2 + [2] * 20 + [1] * 2))
    values = exp.trials.set_index("trial_index")[f"config/{param}"].astype(float)
    noise = np.random.default_rng(0).normal(0, 0.01, len(exp.epochs))
    exp.epochs["val_loss"] = loss(exp.epochs["trial_index"].map(values)) + noise
    info = _get_importance_info(load_study(exp), trials=exp.trials, epochs=exp.epochs)
    assert info.epoch == 2 and info.trials >= 20  # less any the fixture's curves diverged
    shares = dict(zip(info.params, info.importances, strict=True))
    assert info.params[0] == param, shares
    assert info.importances[0] > 0.4 and info.importances[0] > 2 * info.importances[1], shares


def test_too_few_trials_at_any_epoch_says_so(tmp_path):
    info = _info(_experiment(tmp_path, [BUDGET, BUDGET, 2, 1]))
    assert info.params == [] and info.epoch is None
    assert info.note == (
        "Not enough trials for fANOVA: 2 complete in the Optuna study, it needs at least 5, and "
        "no epoch has as many: at most 4 trials measured the validation loss at one epoch "
        "(epoch 1)."
    )
    fig = _get_importance_plot(info)
    assert fig.layout.annotations[0].text.startswith("Not enough trials")


def test_fifo_searches_are_not_said_to_be_stopped_by_asha(tmp_path):
    info = _info(_experiment(tmp_path, ASHA_LIKE, scheduler="fifo"))
    assert info.epoch == 2 and "ASHA" not in info.note
    assert "of the others, the search stopped 2 earlier" in info.note


def test_multi_objective_searches_get_importance_on_their_first_objective(tmp_path):
    objectives = "val_acc:max,params:min"
    info = _info(_experiment(tmp_path / "a", [BUDGET] * 6 + [1] * 6, objectives=objectives))
    assert info.title == TITLE and info.trials == 6 and info.value == "val_acc"
    assert "objective val_acc (the first of the search's objectives val_acc, params)" in info.note
    assert sum(info.importances) == pytest.approx(1.0)
    few = _info(_experiment(tmp_path / "b", ASHA_LIKE, objectives=objectives))
    assert few.epoch == 2 and few.trials == 8 and sum(few.importances) == pytest.approx(1.0)
    page = build_report(tmp_path / "b" / "e")
    assert "fANOVA on validation loss at epoch 2" in page
