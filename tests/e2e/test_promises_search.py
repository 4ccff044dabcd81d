"""README promises that no other test held, each in a real search (real Ray, Optuna, training on
digits) of tiny spaces, all sharing one in-process Ray: `tuner confirm` run again keeps the
earlier stage as confirm.previous-1/; the stage under --objectives confirms the knee and the
front points nearest it; `resume --samples N` re-runs the stage over the new candidates;
`resume --time-budget` gives the resumed run a budget of its own; a same-seed resume past TPE's
random start-up proposes what an uninterrupted run does; --grace-period and --asha-rule ray."""

from __future__ import annotations

import io
import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from study_fixture import journal_study

import search_spaces
from search_spaces import SearchSpace
from tuner import SearchConfig, resume, search
from tuner.config.config_file import read_config_file

pytestmark = pytest.mark.slow

FIXED = {"n_blocks": 1, "fc_layers": 0, "batch_norm": True, "hflip": False, "optimizer": "adam"}


def late_space(trial, input_size=8):
    """Trials 3 and on learn 30x faster: raised past 3 trials, the new ones are the top."""
    trial.suggest_categorical("channels_b0", [4, 8])
    return {**FIXED, "lr": 3e-3 if trial.number >= 3 else 1e-4}


WIDTHS = [1, 2, 4, 8, 16, 32]


def sized_space(trial, input_size=8):
    """A network of another size in each trial, so that accuracy trades against parameters
    along a Pareto front of several points."""
    trial.suggest_float("lr", 2e-3, 4e-3, log=True)
    return {**FIXED, "channels_b0": WIDTHS[trial.number % len(WIDTHS)]}


def tpe_space(trial, input_size=8):
    trial.suggest_categorical("channels_b0", [4, 8, 16])
    trial.suggest_float("lr", 1e-3, 3e-2, log=True)
    return dict(FIXED)


def parity_space(trial, input_size=8):
    """Odd trials barely learn (lr 1e-6): ASHA has a loser to stop whatever the order."""
    trial.suggest_categorical("channels_b0", [4, 8])
    return {**FIXED, "lr": 3e-3 if trial.number % 2 == 0 else 1e-6}


SPACES = {"late": late_space, "sized": sized_space, "tpe": tpe_space, "parity": parity_space}


@pytest.fixture(scope="module", autouse=True)
def registered_spaces(shared_ray):
    """The module's searches on one in-process Ray (conftest's shared_ray), with the test
    spaces registered for the module."""
    with pytest.MonkeyPatch.context() as patch:
        for name, define in SPACES.items():
            patch.setitem(search_spaces.SPACES, name, SearchSpace(name, name, define, None))
        yield


def _config(out: Path, name: str, **options: Any) -> SearchConfig:
    base = {"dataset": "digits", "epochs": 2, "scheduler": "fifo", "seed": 1}
    return SearchConfig(out=str(out), name=name, **{**base, **options})


def _stage_files(confirm_dir: Path) -> dict[str, str]:
    """Each run directory of a confirm stage and the result.json it wrote."""
    return {d.name: (d / "result.json").read_text() for d in sorted(confirm_dir.glob("run_*"))}


def _snapshot(exp: Path) -> dict[str, Any]:
    return {
        "trials": pd.read_csv(exp / "trials.csv"),
        "best": json.loads((exp / "best.json").read_text()),
        "runs": pd.read_csv(exp / "confirm.csv"),
        "stages": {d.name: _stage_files(d) for d in sorted(exp.glob("confirm*")) if d.is_dir()},
    }


def _top(trials: pd.DataFrame, k: int) -> list[int]:
    ranked = trials.sort_values(["best_val_acc", "best_val_loss"], ascending=[False, True])
    return ranked["trial_index"].head(k).tolist()


# --- 1 and 3: `tuner confirm` again, then `tuner resume --samples`, on one experiment -----------


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A finished search of 3 one-epoch trials with its confirm stage (the top 1, 2 seeds)."""
    cfg = _config(tmp_path_factory.mktemp("staged"), "staged", space="late", samples=3,
                  epochs=1, confirm_top=1, confirm_seeds=2)  # fmt: skip
    result = search(cfg, stream=io.StringIO())
    assert not result.interrupted
    return result.experiment_dir, _snapshot(result.experiment_dir)


@pytest.fixture(scope="module")
def reconfirmed(staged):
    """`tuner confirm DIR --confirm-top 2` on it: the stage again, with other settings."""
    exp, before = staged
    out = io.StringIO()
    result = resume(exp, stream=out, confirm_only=True, confirm_top=2)
    assert not result.interrupted
    return exp, before, _snapshot(exp), out.getvalue()


@pytest.fixture(scope="module")
def raised(reconfirmed):
    """Then `tuner resume DIR --samples 6`: three more trials, each better than the first three."""
    exp, _, before, _ = reconfirmed
    trials_before = pd.read_csv(exp / "trials.csv")
    result = resume(exp, stream=io.StringIO(), samples=6)
    return exp, trials_before, before, result


def test_tuner_confirm_again_keeps_the_earlier_stage_as_confirm_previous_1(reconfirmed):
    exp, before, after, out = reconfirmed
    first = before["best"]["confirm"]
    assert first["trials"] == _top(before["trials"], 1)
    assert first["seeds"] == [1000, 1001] and len(before["stages"]["confirm"]) == 2
    # The earlier stage, untouched, under its new name; the new one replaces it in confirm/.
    assert set(after["stages"]) == {"confirm", "confirm.previous-1"}
    assert after["stages"]["confirm.previous-1"] == before["stages"]["confirm"]
    assert "kept in confirm.previous-1" in out
    second = after["best"]["confirm"]
    top2 = _top(after["trials"], 2)
    assert second["trials"] == top2 and second["seeds"] == [1000, 1001]
    assert second["complete"] and second["runs_done"] == 4
    assert len(after["stages"]["confirm"]) == 4
    runs = after["runs"]
    assert sorted(zip(runs["trial_index"], runs["seed"], strict=True)) == sorted(
        (t, s) for t in top2 for s in (1000, 1001)
    )
    assert set(runs["run_dir"].str.split("/").str[0]) == {"confirm"}
    assert after["best"]["model"]["from"] == "confirm"
    assert after["best"]["model"]["trial_index"] == second["winner"]
    record = json.loads((exp / "provenance.json").read_text())
    assert record["config"]["confirm_top"] == 2


def test_resume_samples_reruns_the_confirm_stage_over_the_new_candidates(raised):
    exp, trials_before, before, result = raised
    assert not result.interrupted
    trials = pd.read_csv(exp / "trials.csv")
    assert sorted(trials["trial_index"]) == list(range(6))
    assert (trials["status"] == "completed").all() and (trials["epochs_run"] == 1).all()
    kept = trials.set_index("trial_index").loc[[0, 1, 2], "trial_id"].tolist()
    assert kept == trials_before["trial_id"].tolist()  # the first three were not trained again
    # The new trials (lr 3e-3 against 1e-4) are the new top 2: the stage runs again over them.
    top2 = _top(trials, 2)
    assert min(top2) >= 3
    best = json.loads((exp / "best.json").read_text())
    stage = best["confirm"]
    assert stage["trials"] == top2 and stage["complete"] and stage["runs_done"] == 4
    runs = pd.read_csv(exp / "confirm.csv")
    assert sorted(zip(runs["trial_index"], runs["seed"], strict=True)) == sorted(
        (t, s) for t in top2 for s in (1000, 1001)
    )
    assert (runs["status"] == "done").all()
    # The stage it replaces is kept, next to the one before it.
    assert _stage_files(exp / "confirm.previous-2") == before["stages"]["confirm"]
    assert len(_stage_files(exp / "confirm")) == 4
    assert best["trial_index"] in top2 and stage["winner"] in top2
    assert best["model"]["from"] == "confirm" and best["model"]["trial_index"] == stage["winner"]
    record = json.loads((exp / "provenance.json").read_text())
    assert record["confirm"]["trials"] == top2 and record["finished"] is not None
    assert record["samples_raised"][-1]["from"] == 3 and record["samples_raised"][-1]["to"] == 6


# --- 2: the confirm stage under --objectives ----------------------------------------------------


def test_the_confirm_stage_under_objectives_confirms_the_knee_and_its_front_neighbours(
    tmp_path, shared_ray
):
    cfg = _config(tmp_path, "mo", space="sized", samples=len(WIDTHS), confirm_top=2,
                  confirm_seeds=2, objectives="val_acc:max,params:min")  # fmt: skip
    result = search(cfg, stream=io.StringIO())
    trials = result.trials
    # The front by brute force, ordered by the first objective (accuracy, best first), and its
    # knee: nearest the ideal once both objectives are scaled to the front's range.
    done = trials[trials["status"] == "completed"]
    acc, size = done["best_val_acc"].to_numpy(), done["params"].to_numpy()
    on_front = [
        not any(acc[j] >= acc[i] and size[j] <= size[i] and (acc[j] > acc[i] or size[j] < size[i])
                for j in range(len(done)))
        for i in range(len(done))
    ]  # fmt: skip
    front = done[on_front].sort_values(["best_val_acc", "trial_index"], ascending=[False, True])
    assert len(front) >= 3, front[["trial_index", "best_val_acc", "params"]]
    a, p = front["best_val_acc"], front["params"].astype(float)
    x, y = ((a.max() - a) / (a.max() - a.min())).tolist(), ((p - p.min()) / (p.max() - p.min()))
    positions, y = front["trial_index"].tolist(), y.tolist()
    at = min(range(len(positions)), key=lambda i: x[i] ** 2 + y[i] ** 2)
    knee = positions[at]
    # The front point nearest the knee in those scaled objectives (any of them, at a tie).
    away = {t: math.hypot(x[i] - x[at], y[i] - y[at]) for i, t in enumerate(positions) if i != at}
    nearest = {t for t, d in away.items() if d <= min(away.values()) + 1e-12}

    best = result.best
    stage = best["confirm"]
    assert best["trial_index"] == knee
    assert stage["trials"][0] == knee and len(stage["trials"]) == 2  # no baseline in this space
    assert stage["trials"][1] in nearest
    assert stage["seeds"] == [1000, 1001] and stage["complete"] and stage["runs_done"] == 4
    runs = pd.read_csv(result.experiment_dir / "confirm.csv")
    assert sorted(zip(runs["trial_index"], runs["seed"], strict=True)) == sorted(
        (t, s) for t in stage["trials"] for s in (1000, 1001)
    )
    # The knee stays the pick, whichever configuration has the better mean over the seeds.
    assert stage["winner"] == knee and "(the knee of the Pareto front)" in stage["verdict"]
    assert {c["trial_index"] for c in stage["configs"]} == set(stage["trials"])
    assert best["model"]["from"] == "confirm" and best["model"]["trial_index"] == knee
    assert {pt["trial_index"] for pt in best["pareto_front"]} == set(positions)


# --- 4: `tuner resume --time-budget` ------------------------------------------------------------


def test_resume_with_a_time_budget_of_its_own_runs_on_and_finishes(tmp_path, shared_ray):
    cfg = _config(tmp_path, "clock", space="parity", samples=2, no_confirm=True,
                  time_budget=0.01)  # fmt: skip
    first = search(cfg, stream=io.StringIO())
    exp = first.experiment_dir
    assert first.stopped_by_clock and first.interrupted
    assert json.loads((exp / "provenance.json").read_text())["finished"] is None
    # A resume's budget is its own: a tiny one stops it again, as the search's did...
    out = io.StringIO()
    again = resume(exp, stream=out, time_budget=0.01)
    assert again.stopped_by_clock and again.interrupted
    assert "the time budget of 0.01 s is spent" in out.getvalue()
    # ...and one long enough lets it carry the search to its --samples trials.
    out = io.StringIO()
    last = resume(exp, stream=out, time_budget=1800)
    assert not last.stopped_by_clock and not last.interrupted
    assert "time budget" not in out.getvalue()
    trials = pd.read_csv(exp / "trials.csv")
    assert sorted(trials["trial_index"]) == [0, 1]
    assert (trials["status"] == "completed").all() and (trials["epochs_run"] == 2).all()
    record = json.loads((exp / "provenance.json").read_text())
    assert record["finished"] is not None and len(record["resumed"]) == 2
    assert (exp / "best.json").is_file() and (exp / "model.pt").is_file()


def test_a_time_budget_stops_the_search_early_for_a_whole_confirm_stage(
    tmp_path, monkeypatch, shared_ray
):
    """--time-budget keeps its end for the confirm stage. The split's arithmetic is tested on
    scripted results (tests/tuner/driver/test_clock_guard.py); here its effect on a real
    search: once the guard judges that the rest of the budget is the stage's, the search stops,
    the stage runs in full, and the winner's best.json and model.pt are written. The judgement
    is scripted (the whole budget as soon as a trial has trained all its epochs), not timed:
    nothing here depends on how fast this machine is."""
    from tuner.driver import guards
    from tuner.stages.confirm_time import StageSize

    def stage(shape, results, slots, budget):
        done = any(r.get("epoch") == shape.epochs for r in results if r)
        return StageSize(shape.top, shape.baseline, shape.seeds, budget) if done else None

    monkeypatch.setattr(guards, "confirm_stage", stage)
    cfg = _config(tmp_path, "split", space="tpe", samples=8, confirm_top=2, confirm_seeds=2,
                  time_budget=3600)  # fmt: skip
    out = io.StringIO()
    result = search(cfg, stream=out)
    text = out.getvalue()
    exp = result.experiment_dir
    assert result.stopped_by_clock and "the confirm stage needs about" in text, text
    trials = pd.read_csv(exp / "trials.csv")
    assert (trials["status"] == "completed").sum() < 8  # the search stopped early...
    best = json.loads((exp / "best.json").read_text())
    stage = best["confirm"]  # ...and its confirm stage ran in full: each candidate x 2 seeds
    assert 1 <= len(stage["trials"]) <= 2 and stage["complete"], stage
    assert stage["runs"] == stage["runs_done"] == 2 * len(stage["trials"]), stage
    assert best["model"]["trial_index"] == stage["winner"] and (exp / "model.pt").is_file()
    assert "Stopped the search early to leave the end of --time-budget" in text
    assert f"tuner resume {exp}" in text  # the trials not run stay for a resume
    assert json.loads((exp / "provenance.json").read_text())["finished"] is None


# --- 5: a same-seed resume past TPE's random start-up -------------------------------------------

TPE_SAMPLES, STOP_AFTER = 13, 11  # TPE samples at random for its first 10 trials


def interrupt_after(marks: Path, done: int) -> Any:
    """A Tune callback (the driver's) that sends this process SIGINT, a Ctrl-C, once `done`
    trials have completed. Once: a resume restores it from tuner.pkl and finds its mark."""
    from ray.tune import Callback

    class InterruptAfter(Callback):
        count = 0

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
            self.count += 1
            if self.count >= done and not (marks / "sent").exists():
                (marks / "sent").write_text(str(self.count))
                os.kill(os.getpid(), signal.SIGINT)

    return InterruptAfter()


def test_a_resume_past_tpes_start_up_proposes_what_an_uninterrupted_run_does(
    tmp_path, monkeypatch, shared_ray
):
    from tuner.driver import tuner_setup

    options = {"space": "tpe", "samples": TPE_SAMPLES, "epochs": 1, "concurrency": 1,
               "no_confirm": True, "searcher": "tpe", "seed": 11}  # fmt: skip
    reference = search(_config(tmp_path, "ref", **options), stream=io.StringIO())
    assert not reference.interrupted

    marks = tmp_path / "marks"
    marks.mkdir()
    stopper, mlflow = interrupt_after(marks, STOP_AFTER), tuner_setup._mlflow
    with monkeypatch.context() as patch:  # the end of the search's callbacks takes one more
        patch.setattr(tuner_setup, "_mlflow", lambda cfg: [*mlflow(cfg), stopper])
        out = io.StringIO()
        cut = search(_config(tmp_path, "cut", **options), stream=out)
    exp = cut.experiment_dir
    assert cut.interrupted and "Ctrl-C: " in out.getvalue()
    proposed = len(journal_study(exp, "cut").trials)
    assert STOP_AFTER <= proposed < TPE_SAMPLES
    resumed = resume(exp, stream=io.StringIO())
    assert not resumed.interrupted

    def params(name: str) -> list[dict[str, Any]]:
        return [t.params for t in journal_study(tmp_path / name, name).trials]

    ref_params, cut_params = params("ref"), params("cut")
    assert len(cut_params) == len(ref_params) == TPE_SAMPLES
    assert cut_params == ref_params
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == TPE_SAMPLES and (trials["status"] == "completed").all()


# --- 6: the default grace period and --asha-rule ray ------------------------------------------


@pytest.fixture(scope="module")
def rungs_search(tmp_path_factory):
    """6 trials of up to 4 epochs, one at a time, ASHA with the default grace period (3, at
    most epochs - 1), reduction factor 2 (one rung, at epoch 3) and Ray's rule."""
    cfg = _config(tmp_path_factory.mktemp("rungs"), "rungs", space="parity", samples=6,
                  epochs=4, scheduler="asha", reduction_factor=2,
                  asha_rule="ray", concurrency=1, no_confirm=True, max_trials=6)  # fmt: skip
    return search(cfg, stream=io.StringIO())


def test_the_default_grace_period_no_trial_stops_before_it_and_stops_fall_on_rungs(
    rungs_search,
):
    exp = rungs_search.experiment_dir
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 6
    stopped = trials[trials["status"] == "stopped"]
    assert len(stopped) >= 1  # ASHA did stop trials: the grace period is no vacuous check
    assert (trials["epochs_run"] >= 3).all()  # a grace of 1 (the old default) stopped at 1
    assert set(stopped["epochs_run"]) == {3}  # the one rung below the budget
    assert set(trials.loc[trials["status"] == "completed", "epochs_run"]) == {4}
    epochs = pd.read_csv(exp / "epochs.csv")
    for index, group in epochs.groupby("trial_index"):
        assert group["epoch"].tolist() in ([1, 2, 3], [1, 2, 3, 4]), index
    rungs = json.loads((exp / "asha_state.json").read_text())["brackets"][0]
    # Ray's rungs at grace period x rf^k up to the budget: 3 only (3 x 2 = 6 > 4).
    assert sorted(milestone for milestone, _ in rungs) == [3]
    at_three = rungs[0][1]
    assert set(trials["trial_id"]) == set(at_three)
    assert set(stopped["trial_id"]) <= set(at_three)
    # The report names the grace period the search ran with, not the unset option.
    assert "grace period 3," in (exp / "report.html").read_text()


def test_asha_rule_ray_lets_the_first_trial_at_a_rung_through_and_is_recorded(rungs_search):
    exp = rungs_search.experiment_dir
    trials = pd.read_csv(exp / "trials.csv").set_index("trial_index")
    # One trial at a time, so trial 0 reached rung 3 first: Ray's rule lets it through with
    # no one to beat (the paper's rule, at a rung 6 trials reach with rf 2, stops it there).
    assert trials.loc[0, "status"] == "completed" and trials.loc[0, "epochs_run"] == 4
    # Each odd trial (lr 1e-6) came after a good one had set the rung's cutoff: stopped.
    assert (trials.loc[[1, 3, 5], "status"] == "stopped").all()
    record = json.loads((exp / "provenance.json").read_text())
    # The grace period was left to its default: recorded unset, so `tuner search --config
    # search.toml --epochs 2` derives it again instead of refusing a grace of 3.
    assert record["config"]["asha_rule"] == "ray" and record["config"]["grace_period"] is None
    # search.toml, as `tuner search --config` reads it back, runs the same rule.
    again = read_config_file(exp / "search.toml", SearchConfig.options())
    assert again["asha_rule"] == "ray" and again.get("grace_period") is None
    study = journal_study(exp, "rungs")
    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    assert pruned == int((trials["status"] == "stopped").sum())
