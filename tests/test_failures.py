"""Trial and node failures: persistent errors end in ERROR/FAIL without stopping the search,
and a lost worker node's trials continue from their checkpoints on the head."""

from __future__ import annotations

import importlib
import io
import json
import threading
import time

import optuna
import pandas as pd
import pytest

import search_spaces
from search_spaces import SearchSpace
from tuner import SearchConfig, search

pytestmark = pytest.mark.slow


def flaky_space(trial, input_size=8):
    """Small, fast networks; one choice ('median' pooling) is a config the trainable refuses."""
    trial.suggest_categorical("pool", ["max", "median"])
    trial.suggest_int("n_blocks", 1, 1)
    trial.suggest_categorical("channels_b0", [4, 8])
    trial.suggest_int("fc_layers", 0, 0)
    return {"batch_norm": True, "hflip": False, "optimizer": "adam", "lr": 3e-3}


def test_a_persistent_error_ends_in_error_and_fail_and_the_others_finish(tmp_path, monkeypatch):
    space = SearchSpace("flaky", "test space with a broken choice", flaky_space, baseline=None)
    monkeypatch.setitem(search_spaces.SPACES, "flaky", space)
    # The pre-Ray space check would refuse this space outright (tests/test_user_spaces.py);
    # here the broken choice must reach the trials, as a runtime failure would.
    search_module = importlib.import_module("tuner.search")  # `tuner.search` is also a function
    monkeypatch.setattr(search_module, "dry_run_space", lambda *args: None)
    cfg = SearchConfig(space="flaky", samples=6, epochs=2, searcher="random", scheduler="fifo",
                       out=str(tmp_path), name="flaky", max_failures=1, seed=2)  # fmt: skip
    result = search(cfg, stream=io.StringIO())
    trials = result.trials
    broken = trials["config/pool"] == "median"
    assert broken.any() and (~broken).any(), "the seed should sample both choices"
    assert (trials.loc[broken, "status"] == "error").all()
    assert (trials.loc[broken, "num_failures"] == 2).all()  # first try + one retry
    assert trials.loc[broken, "error"].str.contains("pool").all()
    assert (trials.loc[~broken, "status"] == "completed").all()
    study = optuna.load_study(
        study_name="flaky", storage=f"sqlite:///{result.experiment_dir / 'optuna.db'}"
    )
    states = {t.params["pool"]: set() for t in study.trials}
    for t in study.trials:
        states[t.params["pool"]].add(t.state.name)
    assert states == {"median": {"FAIL"}, "max": {"COMPLETE"}}


def test_trials_survive_the_loss_of_a_worker_node(tmp_path, two_node_cluster):
    EPOCHS = 36  # noqa: N806  (digits epochs are short: leave time to kill mid-trial)
    cluster, worker = two_node_cluster
    exp = tmp_path / "nodes"
    killed = []

    def kill_worker_node_mid_search():
        deadline = time.time() + 300
        while time.time() < deadline:
            for f in exp.glob("trial_*/result.json"):
                rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
                # Mid-trial only: killed near its last epoch, a trial may finish before Ray
                # notices, and then there is nothing left to resume.
                if rows and rows[-1]["node_id"] == worker.node_id and 2 <= len(rows) <= 20:
                    worker.all_processes["raylet"][0].process.kill()
                    killed.append((f.parent.name, rows[-1]["epoch"]))
                    return
            time.sleep(0.1)

    thread = threading.Thread(target=kill_worker_node_mid_search, daemon=True)
    thread.start()
    cfg = SearchConfig(samples=3, epochs=EPOCHS, scheduler="fifo", searcher="random", seed=1,
                       out=str(tmp_path), name="nodes", address=cluster.address,
                       max_failures=3, checkpoint_interval=0)  # fmt: skip
    result = search(cfg, stream=io.StringIO())
    thread.join(timeout=5)
    assert killed, "no trial ran on the worker node"
    trials = result.trials.set_index("trial_dir")
    assert (trials["status"] == "completed").all(), trials["status"]
    victim = trials.loc[killed[0][0]]
    assert victim["num_failures"] >= 1
    rows = [json.loads(x) for x in (exp / killed[0][0] / "result.json").read_text().splitlines()]
    history = [(r["epoch"], r["iterations_since_restore"], r["node_id"][:6]) for r in rows]
    restarts = [r for r in rows if r["iterations_since_restore"] == 1 and r["epoch"] > 1]
    assert restarts, f"killed at {killed}; the trial should resume, not restart: {history}"
    head = cluster.head_node.node_id
    assert rows[-1]["node_id"] == head  # it finished on the head
    epochs = pd.read_csv(exp / "epochs.csv")
    assert epochs.groupby("trial_index")["epoch"].apply(list).map(len).eq(EPOCHS).all()
