"""`tuner status DIR --watch [SECONDS]` refreshes the status until the search ends (README,
"Watch a search while it runs"): on a finished search it prints once and returns; on a running
one it prints again every SECONDS and returns once the search's files say it finished. From
files alone, no Ray: the "search" is a directory whose provenance.json turns finished while the
command sleeps."""

from __future__ import annotations

import json
import os
import time

import pytest
from analysis_fixture import write_experiment, write_partial_experiment

from tuner.cli import main
from tuner.experiment import PROVENANCE_JSON


@pytest.fixture
def sleeps(monkeypatch):
    """time.sleep recorded (and skipped); each call runs the next of `then`, if any."""
    calls: list[float] = []
    then: list = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) > 20:
            raise AssertionError("--watch never stopped")
        if then:
            then.pop(0)()

    monkeypatch.setattr(time, "sleep", sleep)
    return calls, then


def test_watch_on_a_finished_search_prints_it_once_and_returns(tmp_path, sleeps, capsys):
    exp = write_experiment(tmp_path / "done", trials=5, epochs=3)
    assert main(["status", str(exp), "--watch", "0.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{exp}: finished\n") and out.count(f"{exp}: ") == 1
    assert "trials: 5 of 5 finished" in out and "best so far: trial" in out
    assert sleeps[0] == []


def _finish(exp):
    provenance = json.loads((exp / PROVENANCE_JSON).read_text())
    provenance["finished"] = "2026-12-01T10:05:00+00:00"
    (exp / PROVENANCE_JSON).write_text(json.dumps(provenance))


@pytest.mark.parametrize("as_json", [False, True])
def test_watch_refreshes_a_running_search_until_it_ends(tmp_path, sleeps, capsys, as_json):
    exp = write_partial_experiment(tmp_path / "live")  # result files written just now: running
    calls, then = sleeps
    then += [lambda: None, lambda: _finish(exp)]  # finishes during the second wait
    args = ["status", str(exp), "--watch", "7"] + (["--json"] if as_json else [])
    assert main(args) == 0
    assert calls == [7.0, 7.0]
    out = capsys.readouterr().out
    if as_json:  # one object per line, per refresh
        states = [json.loads(line)["state"] for line in out.splitlines()]
    else:
        states = [line.split(": ")[1] for line in out.splitlines() if line.startswith(str(exp))]
    assert states == ["running", "running", "finished"]


def test_without_watch_it_prints_once_even_while_running(tmp_path, sleeps, capsys):
    exp = write_partial_experiment(tmp_path / "live")
    assert main(["status", str(exp)]) == 0
    assert capsys.readouterr().out.startswith(f"{exp}: running\n")
    assert sleeps[0] == []


def test_an_interrupted_search_ends_the_watch(tmp_path, sleeps, capsys):
    exp = write_partial_experiment(tmp_path / "gone")
    old = time.time() - 3600  # its files stopped changing an hour ago
    for f in exp.rglob("*"):
        os.utime(f, (old, old))
    assert main(["status", str(exp), "--watch"]) == 0
    out = capsys.readouterr().out
    assert f"{exp}: interrupted" in out and f"tuner resume {exp}" in out
    assert sleeps[0] == []


@pytest.mark.parametrize("seconds", ["0", "-1"])
def test_watch_needs_a_positive_interval(tmp_path, capsys, seconds):
    exp = write_experiment(tmp_path / "done", trials=3, epochs=2)
    assert main(["status", str(exp), "--watch", seconds]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--watch must be a number of seconds > 0" in err
