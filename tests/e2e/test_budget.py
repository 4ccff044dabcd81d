"""--max-params / --max-macs: over-budget configurations never train, Optuna is told, and the
report lists them."""

from __future__ import annotations

import io
import json

import optuna
import pandas as pd
import pytest
from study_fixture import journal_study

from tuner import SearchConfig, resume, search
from tuner.experiment import REJECTED_ATTR

pytestmark = pytest.mark.slow


def test_a_size_budget_rejects_before_training_and_tells_the_searcher(tmp_path, shared_ray):
    max_params = 30_000
    cfg = SearchConfig(no_confirm=True,
                       samples=5, epochs=1, scheduler="fifo", seed=3, out=str(tmp_path),
                       name="budget", max_params=max_params)  # fmt: skip
    out = io.StringIO()
    result = search(cfg, stream=out)
    exp = result.experiment_dir
    trials = result.trials
    assert len(trials) == 5 and (trials["params"] <= max_params).all()
    # The lab's 2.2M-parameter baseline is over budget: left out, said so, and no trial is
    # reported as the lab's (before, trial 0, a random configuration, was).
    left_out = "the lab's baseline of seed_cnn is over the size budget (1,227,146 params > "
    assert left_out in out.getvalue() and "Lab baseline" not in out.getvalue()
    assert left_out in json.loads((exp / "provenance.json").read_text())["baseline_left_out"]
    assert not trials["is_baseline"].any()
    assert "baseline" not in json.loads((exp / "best.json").read_text())
    rejected = pd.read_csv(exp / "rejected.csv")
    assert len(rejected) >= 1 and (rejected["params"] > max_params).all()
    assert rejected["reason"].str.contains(f"> --max-params {max_params:,}").all()
    assert not ((rejected["config/channels_b2"] == 256) & (rejected["config/lr"] == 0.01)).any()

    study = journal_study(exp, "budget")
    refused = [t for t in study.trials if REJECTED_ATTR in t.user_attrs]
    assert len(refused) == len(rejected)
    # Told: complete with the worst accuracy and a positive violation, which TPE reads (it
    # ranks infeasible trials below feasible ones), so it learns where the budget ends.
    assert all(t.state == optuna.trial.TrialState.COMPLETE and t.value == 0.0 for t in refused)
    assert all(t.constraints["params"] > 0 for t in refused)
    trained = [t for t in study.trials if REJECTED_ATTR not in t.user_attrs]
    assert len(trained) == 5 and all(t.constraints["params"] <= 0 for t in trained)
    from optuna.samplers._tpe.sampler import _get_infeasible_trial_score

    assert all(_get_infeasible_trial_score(t) > 0 for t in refused)

    html = (exp / "report.html").read_text()
    assert 'id="rejected"' in html and "Refused by the size budget" in html
    assert f"{int(rejected['params'].iloc[0]):,}" in html

    # A resume runs the same space, without the baseline: trial 0 is still not the lab's.
    again = resume(exp, stream=io.StringIO())
    assert len(again.trials) == 5 and not again.trials["is_baseline"].any()


def test_the_recipe_is_narrowed_into_the_budget_and_trains_first(shared_ray, tmp_path):
    max_macs = 1_000_000
    # ASHA by the paper's rule, one trial at a time, judged at epoch 1 (4 / 2^2 >= 1): the first
    # trial there has no peer to beat and would be stopped; trial 0, a known point, is not.
    cfg = SearchConfig(no_confirm=True, space="resnet_cnn", samples=4, epochs=2, grace_period=1,
                       reduction_factor=2, concurrency=1, seed=0, out=str(tmp_path),
                       name="narrowed", max_macs=max_macs)  # fmt: skip
    stream = io.StringIO()
    result = search(cfg, stream=stream)
    first = result.trials.set_index("trial_index").loc[0]
    # RECIPE is 128/256/512 channels (about 40M MACs at 8x8): narrowed to width 0.25, and on
    # 1,400-odd digits x 2 epochs its batch of 512 cut to the space's smallest
    assert (first["config/width_mult"], first["config/batch_size"]) == (0.25, 32)
    assert first["status"] == "completed" and first["epochs_run"] == 2 and first["macs"] <= max_macs
    assert "start point 1 of resnet_cnn: width_mult 2.0 -> 0.25" in stream.getvalue()
