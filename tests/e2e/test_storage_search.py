"""`--storage URL`: the search's Optuna study on a real PostgreSQL server (a fresh one for this
module, tests/postgres_fixture.py) instead of optuna.journal: a search, its resume to more trials
(and a lower count refused),
`tuner status` and the report, a warm start from it, a retry's reopened trial, and every bad
input refused in one line before anything is made. The password only ever comes from
PGPASSWORD, and never lands in the experiment."""

from __future__ import annotations

import gc
import json

import optuna
import pandas as pd
import pytest
from cli_fixture import run_here, tail
from dashboard_fixture import dashboard_studies
from postgres_fixture import PASSWORD
from study_fixture import journal_study

from tuner.driver.fence.internals import reopen_finished_trials, trial_id

pytestmark = pytest.mark.slow

STATES = {"completed": "COMPLETE", "diverged": "FAIL", "error": "FAIL"}
SEARCH = ["--samples", "2", "--epochs", "1", "--seed", "4", "--no-confirm", "--concurrency", "2"]


@pytest.fixture
def password(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", PASSWORD)


def _study(url: str, name: str):
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    finally:
        storage.engine.dispose()


def test_a_search_keeps_its_study_on_the_server_and_grows_from_it(
    tmp_path, postgres, password, shared_ray
):
    url = postgres.url()
    # Two epochs: ASHA judges the trials at epoch 1, and may stop one (PRUNED in the study).
    first = run_here("search", *SEARCH, "--epochs", "2", "--storage", url, "--out",
                     str(tmp_path), "--name", "pg")  # fmt: skip
    assert first.returncode == 0, tail(first.stdout) + tail(first.stderr)
    assert gc.get_freeze_count() == 0  # the fit's frozen objects are collectable again
    exp = tmp_path / "pg"
    assert not (exp / "optuna.journal").exists()  # the study is on the server
    assert json.loads((exp / "provenance.json").read_text())["config"]["storage"] == url
    assert f'storage = "{url}"' in (exp / "search.toml").read_text()
    before = pd.read_csv(exp / "trials.csv").set_index("trial_index")
    assert len(before) == 2  # the default: --samples trials

    # `tuner resume DIR --samples N` raises a finished search to N trials; a lower N is
    # refused in one line.
    lower = run_here("resume", str(exp), "--samples", "1")
    assert lower.returncode == 2 and len(lower.stderr.strip().splitlines()) == 1
    assert "can only raise it" in lower.stderr
    grown = run_here("resume", str(exp), "--samples", "4")
    assert grown.returncode == 0, tail(grown.stdout) + tail(grown.stderr)
    assert "Raising the search to 4 trials" in grown.stdout
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 4 and sorted(trials["trial_index"]) == [0, 1, 2, 3]
    kept = trials.set_index("trial_index").loc[before.index]  # the first two, untouched
    assert list(kept["trial_id"]) == list(before["trial_id"])
    assert (kept["epochs_run"] == before["epochs_run"]).all()
    study = _study(url, "pg")
    by_number = {t.number: t.state.name for t in study.trials}
    assert by_number == {
        row.trial_index: STATES.get(row.status, "PRUNED") for row in trials.itertuples()
    }
    record = json.loads((exp / "provenance.json").read_text())
    assert record["config"]["samples"] == 4 and record["samples_raised"][0]["from"] == 2
    assert record["finished"] is not None
    assert "trial 3" in (exp / "report.html").read_text()
    # Read back from the server by the commands that read the study.
    status = run_here("status", str(exp), "--json")
    shown = json.loads(status.stdout)
    assert status.returncode == 0 and (shown["state"], shown["finished"]) == ("finished", 4)
    assert "No Optuna study" not in (exp / "report.html").read_text()
    # The password is nowhere in the experiment.
    for path in exp.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path

    # The same name on the same server is another experiment's study: refused in one line.
    again = run_here("search", *SEARCH, "--storage", url, "--out", str(tmp_path / "b"),
                     "--name", "pg")  # fmt: skip
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "already holds a study named 'pg'" in again.stderr
    assert not (tmp_path / "b" / "pg").exists()

    # Another study on the same server (made by Optuna itself: a second search would cost CI
    # 12 s and test nothing the first did not), and one optuna-dashboard shows both.
    storage = optuna.storages.RDBStorage(url)
    try:
        other = optuna.create_study(study_name="pg-b", storage=storage)
        other.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    finally:
        storage.engine.dispose()
    shown = dashboard_studies(url)
    assert {name: len(shown[name]) for name in ("pg", "pg-b")} == {"pg": 4, "pg-b": 2}, shown

    # A warm start reads the server's study (into a new search's own optuna.journal).
    warm = run_here("search", *SEARCH, "--warm-start", str(exp), "--out", str(tmp_path),
                    "--name", "warm")  # fmt: skip
    assert warm.returncode == 0, tail(warm.stdout) + tail(warm.stderr)
    imported = [t for t in journal_study(tmp_path / "warm", "warm").trials
                if "imported_from" in t.user_attrs]  # fmt: skip
    completed = sum(t.state.name == "COMPLETE" for t in study.trials)
    assert len(imported) == completed > 0


def test_a_failed_trial_on_the_server_is_reopened_for_its_retry(postgres, password):
    url = postgres.url("second")
    study = optuna.create_study(study_name="retry", storage=optuna.storages.RDBStorage(url))
    trial = study.ask()
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    reopen_finished_trials(url, [trial_id(study.trials[0])])  # what --retry-errored does
    again = _study(url, "retry")
    again.tell(trial.number, 0.75)
    assert (again.trials[0].state.name, again.trials[0].value) == ("COMPLETE", 0.75)


@pytest.mark.parametrize(
    "storage, pgpassword, says",
    [
        ("postgresql://tuner:{pw}@127.0.0.1:{port}/studies", PASSWORD, "must not hold a password"),
        ("nosuchdb://tuner@127.0.0.1:{port}/studies", PASSWORD, "SQLAlchemy knows no database"),
        ("postgresql://tuner@127.0.0.1:{closed}/studies", PASSWORD, "cannot connect"),
        ("postgresql://tuner@127.0.0.1:{port}/studies", "wrong", "password authentication failed"),
        ("not a url", PASSWORD, "is not a database URL"),
    ],
    ids=["password-in-url", "unknown-kind", "no-server", "wrong-password", "not-a-url"],
)
def test_bad_storage_is_one_line_and_exit_2(
    tmp_path, postgres, monkeypatch, storage, pgpassword, says
):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("PGPASSWORD", pgpassword)
    url = storage.format(pw=PASSWORD, port=postgres.port, closed=closed)
    proc = run_here("search", *SEARCH, "--storage", url, "--out", str(tmp_path), "--name", "x")
    assert proc.returncode == 2, tail(proc.stdout) + tail(proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr, proc.stderr
    assert PASSWORD not in proc.stderr  # not even when the user typed it into the URL
    assert not (tmp_path / "x").exists()  # nothing was made


def test_a_server_lost_mid_search_stops_it_in_one_line_and_resume_finishes_it(
    tmp_path, postgres_to_lose, password, shared_ray
):
    """The study's server dies while trials train: the search stops in one line that says what
    and how to go on (exit 2, no traceback), and `tuner resume` finishes it once the server is
    back, every trial in the study and the tables."""
    from cli_fixture import Child, tuner
    from gate_fixture import Gate, gated_search_args, write_net

    server = postgres_to_lose
    gate = Gate(tmp_path / "gate")
    net = write_net(tmp_path)
    exp = tmp_path / "lost-db"
    env = {**gate.env(), "PGPASSWORD": PASSWORD}
    child = Child(
        tuner("search", *gated_search_args(net), "--storage", server.url(), "--no-confirm",
              "--samples", "3", "--epochs", "3", "--concurrency", "2", "--seed", "0",
              "--scheduler", "fifo", "--out", str(tmp_path), "--name", "lost-db"),
        tmp_path / "search.log", env=env,
    )  # fmt: skip
    gate.give(2)
    reported = lambda: sum(  # noqa: E731
        len(f.read_text().splitlines()) for f in exp.glob("trial_*/result.json")
    )
    child.wait_for(lambda: reported() >= 2, "2 epochs reported")
    server.kill()
    gate.open()  # the trials go on, and the driver's next word with the study fails
    assert child.wait() == 2, child.output()
    said = child.output()
    errors = [line for line in said.splitlines() if line.startswith("tuner: error: ")]
    assert len(errors) == 1 and "Traceback" not in said, said
    assert "lost the study's database" in errors[0] and f"tuner resume {exp}" in errors[0]
    assert PASSWORD not in said

    server.start()
    done = run_here("resume", str(exp))  # on the module's Ray, whose trials have no gate
    assert done.returncode == 0, tail(done.stdout) + tail(done.stderr)
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 3 and (trials["status"] == "completed").all(), trials.to_string()
    epochs = pd.read_csv(exp / "epochs.csv")
    assert epochs.groupby("trial_index")["epoch"].apply(list).map(len).eq(3).all()
    study = _study(server.url(), "lost-db")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
