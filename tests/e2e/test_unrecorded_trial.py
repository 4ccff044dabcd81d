"""A trial that Tune's restored experiment state does not hold is adopted or run again, not
lost.

A full disk can cut Tune's experiment state short while it is saved; the resume then puts back
the copy of its last whole version (tuner/driver/fence/recovery.py repair_state), which predates the
newest trial, while the searcher's state saved beside it (search_gen_state: 3 trials made) is
whole. Restored as they were, Tune made one trial too few and the search ended "1 of 3 trials
still to run (0 started)" with exit 130, the lost trial's directory read as a trial of its own.
The test leaves that on disk from a real search killed while trial 3 waits at its gate: the
state without trials 2 and 3, trial 3's params.json cut short. Trial 2 had finished, and
Optuna had been told, after the state that is put back: it is added back to Tune's state from
its own files (tuner.driver.fence.recovery.adopt_unrecorded_trials) and kept as it is. Trial 3's
config cannot be read, so it is set aside and run again under its number.
"""

from __future__ import annotations

import json
import os
import pickle
import signal

import pandas as pd
import pytest
from cli_fixture import Child, run_here, tail, tuner
from gate_fixture import Gate, gated_search_args, write_net
from study_fixture import journal_study

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


def test_trials_missing_from_the_restored_state_are_adopted_or_run_again(tmp_path, shared_ray):
    exp = tmp_path / "lost"
    gate = Gate(tmp_path / "gate")
    gate.give(3)  # one trial at a time: trials 0, 1 and 2 train their epoch; 3 waits at the gate
    args = [*gated_search_args(write_net(tmp_path)), "--no-confirm", "--samples", "4",
            "--epochs", "1", "--concurrency", "1", "--scheduler", "fifo", "--seed", "3",
            "--out", str(tmp_path), "--name", "lost"]  # fmt: skip
    child = Child(tuner("search", *args), tmp_path / "search.log", env=gate.env())
    child.wait_for(lambda: generator_count(exp) == 4 and any(exp.glob("trial_0003_*/params.json")),
                   "trial 3 started, in a saved state")  # fmt: skip
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait()

    # What the full disk leaves: an experiment state from before trial 2 (which Optuna has
    # since been told of) and trial 3 (still running), and trial 3's params.json cut short.
    lost = [next(exp.glob(f"trial_000{i}_*")) for i in (2, 3)]
    lost_ids = {d.name.rsplit("_", 1)[-1] for d in lost}
    state_file = sorted(exp.glob("experiment_state-*.json"))[-1]
    state = json.loads(state_file.read_text())
    state["trial_data"] = [item for item in state["trial_data"]
                           if json.loads(item[0])["trial_id"] not in lost_ids]  # fmt: skip
    assert len(state["trial_data"]) == 2
    state_file.write_text(json.dumps(state))
    params = lost[1] / "params.json"
    cut = params.read_text()[:20]
    params.write_text(cut)
    study = journal_study(exp, "lost")
    asked = [(t.number, t.state.name, t.params) for t in study.trials]
    assert [state for _, state, _ in asked] == ["COMPLETE"] * 3 + ["RUNNING"]

    finished = {f.name: f.read_bytes() for f in lost[0].iterdir() if f.is_file()}
    resumed = run_here("resume", str(exp))  # its output, not its process, is the subject
    assert resumed.returncode == 0, tail(resumed.stdout) + tail(resumed.stderr)
    for trial_dir in lost:
        assert f"{trial_dir.name} started after Tune's last saved state" in resumed.stdout
    # Trial 2 is adopted: its directory and files stay as they were, and it is not run again.
    assert (
        f"{lost[0].name} started after Tune's last saved state; Optuna had its outcome; "
        "kept as it is" in resumed.stdout
    )
    assert not (exp / "set-aside" / lost[0].name).exists()
    assert {f.name: f.read_bytes() for f in lost[0].iterdir() if f.is_file()} == finished
    # Trial 3's config cannot be read: set aside, and run again under its number.
    assert (exp / "set-aside" / lost[1].name / "params.json").read_text() == cut

    trials = pd.read_csv(exp / "trials.csv")
    assert sorted(trials["trial_index"]) == [0, 1, 2, 3]
    assert set(trials["status"]) == {"completed"}
    # Optuna's trial 3, asked for before the kill, is the one that ran again, under its
    # number: the same configuration, told, and none asked for twice.
    study = journal_study(exp, "lost")
    assert [(t.number, t.params) for t in study.trials] == [(n, p) for n, _, p in asked]
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert [d.name for d in exp.glob("trial_0002_*")] == [lost[0].name]
    (again,) = exp.glob("trial_0003_*")
    assert again.name.rsplit("_", 1)[-1] not in lost_ids
    ran = json.loads((again / "params.json").read_text())
    assert {k: ran[k] for k in asked[3][2]} == asked[3][2]
    assert study.trials[3].user_attrs["tune_trial_id"] == again.name.rsplit("_", 1)[-1]
    assert study.trials[2].user_attrs["tune_trial_id"] == lost[0].name.rsplit("_", 1)[-1]
