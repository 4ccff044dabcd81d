"""Trial failures: persistent errors end in ERROR/FAIL without stopping the search, retries
continue from checkpoints, Ray's memory monitor. (A lost node, on real hosts: test_hosts.py.)"""

from __future__ import annotations

import importlib
import io
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from gate_fixture import Gate, write_net
from study_fixture import journal_study

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


def test_a_persistent_error_ends_in_error_and_fail_and_the_others_finish(
    tmp_path, monkeypatch, shared_ray
):
    space = SearchSpace("flaky", "test space with a broken choice", flaky_space, baseline=None)
    monkeypatch.setitem(search_spaces.SPACES, "flaky", space)
    # The pre-Ray space check would refuse this space outright
    # (tests/search_spaces/test_user_spaces.py);
    # here the broken choice must reach the trials, as a runtime failure would.
    search_module = importlib.import_module("tuner.driver.run")
    from search_spaces.check import CheckReport

    skipped = CheckReport("flaky", 0, 0.0, (0, 0), (0, 0))
    monkeypatch.setattr(search_module, "dry_run_space", lambda *args: skipped)
    cfg = SearchConfig(no_confirm=True,
                       space="flaky", samples=4, epochs=2, searcher="random", scheduler="fifo",
                       out=str(tmp_path), name="flaky", max_failures=1, seed=2)  # fmt: skip
    result = search(cfg, stream=io.StringIO())
    trials = result.trials
    broken = trials["config/pool"] == "median"
    assert broken.any() and (~broken).any(), "the seed should sample both choices"
    assert (trials.loc[broken, "status"] == "error").all()
    assert (trials.loc[broken, "num_failures"] == 2).all()  # first try + one retry
    assert trials.loc[broken, "error"].str.contains("pool").all()
    assert (trials.loc[~broken, "status"] == "completed").all()
    study = journal_study(result.experiment_dir, "flaky")
    states = {t.params["pool"]: set() for t in study.trials}
    for t in study.trials:
        states[t.params["pool"]].add(t.state.name)
    assert states == {"median": {"FAIL"}, "max": {"COMPLETE"}}


def tiny_space(trial, input_size=8):
    trial.suggest_categorical("channels_b0", [4, 8])
    return {"n_blocks": 1, "fc_layers": 0, "batch_norm": True, "hflip": False,
            "optimizer": "adam", "lr": 3e-3}  # fmt: skip


def kill_workers(marks: Path, after: int) -> Any:
    """A Tune callback (the driver's) that SIGKILLs the worker of two trials once each has
    reported `after` epochs, at the two points of Tune's loop a worker may die at:

    - "save": the first trial's, as its result comes in, before Tune asks the worker for the
      checkpoint the result brought. Tune 2.60 sets a STOP aside for a trial that fails while
      its checkpoint is being saved, and saved it with its state; the retried trial then
      carried it out after one epoch (tuner.driver.fence.recovery.forget_pending_decisions).
    - "train": another trial's, once Tune has saved that checkpoint and goes on to ask for the
      next epoch.

    Events of Tune's own, not a clock. Each kill is recorded in `marks` first and happens once:
    a resume restores this callback from tuner.pkl, and finds them there. (Made here so that
    collecting this module does not import Ray.)"""
    from ray.tune import Callback
    from ray.tune.result import SHOULD_CHECKPOINT

    def killed(moment: str) -> str | None:
        path = marks / moment
        return json.loads(path.read_text())["trial_id"] if path.exists() else None

    def kill(moment: str, trial: Any, result: dict) -> None:
        (marks / moment).write_text(json.dumps({"trial_id": trial.trial_id,
                                                "epoch": result["epoch"]}))  # fmt: skip
        os.kill(result["pid"], signal.SIGKILL)

    class KillWorkers(Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                            **_: Any) -> None:  # fmt: skip
            due = result.get("epoch", 0) >= after and result.get(SHOULD_CHECKPOINT)
            if due and killed("save") is None:
                kill("save", trial, result)

        def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                          **_: Any) -> None:  # fmt: skip
            result, first = trial.last_result, killed("save")
            if (result.get("epoch", 0) >= after and first not in (None, trial.trial_id)
                    and killed("train") is None):  # fmt: skip
                kill("train", trial, result)

    return KillWorkers()


def test_resume_retry_errored_runs_errored_trials_again_from_their_checkpoint(
    tmp_path, monkeypatch, shared_ray
):
    """Both trials' workers die after three epochs (kill_workers), one while Tune saves its
    checkpoint and one while Tune asks for its next epoch; with no retries left both end in
    ERROR. `resume(retry_errored=True)` runs each again from its checkpoint to the end."""
    from tuner import resume
    from tuner.driver import tuner_setup

    epochs = 6
    space = SearchSpace("tiny", "two tiny nets", tiny_space, baseline=None)
    monkeypatch.setitem(search_spaces.SPACES, "tiny", space)
    marks = tmp_path / "marks"
    marks.mkdir()
    killer, mlflow = kill_workers(marks, after=3), tuner_setup._mlflow
    # The end of the search's callback list (the MLflow callback's place) takes one more.
    monkeypatch.setattr(tuner_setup, "_mlflow", lambda cfg: [*mlflow(cfg), killer])
    exp = tmp_path / "errored"
    cfg = SearchConfig(no_confirm=True,
                       space="tiny", samples=2, epochs=epochs, scheduler="fifo", concurrency=1,
                       out=str(tmp_path), name="errored", max_failures=0, seed=1)  # fmt: skip
    out = io.StringIO()
    first = search(cfg, stream=out)
    killed = {m.name: json.loads(m.read_text()) for m in marks.iterdir()}
    assert set(killed) == {"save", "train"}, (killed, out.getvalue()[-2000:])
    trials = first.trials.set_index("trial_id")
    victims = sorted(kill["trial_id"] for kill in killed.values())
    assert victims == sorted(trials.index)  # two different trials
    assert (trials["status"] == "error").all(), trials["status"]  # no retries: max_failures 0
    assert "--retry-errored" in out.getvalue()
    # What the first kill leaves in Tune's saved state: the STOP it set aside for that trial.
    state = json.loads(sorted(exp.glob("experiment_state-*.json"))[-1].read_text())
    assert state["runner_data"]["_cached_trial_decisions"] == {killed["save"]["trial_id"]: "STOP"}

    again = resume(exp, stream=io.StringIO(), retry_errored=True)
    assert {m.name for m in marks.iterdir()} == set(killed)  # nothing killed in the resume
    # What resume() returns: the experiment, its tables as on disk, the best trial, the report.
    assert again.experiment_dir == exp
    assert not again.interrupted and not again.stopped_by_clock and again.stop_reason is None
    trials = again.trials.set_index("trial_id")
    assert sorted(trials.index) == victims
    assert (trials["status"] == "completed").all(), trials["status"]
    assert (trials["epochs_run"] == epochs).all(), trials["epochs_run"]
    on_disk = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str}).set_index("trial_id")
    assert on_disk.loc[trials.index, "status"].tolist() == trials["status"].tolist()
    assert again.best is not None and again.best["trial_id"] in victims
    assert again.best["status"] == "completed" and again.best["epochs_run"] == epochs
    assert again.best["trial_id"] == json.loads((exp / "best.json").read_text())["trial_id"]
    assert again.report is not None and again.report.is_file()
    for moment, kill in killed.items():
        trial_dir = exp / trials.loc[kill["trial_id"], "trial_dir"]
        rows = [json.loads(x) for x in (trial_dir / "result.json").read_text().splitlines()]
        restarts = [r["epoch"] for r in rows if r["iterations_since_restore"] == 1]
        # Retried from its checkpoint of the epoch it was killed after, not from epoch 1.
        assert restarts == [1, kill["epoch"] + 1], (moment, restarts)
        # Every epoch once, in the epochs the resume returned.
        mine = again.epochs[again.epochs["trial_id"] == kill["trial_id"]]
        assert mine["epoch"].tolist() == list(range(1, epochs + 1)), moment
    study = journal_study(exp, "errored")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]


def test_a_cut_short_newest_checkpoint_is_passed_over_and_the_resume_says_so(tmp_path, shared_ray):
    """A crash or a full disk cut a trial's newest checkpoint short: the resume continues that
    trial from an older one, or from epoch 1 (the search keeps one), and says which."""
    from cli_fixture import Child, run_here, tail, tuner
    from gate_fixture import gated_search_args

    from tuner.train.checkpoints import read_state

    exp = tmp_path / "cut"
    gate = Gate(tmp_path / "gate")
    gate.give(2)  # trial 0 trains two epochs (a checkpoint each), then waits
    command = tuner("search", *gated_search_args(write_net(tmp_path)), "--no-confirm",
                    "--samples", "3", "--epochs", "4", "--scheduler", "fifo",
                    "--concurrency", "1", "--seed", "2", "--checkpoint-interval", "0",
                    "--out", str(tmp_path), "--name", "cut")  # fmt: skip
    child = Child(command, tmp_path / "search.log", env=gate.env())

    def reported() -> int:  # epochs the driver has taken in (and so the checkpoints it knows)
        return max((len(f.read_text().splitlines()) for f in exp.glob("trial_*/result.json")),
                   default=0)  # fmt: skip

    child.wait_for(lambda: reported() >= 2, "a trial's second epoch")
    child.proc.send_signal(signal.SIGINT)
    child.wait_for_output("\nCtrl-C: ")
    gate.open()  # the held trial finishes the epoch it waited for; there Tune stops it
    assert child.wait() == 130, tail(child.output())
    running = pd.read_csv(exp / "trials.csv").query("status == 'running'")
    assert len(running) == 1, tail(child.output())
    trial_dir = exp / running.iloc[0]["trial_dir"]
    # The search keeps one checkpoint a trial, two while a newer one is being saved.
    *older, newest = sorted(trial_dir.glob("checkpoint_*"))
    state = newest / "state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 3])

    # Ray may have been deleting the older one when the search stopped: it counts only if
    # it can be read. Either way the resume must say what it did, and do it.
    readable = [c for c in reversed(older) if read_state(c) is not None]
    resume_at = read_state(readable[0])["epoch"] + 1 if readable else 1
    unreadable = [newest] + [c for c in reversed(older) if read_state(c) is None]
    said = (f"{trial_dir.name}: checkpoint {', '.join(c.name for c in unreadable)} is missing "
            "or cut short; ")  # fmt: skip
    said += f"it continues from {readable[0].name}" if readable else "it starts again from epoch 1"
    resumed = run_here("resume", str(exp))  # in this process: its words, not its process
    assert resumed.returncode == 0, tail(resumed.stdout) + tail(resumed.stderr)
    assert said in resumed.stdout, resumed.stdout
    rows = [json.loads(x) for x in (trial_dir / "result.json").read_text().splitlines()]
    restart = [r["epoch"] for r in rows if r["iterations_since_restore"] == 1][-1]
    assert restart == resume_at  # from the one before it, or from scratch
    assert [r["epoch"] for r in rows][-1] == 4
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 3 and (trials["status"] == "completed").all()


HOG = """
import sys, time
import numpy as np
hog = np.ones(int(sys.argv[1]), dtype=np.uint8)  # touched: really resident
print("allocated", flush=True)
time.sleep(600)
"""

# The trials' network: a layer that, once a trial has trained two epochs (60 training batches
# of digits, 23 a batch of 64), waits until the release file exists. Every trial is then surely
# running while the hog's pages come in: an event, not a race. (With 60 free-running epochs a
# quiet CI machine once finished them all before the kill; with a hold file the test touched
# when the driver had written a trial's second epoch, the trials were already past it, since
# the driver writes result.json behind the trials, and none was left running to kill.) Only in
# a trial's process: the driver prices each configuration by running the network once.
HOLD_NET = """
import os, time
from torch import nn


class Hold(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        if self.training and os.getpid() != {driver}:
            self.calls += 1
            while self.calls > 60 and not os.path.exists({release!r}):
                time.sleep(0.05)
        return x


def build(params, input_shape, num_classes):
    c, width = input_shape[0], params["channels_b0"]
    return nn.Sequential(Hold(), nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))
"""
EPOCHS = 6


@pytest.mark.own_ray  # its own Ray, with a memory monitor's threshold
def test_a_trial_killed_by_rays_memory_monitor_is_retried_and_the_others_finish(tmp_path):
    """Ray's memory monitor kills a worker when the node's memory use passes its threshold.
    Here the threshold is set 5 GB above what the machine uses now (room for Ray's own
    processes and whatever else runs here). The trials hold in their third epoch (HOLD_NET);
    once the driver has a trial's two epochs, a process outside Ray takes 10 GB, 5 GB past the
    threshold; the monitor kills a trial, the hog is ended and the trials released as soon as
    a trial has failed, and the killed trial continues from its checkpoint."""
    import subprocess
    import sys

    import psutil
    import ray

    from tuner.driver.ray_runtime import keep_local_ray_on_loopback

    memory = psutil.virtual_memory()
    if memory.available < 16 * 2**30:
        pytest.skip("needs 16 GB of free memory to push the node over a threshold safely")
    used = 1 - memory.available / memory.total
    threshold = min(0.95, used + 5 * 2**30 / memory.total)
    release = tmp_path / "release"
    net = tmp_path / "hold_net.py"
    net.write_text(HOLD_NET.format(driver=os.getpid(), release=str(release)))
    keep_local_ray_on_loopback()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
             _system_config={"memory_usage_threshold": threshold,
                             "memory_monitor_refresh_ms": 100})  # fmt: skip
    exp = tmp_path / "oom"
    hog: list[subprocess.Popen] = []
    log = io.StringIO()

    def squeeze() -> None:
        deadline = time.monotonic() + 300  # ends only a test whose monitor never kills
        try:
            while time.monotonic() < deadline:
                results = list(exp.glob("trial_*/result.json"))
                if not hog and any(len(f.read_text().splitlines()) >= 2 for f in results):
                    hog.append(subprocess.Popen([sys.executable, "-c", HOG, str(10 * 2**30)]))
                # A kill shows as a trial's error.txt, or (when Tune's actor manager chokes on
                # it) as the driver's line that it restored the search.
                if hog and (
                    any(exp.glob("trial_*/error.txt")) or "memory monitor" in log.getvalue()
                ):
                    return
                time.sleep(0.05)
        finally:
            for proc in hog:
                proc.kill()  # pressure off, trials released: the retried one can finish
            release.touch()

    thread = threading.Thread(target=squeeze, daemon=True)
    thread.start()
    try:
        space = SearchSpace("tiny", "two tiny nets", tiny_space, baseline=None)
        search_spaces.SPACES["tiny"] = space
        cfg = SearchConfig(no_confirm=True, model=f"{net}:build",
                           space="tiny", samples=3, epochs=EPOCHS, scheduler="fifo", seed=4,
                           out=str(tmp_path), name="oom", max_failures=3)  # fmt: skip
        result = search(cfg, stream=log)
    finally:
        search_spaces.SPACES.pop("tiny", None)
        thread.join(timeout=310)
        for proc in hog:
            proc.kill()
        ray.shutdown()
    assert hog, "the trials never got going"
    errors = {f.parent.name: f.read_text() for f in exp.glob("trial_*/error.txt")}
    restored = "Ray's memory monitor killed a trial" in log.getvalue()
    assert errors or restored, (
        f"the memory monitor killed nothing (threshold {threshold:.3f} of "
        f"{memory.total / 2**30:.1f} GB, used at the start {used:.3f}, now "
        f"{psutil.virtual_memory().percent / 100:.3f} without the hog)"
    )
    assert all("memory" in text for text in errors.values())
    trials = result.trials.set_index("trial_dir")
    assert (trials["status"] == "completed").all(), (trials["status"], log.getvalue()[-2000:])
    assert (trials["epochs_run"] == EPOCHS).all()
    # Every epoch of every trial was reported once in the end, the killed ones included.
    per_trial = result.epochs.groupby("trial_index")["epoch"].apply(list)
    assert all(epochs == list(range(1, EPOCHS + 1)) for epochs in per_trial)
