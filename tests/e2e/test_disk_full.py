"""A full disk is a clear stop: one line naming the directory, exit 2, and an experiment that
`tuner resume` finishes once there is room. On a real tmpfs (mounting one needs root, which is
how CI runs)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from cli_fixture import run, run_here, tail


@pytest.fixture
def small_tmpfs(tmp_path):
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(where)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# The CLI, optionally with the disk guard's free-space check switched off, so that the disk
# really fills and a trial's checkpoint copy fails with ENOSPC first (the fallback path).
CLI = """
import sys
if sys.argv[1] == "unguarded":
    import tuner.driver.guards
    tuner.driver.guards.DiskGuard.on_step_end = lambda *args, **kwargs: None
from tuner.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("guard", ["guarded", "unguarded"])
def test_a_search_on_a_full_disk_stops_in_one_line_and_resumes_once_there_is_room(
    small_tmpfs, guard, shared_ray
):
    # The lab's baseline (trial 0, 1.2M parameters) writes ~15 MB a checkpoint: 20 MB is
    # not enough for it and its neighbour.
    command = [sys.executable, "-c", CLI, guard, "search", "--no-confirm",
        "--samples", "3", "--max-trials", "3", "--epochs", "2",
               "--concurrency", "2", "--out", str(small_tmpfs), "--name", "full"]  # fmt: skip
    done = run(command)
    exp = small_tmpfs / "full"
    assert done.returncode == 2, tail(done.stdout) + tail(done.stderr)
    assert "warning: " in done.stdout and "free and this search may write" in done.stdout
    errors = done.stderr.strip().splitlines()
    assert errors == [errors[-1]], done.stderr[-3000:]  # one line: no tracebacks of Ray's
    assert errors[-1].startswith("tuner: error: ") and f"tuner resume {exp}" in errors[-1]
    assert "Traceback" not in done.stdout

    subprocess.run(["mount", "-o", "remount,size=400m", str(small_tmpfs)], check=True)
    resumed = run_here("resume", str(exp))  # in this process: its output is not the subject
    assert resumed.returncode == 0, tail(resumed.stdout) + tail(resumed.stderr)
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 3 and "running" not in set(trials["status"])
    assert (exp / "report.html").stat().st_size > 1_000_000
