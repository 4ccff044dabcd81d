"""`tuner search --warm-start DIR` for real: a finished search's completed trials told to a new
search's study, whose TPE then suggests otherwise than a cold start with the same seed. Real
Ray, real training, on digits with a declarative space and the built-in network."""

from __future__ import annotations

import json
import subprocess

import cli_fixture
import pandas as pd
import pytest
from study_fixture import journal_study

from tuner.experiment import IMPORTED_ATTR

pytestmark = pytest.mark.slow

SPACE = """
[constants]
n_blocks = 1
fc_layers = 0
batch_norm = true
[params]
channels_b0 = { choices = [4, 8, 16] }
lr = { float = [0.003, 0.3], log = true }
optimizer = { choices = ["sgd", "adam"] }
"""
SOURCE_TRIALS = 11  # past TPE's 10 startup trials: a warm start samples from a model at once


def run(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    """The CLI in this process (on the module's shared Ray), from `cwd`: the paths below are
    relative, as a user types them."""
    return cli_fixture.run_here(*args, cwd=cwd)


def study_of(exp):
    return journal_study(exp, exp.name)


@pytest.fixture(scope="module")
def searches(tmp_path_factory, shared_ray):
    work = tmp_path_factory.mktemp("warm")
    (work / "space.toml").write_text(SPACE)
    # One trial at a time: a second trial process would cost CI ~3 s of CPU in each of the
    # three searches, and the warm start's subject is the study, not concurrency.
    common = ["--space", "space.toml", "--dataset", "digits", "--epochs", "1", "--no-confirm",
              "--concurrency", "1", "--out", "out"]  # fmt: skip
    source = run("search", *common, "--samples", str(SOURCE_TRIALS), "--searcher", "random",
                 "--scheduler", "fifo", "--seed", "1", "--name", "source", cwd=work)  # fmt: skip
    assert source.returncode == 0, source.stderr[-2000:]
    again = ["search", *common, "--samples", "3", "--seed", "5"]
    warm = run(*again, "--warm-start", "out/source", "--name", "warm", cwd=work)
    assert warm.returncode == 0, warm.stderr[-2000:]
    cold = run(*again, "--name", "cold", cwd=work)
    assert cold.returncode == 0, cold.stderr[-2000:]
    return work, warm.stdout


def test_the_warm_study_holds_the_imported_trials_and_its_own(searches):
    work, stdout = searches
    out = work / "out"
    assert f"Warm start: {SOURCE_TRIALS} completed trials of {out / 'source'}" in stdout
    study = study_of(out / "warm")
    imported = [t for t in study.trials if IMPORTED_ATTR in t.user_attrs]
    own = [t for t in study.trials if IMPORTED_ATTR not in t.user_attrs]
    source = study_of(out / "source")
    assert [t.params for t in imported] == [t.params for t in source.trials]
    assert [t.value for t in imported] == [t.value for t in source.trials]
    assert len(own) == 3 and all(t.state.is_finished() for t in study.trials)
    # Only this search's trials ran here: the tables know nothing of the imported ones.
    trials = pd.read_csv(out / "warm" / "trials.csv")
    assert len(trials) == 3
    provenance = json.loads((out / "warm" / "provenance.json").read_text())
    assert provenance["warm_start"]["trials"] == SOURCE_TRIALS
    html = (out / "warm" / "report.html").read_text()
    assert "Imported by --warm-start" in html and 'id="imported-table"' in html


def test_a_warm_start_suggests_otherwise_than_a_cold_start(searches):
    work, _ = searches
    out = work / "out"
    warm = [t.params for t in study_of(out / "warm").trials if IMPORTED_ATTR not in t.user_attrs]
    cold = [t.params for t in study_of(out / "cold").trials]
    assert warm[0] != cold[0]  # same seed: only the imported history differs


def test_a_space_that_does_not_match_is_one_line_and_writes_nothing(searches, shared_ray):
    work, _ = searches
    proc = run("search", "--dataset", "digits", "--samples", "2", "--warm-start",
               "out/source", "--out", "out", "--name", "mismatch", cwd=work)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1  # seed_cnn has channels_b0 too, with other choices
    assert "parameter 'channels_b0' has another range: one of [4, 8, 16] there" in lines[0]
    assert not (work / "out" / "mismatch").exists()
