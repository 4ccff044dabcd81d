"""The experiment directory as users handle it: shared (file modes follow the umask), copied
or moved (every path inside is relative to it), and guarded (a resume runs pickles, so it
refuses a directory other users can write to)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
from pathlib import Path

import pandas as pd
import pytest
from cli_fixture import Child, run_here, tail, tuner
from gate_fixture import Gate, gated_search_args, write_net

pytestmark = pytest.mark.slow

OURS = ["trials.csv", "epochs.csv", "best.json", "provenance.json", "report.html",
        "asha_state.json"]  # fmt: skip
SEARCH = ["--no-confirm", "--samples", "5", "--max-trials", "5", "--epochs", "6", "--seed", "3",
          "--concurrency", "2", "--grace-period", "1"]  # fmt: skip


def epochs_reported(exp: Path) -> int:
    return sum(
        sum(1 for line in f.read_text().splitlines() if line.strip().endswith("}"))
        for f in exp.glob("trial_*/result.json")
    )


def test_modes_follow_the_umask_and_a_moved_interrupted_experiment_reports_and_resumes(
    tmp_path, shared_ray
):
    exp = tmp_path / "first" / "shared"
    (tmp_path / "first").mkdir()
    # The gated network (tests/gate_fixture.py): 3 epochs, then the trials wait for the Ctrl-C.
    gate = Gate(tmp_path / "gate")
    gate.give(3)
    search = Child(
        tuner("search", *gated_search_args(write_net(tmp_path)), *SEARCH, "--out",
              str(tmp_path / "first"), "--name", "shared"),
        tmp_path / "search.log", env=gate.env(), preexec_fn=lambda: os.umask(0o027),
    )  # fmt: skip
    search.wait_for(lambda: epochs_reported(exp) >= 3, "3 epochs on disk")
    search.proc.send_signal(signal.SIGINT)
    search.wait_for_output("\nCtrl-C: ")
    gate.open()  # the trials finish the epoch in hand; there the search stops them
    assert search.wait() == 130, tail(search.output())

    for name in OURS:  # what a plain open() under umask 027 would make: rw-r-----
        assert stat.S_IMODE((exp / name).stat().st_mode) == 0o640, name
    best = json.loads((exp / "best.json").read_text())
    assert not Path(best["checkpoint"]).is_absolute()
    assert (exp / best["checkpoint"]).is_dir()

    moved = tmp_path / "elsewhere" / "copy"
    moved.parent.mkdir()
    shutil.move(str(exp), str(moved))
    shutil.rmtree(tmp_path / "first")  # nothing may still point there

    reported = run_here("report", str(moved))
    assert reported.returncode == 0, tail(reported.stderr)
    resumed = run_here("resume", str(moved))  # no gate: the rest trains straight through
    assert resumed.returncode == 0, tail(resumed.stdout) + tail(resumed.stderr)
    assert not (tmp_path / "first").exists()  # the old place was not recreated
    trials = pd.read_csv(moved / "trials.csv")
    assert len(trials) == 5 and set(trials["status"]) <= {"completed", "stopped", "diverged"}
    best = json.loads((moved / "best.json").read_text())
    assert (moved / best["checkpoint"]).is_dir()

    # Other users could have changed the pickles a resume loads: refused, in one line.
    (moved / "tuner.pkl").chmod(0o646)
    refused = run_here("resume", str(moved))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "writable by other users" in refused.stderr
    assert "tuner.pkl" in refused.stderr
