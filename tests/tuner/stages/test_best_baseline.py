"""best.json's lab baseline under --time-budget: scored on the test split unless the budget cut
it out of the confirm stage (its scoring is the one step after the stage that the budget's
reserve does not count: about 30 s on 11,000 CIFAR-10 images, BENCHMARKS.md)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from analysis_fixture import write_experiment

import tuner.stages.best as best_stage
from tuner.config.search_config import SearchConfig
from tuner.data import load_dataset
from tuner.driver.finish import _stage_has_baseline
from tuner.train.trial_data import TrialData


@pytest.fixture()
def experiment(tmp_path, monkeypatch):
    exp = write_experiment(tmp_path / "exp", trials=6, epochs=3)
    scored: list[int] = []

    def score(exp, row, bundle, trial_data, stream, work):  # what would be scored, in what order
        scored.append(int(row["trial_index"]))
        return {"test_acc": 0.5, "test_loss": 1.0, "per_class_acc": {}, "kept_epoch":
                int(row["best_epoch"]), "kept_val_acc": 0.5, "kept_val_loss": 1.0}  # fmt: skip

    monkeypatch.setattr(best_stage, "_score", score)
    cfg = SearchConfig(out=str(tmp_path), name="exp", no_confirm=True)
    trials = pd.read_csv(exp / "trials.csv")
    for row in trials.itertuples():  # each trial's exact config, as the trainable writes it
        config = {c[len("config/"):]: trials.loc[row.Index, c] for c in trials
                  if c.startswith("config/") and pd.notna(trials.loc[row.Index, c])}  # fmt: skip
        (exp / row.trial_dir).mkdir(parents=True, exist_ok=True)
        (exp / row.trial_dir / "params.json").write_text(json.dumps(config, default=str))
    bundle = load_dataset("digits")
    return cfg, trials, bundle, TrialData.from_bundle(bundle), scored


def test_the_baseline_is_scored_on_the_test_split_by_default(experiment):
    cfg, trials, bundle, data, scored = experiment
    best = best_stage.write_best(cfg, trials, bundle, data)
    assert best is not None and best["trial_index"] != 0  # the fixture's baseline is weak
    assert scored == [best["trial_index"], 0]
    assert best["baseline"]["test_acc"] == 0.5 and "not_scored" not in best["baseline"]


def test_a_baseline_the_budget_cut_from_the_stage_is_not_scored_and_says_why(experiment):
    cfg, trials, bundle, data, scored = experiment
    best = best_stage.write_best(cfg, trials, bundle, data, score_baseline=False)
    assert best is not None and scored == [best["trial_index"]]
    assert best["baseline"]["test_acc"] is None
    assert best["baseline"]["not_scored"] == "left out to fit --time-budget"
    assert best["baseline"]["val_acc"] == trials.loc[0, "best_val_acc"]


def test_the_stage_has_the_baseline_only_when_it_retrains_trial_zero(experiment):
    _, trials, *_ = experiment
    assert _stage_has_baseline({"trials": [3, 0], "seeds": [1000]}, trials)
    assert not _stage_has_baseline({"trials": [3, 4], "seeds": [1000]}, trials)
    assert not _stage_has_baseline(None, trials)
