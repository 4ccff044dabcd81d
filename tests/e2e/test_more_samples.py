"""`tuner resume DIR --samples N`: a finished search raised to N trials, the study and the
tables agreeing, and a lower N refused in one line."""

from __future__ import annotations

import gc
import json

import pandas as pd
import pytest
from cli_fixture import run_here, tail
from study_fixture import journal_study

pytestmark = pytest.mark.slow

STATES = {"completed": "COMPLETE", "diverged": "FAIL", "error": "FAIL"}


def test_a_finished_search_raised_to_more_trials(tmp_path, shared_ray):
    first = run_here("search", "--samples", "3", "--epochs", "2", "--seed", "5", "--no-confirm",
                     "--concurrency", "2", "--out", str(tmp_path), "--name", "grow")  # fmt: skip
    assert first.returncode == 0, tail(first.stdout) + tail(first.stderr)
    # the fit froze the heap for Python's collector (tuner/driver/fit.py) and gave it back:
    # a notebook's later garbage is collected again
    assert gc.get_freeze_count() == 0
    exp = tmp_path / "grow"
    before = pd.read_csv(exp / "trials.csv")
    assert len(before) == 3  # the default: --samples trials

    lower = run_here("resume", str(exp), "--samples", "2")
    assert lower.returncode == 2 and len(lower.stderr.strip().splitlines()) == 1
    assert "can only raise it" in lower.stderr

    grown = run_here("resume", str(exp), "--samples", "6")
    assert grown.returncode == 0, tail(grown.stdout) + tail(grown.stderr)
    assert "Raising the search to 6 trials" in grown.stdout
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 6
    assert sorted(trials["trial_index"]) == list(range(len(trials)))
    # The first ones are the same trials as before, not trained again.
    kept = trials.set_index("trial_index").loc[list(range(len(before)))]
    assert list(kept["trial_id"]) == list(before.set_index("trial_index")["trial_id"])
    assert (kept["epochs_run"] == before.set_index("trial_index")["epochs_run"]).all()
    # Optuna's study holds exactly those trials, in states that agree with trials.csv.
    study = journal_study(exp, "grow")
    assert len(study.trials) == len(trials)
    by_number = {t.number: t.state.name for t in study.trials}
    for row in trials.itertuples():
        expected = STATES.get(row.status, "PRUNED")
        assert by_number[row.trial_index] == expected, (row.trial_index, row.status)
    record = json.loads((exp / "provenance.json").read_text())
    assert record["config"]["samples"] == 6 and record["samples_raised"][0]["from"] == 3
    assert record["finished"] is not None
    assert f"trial {len(trials) - 1}" in (exp / "report.html").read_text()
