"""The driver's helper process for its torch work (tuner/stages/torch_work.py), with real child
processes and, for the pricer, real torch in the child."""

from __future__ import annotations

import os
import pickle
import signal
import sys

import pytest

from tuner.errors import ConfigError
from tuner.stages.torch_work import HelperLost, NotInHelper, Pricer, TorchHelper, TorchWork
from tuner.train.budget import Cost


def pid() -> int:
    return os.getpid()


def shout_and_add(a: int, b: int) -> int:
    print("this goes to the driver's stderr, never into the reply channel")
    return a + b


def refuse(flag: str) -> None:
    raise ConfigError(f"{flag} is not allowed here")


def torch_loaded() -> bool:
    return "torch" in sys.modules


def describe(bundle: object, trial_data: object, suffix: str) -> str:
    return f"{bundle}/{trial_data}/{suffix}"


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture()
def helper():
    work = TorchHelper(here_if_loaded=False)  # the child, even where this process has torch
    yield work
    work.close()


def test_calls_run_in_a_child_that_close_ends(helper):
    child = helper.run(pid)
    assert child != os.getpid()
    assert helper.run(pid) == child  # one child serves call after call
    process = helper._child
    helper.close()
    assert process is not None and process.poll() == 0  # left its loop at end-of-file
    assert helper.run(pid) != child  # a call after close() starts a new one


def test_what_the_work_prints_goes_to_stderr_and_the_reply_arrives_whole(helper, capfd):
    assert helper.run(shout_and_add, 2, 3) == 5
    out, err = capfd.readouterr()
    assert "this goes to the driver's stderr" in err and "driver's stderr" not in out


def test_an_error_in_the_child_is_raised_here_as_itself(helper):
    with pytest.raises(ConfigError, match="--max-params is not allowed here"):
        helper.run(refuse, "--max-params")
    assert helper.run(shout_and_add, 1, 1) == 2  # the child carries on after it


def test_what_cannot_travel_is_not_in_helper_and_run_or_here_runs_it_here(helper):
    local = 7

    def closure() -> int:  # pickle cannot name it
        return local

    with pytest.raises(NotInHelper):
        helper.run(closure)
    assert helper.run_or_here(closure) == 7


def test_the_dataset_is_installed_once_and_handed_to_each_call(helper):
    with pytest.raises(RuntimeError, match="no dataset installed"):
        helper.run_on_data(describe, "x")
    helper.install("bundle", "data")
    assert helper.run_on_data(describe, "a") == "bundle/data/a"
    helper.close()  # a new child gets the dataset again
    assert helper.run_on_data(describe, "b") == "bundle/data/b"
    here = TorchWork()
    here.install("bundle", "data")
    assert here.run_on_data(describe, "c") == "bundle/data/c"


def test_a_child_that_dies_is_one_error_and_the_next_call_gets_a_new_one(helper):
    before = helper.run(pid)
    killed = r"torch helper process was killed by signal 9 \(most often for memory\) during die"
    with pytest.raises(HelperLost, match=killed):
        helper.run(die)
    assert helper.run(pid) != before


def test_where_torch_is_loaded_already_the_work_runs_here_and_no_child_starts():
    import torch  # noqa: F401  (a notebook, a test process)

    work = TorchHelper()
    work.install("bundle", "data")
    assert work.run(pid) == os.getpid() and work._child is None
    assert work.run_on_data(describe, "d") == "bundle/data/d" and work._child is None


def test_the_pricer_prices_in_its_helper_and_pickles_without_it(helper):
    pricer = Pricer(helper, (1, 8, 8), 10)
    config = {"n_blocks": 1, "channels_b0": 4, "fc_layers": 0, "batch_norm": True}
    cost = pricer(config)
    assert isinstance(cost, Cost) and cost.params > 0 and cost.macs > 0
    assert helper.run(torch_loaded)  # torch was loaded there
    restored = pickle.loads(pickle.dumps(pricer))  # as Tune saves and a resume restores it
    assert restored.work is None
    try:
        assert restored(config) == cost  # a helper of its own (here: torch is loaded here)
    finally:
        assert isinstance(restored.work, TorchHelper)
        restored.work.close()


def test_a_prewarmed_child_serves_the_next_call(helper):
    helper.prewarm()
    child = helper._child
    assert child is not None
    helper.prewarm()  # once is enough: the same child
    assert helper._child is child
    assert helper.run(torch_loaded)  # prewarm's import reply read first, then this one
    assert helper._child is child and helper.run(pid) == child.pid


def test_ctrl_c_is_the_drivers_to_handle_the_child_carries_on(helper):
    child = helper.run(pid)
    os.kill(child, signal.SIGINT)  # as the terminal sends it to the whole group
    assert helper.run(shout_and_add, 2, 2) == 4 and helper.run(pid) == child


def test_the_cli_says_in_one_line_that_the_helper_died_and_how_to_go_on(
    monkeypatch, tmp_path, capsys
):
    import tuner.driver.run as run_module
    from tuner.cli import main

    def search(cfg):  # the search's scoring found its helper killed
        raise HelperLost(
            "the driver's torch helper process was killed by signal 9 (most often for "
            "memory) during score()"
        )

    monkeypatch.setattr(run_module, "search", search)
    code = main(["search", "--out", str(tmp_path), "--name", "lost", "--no-confirm"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines  # not bad input (2): a part of the run died
    assert "killed by signal 9" in lines[0] and f"tuner resume {tmp_path / 'lost'}" in lines[0]
