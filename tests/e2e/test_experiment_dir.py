"""The experiment directory as users handle it: shared (file modes follow the umask), copied
or moved (every path inside is relative to it), and guarded (a resume runs pickles, so it
refuses a directory other users can write to)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

OURS = ["trials.csv", "epochs.csv", "best.json", "provenance.json", "report.html",
        "asha_state.json"]  # fmt: skip
SEARCH = ["--no-confirm", "--dataset", "digits", "--samples", "5", "--epochs", "6", "--seed", "3",
          "--concurrency", "2"]  # fmt: skip


def tuner(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuner.cli", *args]


def epochs_reported(exp: Path) -> int:
    return sum(
        sum(1 for line in f.read_text().splitlines() if line.strip().endswith("}"))
        for f in exp.glob("trial_*/result.json")
    )


def test_modes_follow_the_umask_and_a_moved_interrupted_experiment_reports_and_resumes(tmp_path):
    exp = tmp_path / "first" / "shared"
    (tmp_path / "first").mkdir()
    proc = subprocess.Popen(
        tuner("search", *SEARCH, "--out", str(tmp_path / "first"), "--name", "shared"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: os.umask(0o027),
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and epochs_reported(exp) < 3:  # progress, then Ctrl-C
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, out[-2000:]

    for name in OURS:  # what a plain open() under umask 027 would make: rw-r-----
        assert stat.S_IMODE((exp / name).stat().st_mode) == 0o640, name
    best = json.loads((exp / "best.json").read_text())
    assert not Path(best["checkpoint"]).is_absolute()
    assert (exp / best["checkpoint"]).is_dir()

    moved = tmp_path / "elsewhere" / "copy"
    moved.parent.mkdir()
    shutil.move(str(exp), str(moved))
    shutil.rmtree(tmp_path / "first")  # nothing may still point there

    reported = subprocess.run(tuner("report", str(moved)), capture_output=True, text=True,
                              timeout=300)  # fmt: skip
    assert reported.returncode == 0, reported.stderr[-2000:]
    resumed = subprocess.run(tuner("resume", str(moved)), capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert not (tmp_path / "first").exists()  # the old place was not recreated
    trials = pd.read_csv(moved / "trials.csv")
    assert len(trials) == 5 and set(trials["status"]) <= {"completed", "stopped", "diverged"}
    best = json.loads((moved / "best.json").read_text())
    assert (moved / best["checkpoint"]).is_dir()

    # Other users could have changed the pickles a resume loads: refused, in one line.
    (moved / "tuner.pkl").chmod(0o646)
    refused = subprocess.run(tuner("resume", str(moved)), capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "writable by other users" in refused.stderr
    assert "tuner.pkl" in refused.stderr
