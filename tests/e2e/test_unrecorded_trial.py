"""A trial that Tune's restored experiment state does not hold is run again, not lost.

A full disk can cut Tune's experiment state short while it is saved; the resume then puts back
the copy of its last whole version (tuner/driver/recovery.py repair_state), which predates the
newest trial, while the searcher's state saved beside it (search_gen_state: 3 trials made) is
whole. Restored as they were, Tune made one trial too few and the search ended "1 of 3 trials
still to run (0 started)" with exit 130, the lost trial's directory read as a trial of its own.
The test leaves exactly that on disk (the state without trial 2, trial 2's params.json cut
short) from a real search killed while trial 2 waits at its gate.
"""

from __future__ import annotations

import json
import os
import pickle
import signal

import optuna
import pandas as pd
import pytest
from cli_fixture import Child, run, tail, tuner
from gate_fixture import Gate, gated_search_args, write_net

pytestmark = pytest.mark.slow


def generator_count(exp) -> int:
    """How many trials Tune's newest saved search generator says it has made."""
    states = sorted(exp.glob("search_gen_state-*.json"))  # a pickle, despite its name
    if not states:
        return 0
    try:
        return int(pickle.loads(states[-1].read_bytes())["counter"])
    except (EOFError, pickle.UnpicklingError):  # caught mid-write
        return 0


def test_a_trial_missing_from_the_restored_state_runs_again_under_its_number(tmp_path):
    exp = tmp_path / "lost"
    gate = Gate(tmp_path / "gate")
    gate.give(2)  # trials 0 and 1 train their one epoch; trial 2 waits at the gate
    args = [*gated_search_args(write_net(tmp_path)), "--no-confirm", "--samples", "3",
            "--epochs", "1", "--concurrency", "2", "--scheduler", "fifo", "--seed", "3",
            "--out", str(tmp_path), "--name", "lost"]  # fmt: skip
    child = Child(tuner("search", *args), tmp_path / "search.log", env=gate.env())
    child.wait_for(lambda: generator_count(exp) == 3 and any(exp.glob("trial_0002_*/params.json")),
                   "trial 2 started, in a saved state")  # fmt: skip
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait()

    # What the full disk leaves: the experiment state from before trial 2, and trial 2's
    # params.json cut short.
    (lost_dir,) = exp.glob("trial_0002_*")
    state_file = sorted(exp.glob("experiment_state-*.json"))[-1]
    state = json.loads(state_file.read_text())
    lost_id = lost_dir.name.rsplit("_", 1)[-1]
    state["trial_data"] = [item for item in state["trial_data"]
                           if json.loads(item[0])["trial_id"] != lost_id]  # fmt: skip
    assert len(state["trial_data"]) == 2
    state_file.write_text(json.dumps(state))
    params = lost_dir / "params.json"
    cut = params.read_text()[:20]
    params.write_text(cut)

    resumed = run(tuner("resume", str(exp)))
    assert resumed.returncode == 0, tail(resumed.stdout) + tail(resumed.stderr)
    assert f"{lost_dir.name} started after Tune's last saved state" in resumed.stdout
    assert (exp / "set-aside" / lost_dir.name / "params.json").read_text() == cut

    trials = pd.read_csv(exp / "trials.csv")
    assert sorted(trials["trial_index"]) == [0, 1, 2]
    assert set(trials["status"]) == {"completed"}
    (again,) = exp.glob("trial_0002_*")
    assert again.name != lost_dir.name
    # Optuna's trial 2, asked for before the kill, is the one that ran: the same configuration,
    # told, and no trial left running or asked for twice.
    study = optuna.load_study(study_name="lost", storage=f"sqlite:///{exp / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    ran = json.loads((again / "params.json").read_text())
    assert {k: ran[k] for k in study.trials[2].params} == study.trials[2].params
    assert study.trials[2].user_attrs["tune_trial_id"] == again.name.rsplit("_", 1)[-1]
