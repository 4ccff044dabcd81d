"""The confirm stage's pieces without Ray: which configurations it retrains, the intervals,
the winner and the verdict, and its options' bad input."""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import pandas as pd
import pytest

from tuner.cli import main
from tuner.config.search_config import SearchConfig
from tuner.driver.confirm import plan
from tuner.experiment.stats import (
    LOGIT_T,
    accuracy_interval,
    describe,
    difference,
    mean_interval,
    t_quantile,
)
from tuner.stages.confirm_runs import summarize, winner_run


def test_t_quantiles_match_the_tables():
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (30, 2.042)):
        assert t_quantile(df) == pytest.approx(value, abs=1e-3)


def test_mean_interval_by_hand_for_losses_never_below_zero():
    values = [0.91, 0.93, 0.96]
    got = mean_interval(values)
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = 4.302652730 * sd / math.sqrt(3)
    assert got["mean"] == pytest.approx(mean) and got["n"] == 3
    assert (got["low"], got["high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    one = mean_interval([0.5])
    assert one["low"] is None and one["high"] is None
    with pytest.raises(ValueError):
        mean_interval([float("nan")])
    loss = mean_interval([0.01, 0.5, 0.02])  # plain t: mean - half is below 0
    assert loss["low"] == 0.0 and loss["high"] > loss["mean"]


def test_accuracy_interval_is_t_on_the_logit_by_hand():
    values, images = [0.91, 0.93, 0.96], 500
    got = accuracy_interval(values, images)
    logits = [math.log(v / (1 - v)) for v in values]
    centre, sd = statistics.fmean(logits), statistics.stdev(logits)
    half = 4.302652730 * sd / math.sqrt(3)
    expit = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert got["mean"] == pytest.approx(statistics.fmean(values)) and got["n"] == 3
    assert got["low"] == pytest.approx(expit(centre - half))
    assert got["high"] == pytest.approx(expit(centre + half))
    assert got["method"] == LOGIT_T and got["images"] == images
    assert describe(got) == "95 % t interval on the logit over 3 seeds"
    one = accuracy_interval([0.5])
    assert one["low"] is None and one["high"] is None


@pytest.mark.parametrize(
    "values",
    [[1.0, 1.0, 0.98, 0.99, 1.0], [1.0, 1.0], [0.0, 0.02, 0.0], [0.1, 0.25], [1.0, 1.0, 1.0],
     [0.0, 1.0], [0.5, 0.999, 0.001]],
)  # fmt: skip
@pytest.mark.parametrize("images", [None, 10, 360, 10_000])
def test_accuracy_intervals_stay_inside_0_and_1_and_hold_the_mean(values, images):
    """A plain t interval gave 98.26 % to 100.74 % for the first set, and [-0.66, 1.01] for
    two seeds at 10 and 25 %."""
    got = accuracy_interval(values, images)
    assert got["low"] is not None and got["high"] is not None
    assert 0.0 <= got["low"] <= got["mean"] <= got["high"] <= 1.0
    if values == [1.0, 1.0, 0.98, 0.99, 1.0] and images == 360:
        assert 0.97 < got["low"] < 0.99 and got["high"] < 1.0


def test_difference_is_welch_and_says_tied_when_it_covers_zero():
    a, b = [0.90, 0.92, 0.94], [0.50, 0.52, 0.51]
    d = difference(a, b)
    assert d["diff"] == pytest.approx(statistics.fmean(a) - statistics.fmean(b))
    assert not d["tied"] and d["low"] > 0 and d["call"] == "better" and d["seeds"] == [3, 3]
    tied = difference([0.90, 0.95, 0.92], [0.91, 0.93, 0.94])
    assert tied["tied"] and tied["low"] < 0 < tied["high"] and tied["call"] == "tied"
    same = difference([0.9, 0.9, 0.9], [0.9, 0.9, 0.9])
    assert same["tied"] and same["low"] == same["high"] == 0


def test_two_seeds_are_too_few_to_call_a_difference_tied():
    """The CIFAR search cut short by --time-budget: +37 points on 2 seeds was called a tie
    (95 % CI -43.0 to +117.0)."""
    d = difference([0.55, 0.54], [0.10, 0.25])
    assert d["diff"] == pytest.approx(0.37)
    assert d["call"] == "too few seeds" and not d["tied"] and d["seeds"] == [2, 2]
    assert d["low"] is not None and d["high"] is not None
    assert -1.0 <= d["low"] < 0 < d["high"] <= 1.0  # cut to the possible range
    assert difference([0.9, 0.9, 0.9], [0.9, 0.9])["call"] == "too few seeds"
    one = difference([0.9], [0.5, 0.6, 0.7])
    assert one["low"] is None and one["call"] == "too few seeds" and not one["tied"]
    extreme = difference([1.0, 0.99, 0.2], [0.0, 0.01, 0.8])
    assert extreme["low"] is not None and extreme["high"] is not None
    assert -1.0 <= extreme["low"] and extreme["high"] <= 1.0


def _trials(rows):
    frame = pd.DataFrame(rows, columns=["trial_index", "is_baseline", "best_val_acc",
                                        "best_val_loss", "best_epoch"])  # fmt: skip
    return frame


def test_plan_takes_the_top_k_by_validation_and_the_baseline(tmp_path):
    for index in range(5):
        d = tmp_path / "x" / f"trial_{index:04d}_id{index}"
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps({"lr": 0.01 * (index + 1), "seed": 42}))
    trials = _trials([
        (0, True, 0.30, 2.0, 3), (1, False, 0.80, 0.6, 3), (2, False, 0.95, 0.2, 3),
        (3, False, 0.95, 0.1, 2), (4, False, 0.99, 0.3, 0),  # trial 4 kept no weights
    ])  # fmt: skip
    trials["trial_dir"] = [f"trial_{i:04d}_id{i}" for i in range(5)]
    cfg = SearchConfig(out=str(tmp_path), name="x", confirm_top=2, confirm_seeds=3, epochs=7)
    stage = plan(cfg, trials)
    assert stage is not None
    # 3 before 2 (equal accuracy, lower loss); the baseline added; trial 4 never counts.
    assert [c.trial_index for c in stage.candidates] == [3, 2, 0]
    assert stage.seeds == [1000, 1001, 1002] and stage.epochs == 7
    runs = stage.runs()
    assert len(runs) == 9 and {r["config"]["seed"] for r in runs} == {1000, 1001, 1002}
    assert all(r["config"]["epochs"] == 7 for r in runs)
    assert runs[0]["config"]["lr"] == pytest.approx(0.04)  # trial 3's own config


def _runs(values):
    rows = []
    for (index, baseline), accs in values.items():
        for seed, acc in zip([1000, 1001, 1002], accs, strict=True):
            rows.append({"trial_index": index, "seed": seed, "is_baseline": baseline,
                         "status": "done", "val_acc": acc, "val_loss": 1 - acc,
                         "test_acc": acc - 0.01, "kept_epoch": 3, "run_dir": f"r{index}{seed}",
                         "checkpoint": f"r{index}{seed}/checkpoint_000002"})  # fmt: skip
    return pd.DataFrame(rows)


def test_summarize_names_the_best_mean_and_says_tied():
    runs = _runs({(0, True): [0.30, 0.32, 0.31], (5, False): [0.90, 0.95, 0.92],
                  (7, False): [0.96, 0.91, 0.94]})  # fmt: skip
    key = {"trials": [5, 7, 0], "seeds": [1000, 1001, 1002], "epochs": 3}
    summary = summarize(key, runs, {0: 0.3, 5: 0.97, 7: 0.95})
    assert summary is not None
    assert summary["winner"] == 7  # mean 0.9367 beats trial 5's 0.9233, though 5 led the search
    assert summary["runner_up"] == 5 and summary["vs_baseline"]["trial_index"] == 0
    assert summary["vs_runner_up"]["val"]["tied"]
    assert "is tied with trial 5 at these seeds" in summary["verdict"]
    assert "better than the lab's baseline" in summary["verdict"]
    by_index = {c["trial_index"]: c for c in summary["configs"]}
    assert by_index[7]["val"] == accuracy_interval([0.96, 0.91, 0.94])
    assert by_index[7]["search_val_acc"] == 0.95
    best_run = winner_run(runs, 7)
    assert best_run is not None and int(best_run["seed"]) == 1000  # its best seed on val


def test_summarize_with_two_baseline_seeds_says_too_few_seeds_not_tied(capsys):
    """The confirm stage cut short by --time-budget: the lab's baseline finished 2 seeds."""
    runs = _runs({(0, True): [0.10, 0.25, math.nan], (5, False): [0.55, 0.54, 0.56],
                  (7, False): [0.50, 0.49, 0.51]})  # fmt: skip
    key = {"trials": [5, 7, 0], "seeds": [1000, 1001, 1002], "epochs": 3}
    summary = summarize(key, runs, {0: 0.2, 5: 0.5, 7: 0.5}, val_images=1000, test_images=500)
    assert summary is not None and summary["winner"] == 5
    base = next(c for c in summary["configs"] if c["is_baseline"])
    assert base["val"]["n"] == 2 and base["val"]["images"] == 1000
    assert 0.0 <= base["val"]["low"] <= base["val"]["high"] <= 1.0
    assert base["test"]["images"] == 500
    assert summary["vs_baseline"]["val"]["call"] == "too few seeds"
    verdict = summary["verdict"]
    assert "+37.5 points over the lab's baseline on 3 and 2 seeds" in verdict
    assert "too few seeds to tell them apart" in verdict
    assert "tied with the lab's baseline" not in verdict

    from tuner.stages.console import print_summary

    best = {"trial_index": 5, "val_acc": 0.56, "params": 1000, "confirm": summary}
    print_summary(sys.stdout, Path("exp"), pd.DataFrame(), best, None)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "t interval on the logit" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("lab baseline"))
    low, high = (float(x) for x in line.split("[")[1].split("]")[0].split(", "))
    assert 0.0 <= low <= high <= 1.0 and "(2 seeds)" in line
    assert "too few seeds to tell them apart" in out


def test_summarize_waits_for_a_scored_run():
    runs = _runs({(5, False): [0.9, 0.9, 0.9]})
    runs["status"] = "running"
    assert summarize({"seeds": [1000]}, runs, {}) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "--confirm-top", "0"],
        ["search", "--confirm-seeds", "1"],
        ["search", "--confirm-seeds", "x"],
    ],
)
def test_bad_confirm_options_are_one_line_and_exit_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        code = main([*argv, "--out", str(tmp_path)])
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "confirm" in err[0]
    assert not any(tmp_path.iterdir())


def test_tuner_confirm_refuses_what_is_not_an_experiment(tmp_path, capsys):
    assert main(["confirm", str(tmp_path)]) == 2
    assert "not a search experiment directory" in capsys.readouterr().err


def test_the_slowest_configuration_runs_first(tmp_path):
    """Started last, a slow configuration's runs leave cores idle at the stage's end."""
    for index in range(3):
        d = tmp_path / "x" / f"trial_{index:04d}_id{index}"
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps({"lr": 0.01 * (index + 1)}))
    trials = _trials([(0, True, 0.1, 2.0, 3), (1, False, 0.9, 0.3, 3), (2, False, 0.8, 0.4, 3)])
    trials["trial_dir"] = [f"trial_{i:04d}_id{i}" for i in range(3)]
    trials["train_seconds"], trials["epochs_run"] = [30.0, 3.0, 6.0], [3, 3, 3]
    cfg = SearchConfig(out=str(tmp_path), name="x", confirm_top=2, confirm_seeds=2)
    stage = plan(cfg, trials)
    assert stage is not None and [c.trial_index for c in stage.candidates] == [1, 2, 0]
    assert [r["trial_index"] for r in stage.runs()] == [0, 0, 2, 2, 1, 1]
