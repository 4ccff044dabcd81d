"""The confirm stage's pieces without Ray: which configurations it retrains, the intervals,
the winner and the verdict, and its options' bad input."""

from __future__ import annotations

import json
import math
import statistics

import pandas as pd
import pytest

from tuner.cli import main
from tuner.driver.config import SearchConfig
from tuner.driver.confirm import plan, summarize, winner_run
from tuner.experiment.stats import difference, mean_interval, t_quantile


def test_t_quantiles_match_the_tables():
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (30, 2.042)):
        assert t_quantile(df) == pytest.approx(value, abs=1e-3)


def test_mean_interval_by_hand():
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


def test_difference_is_welch_and_says_tied_when_it_covers_zero():
    a, b = [0.90, 0.92, 0.94], [0.50, 0.52, 0.51]
    d = difference(a, b)
    assert d["diff"] == pytest.approx(statistics.fmean(a) - statistics.fmean(b))
    assert not d["tied"] and d["low"] > 0
    tied = difference([0.90, 0.95, 0.92], [0.91, 0.93, 0.94])
    assert tied["tied"] and tied["low"] < 0 < tied["high"]
    same = difference([0.9, 0.9], [0.9, 0.9])
    assert same["tied"] and same["low"] == same["high"] == 0


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
    assert by_index[7]["val"] == mean_interval([0.96, 0.91, 0.94])
    assert by_index[7]["search_val_acc"] == 0.95
    best_run = winner_run(runs, 7)
    assert best_run is not None and int(best_run["seed"]) == 1000  # its best seed on val


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
