"""--objectives: a multi-objective study, its Pareto front checked by brute force, the knee as
the best model, and `tuner report --pick` for another point (and refused for one off the
front)."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from study_fixture import journal_study

from tuner import SearchConfig, search
from tuner.config.objectives import knee_point, parse_objectives
from tuner.train.config import ConfigError

pytestmark = pytest.mark.slow

# Small networks of one block (quick epochs, parameter counts from ~100 to ~10k); trial 1
# diverges, so the study surely has a trial that is on no front. (No baseline: ASHA's default
# rf 3 at 8 samples judges no rung by the paper's rule, so the first trial at a rung goes on and
# the front is never empty.)
SPACE = """
def space(trial):
    trial.suggest_int("channels_b0", 4, 32, log=True)
    constants = {"n_blocks": 1, "fc_layers": 0, "optimizer": "sgd", "momentum": 0.9}
    if trial.number == 1:  # its loss turns non-finite in epoch 1
        return {**constants, "lr": 1e6}
    trial.suggest_float("lr", 0.02, 0.1, log=True)
    return constants
"""


def brute_force_front(trials: pd.DataFrame) -> set[int]:
    """Completed trials no other completed trial beats on (higher val acc, fewer params)."""
    done = trials[trials["status"] == "completed"]
    front = set()
    for _, a in done.iterrows():
        beaten = any(
            b["best_val_acc"] >= a["best_val_acc"] and b["params"] <= a["params"]
            and (b["best_val_acc"] > a["best_val_acc"] or b["params"] < a["params"])
            for _, b in done.iterrows()
        )  # fmt: skip
        if not beaten:
            front.add(int(a["trial_index"]))
    return front


def test_a_multi_objective_search_writes_the_pareto_front(tmp_path, capsys, shared_ray):
    (tmp_path / "space.py").write_text(SPACE)
    cfg = SearchConfig(no_confirm=True, samples=8, epochs=3, seed=5, out=str(tmp_path), name="mo",
                       grace_period=1,
                       space=f"{tmp_path / 'space.py'}:space", dataset="digits",
                       objectives="val_acc:max,params:min")  # fmt: skip
    stream = io.StringIO()
    result = search(cfg, stream=stream)
    exp, trials = result.experiment_dir, result.trials
    best = json.loads((exp / "best.json").read_text())

    front = {p["trial_index"] for p in best["pareto_front"]}
    assert front == brute_force_front(trials) and front
    assert best["trial_index"] in front
    objectives = parse_objectives(cfg.objectives)
    # The front in its order (best val acc first), which breaks a tie between equally near points
    on_front = trials[trials["trial_index"].isin(front)]
    in_order = on_front.sort_values("best_val_acc", ascending=False, kind="stable")
    assert best["trial_index"] == knee_point(in_order, objectives)
    assert all(p["test_acc"] is not None for p in best["pareto_front"])
    assert "Pareto front (" in stream.getvalue() and "<- knee" in stream.getvalue()

    study = journal_study(exp, "mo")
    assert len(study.directions) == 2
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    outcomes = trials["status"].value_counts().to_dict()
    assert states.get("COMPLETE", 0) == outcomes.get("completed", 0)
    assert states.get("PRUNED", 0) == outcomes.get("stopped", 0)  # ASHA still stops trials
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    by_id = trials.set_index("trial_id")
    for t in done:
        row = by_id.loc[t.user_attrs["tune_trial_id"]]
        assert t.values == [pytest.approx(row["best_val_acc"]), row["params"]]

    html = (exp / "report.html").read_text()
    assert 'id="pareto"' in html and 'id="pareto-table"' in html

    from tuner.cli import main

    other = sorted(front - {best["trial_index"]}) or [best["trial_index"]]
    out = tmp_path / "picked.html"
    assert main(["report", str(exp), "--pick", str(other[0]), "-o", str(out)]) == 0
    assert f"Showing Pareto point trial {other[0]}, picked with --pick." in out.read_text()
    # Trial 1 diverged: it is on no front, and --pick refuses it in one line.
    assert trials.loc[trials["status"] == "diverged", "trial_index"].tolist() == [1]
    assert 1 not in front
    capsys.readouterr()
    assert main(["report", str(exp), "--pick", "1"]) == 2
    err = capsys.readouterr().err
    assert "--pick 1: not a Pareto point" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "text, message",
    [("val_acc", "two or more"), ("val_acc:max,size:min", "unknown objective 'size'"),
     ("val_acc:up,params", "must end in :min or :max"), ("params,params", "two or more")],
)  # fmt: skip
def test_bad_objectives_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_objectives(text)


def test_objectives_default_to_their_natural_direction():
    objectives = parse_objectives("val_acc, latency,train_time")
    assert [(o.metric, o.mode) for o in objectives] == [
        ("best_val_acc", "max"), ("latency_ms", "min"), ("time_total_s", "min")]  # fmt: skip
