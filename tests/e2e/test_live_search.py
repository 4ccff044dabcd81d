"""Watching a search while it runs, for real: one 4-trial digits search (one trial made to
diverge), run in a pseudo-terminal, with the live report rewritten every second and every
trial logged to MLflow. While it runs: the report's banner, `tuner status`, and optuna-dashboard
reading the study over HTTP. After it: TensorBoard's own reader on the event files, the report
without its banner, `tuner status` against trials.csv, the MLflow runs, and the progress bar.
"""

from __future__ import annotations

import json
import math
import os
import pty
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_fixture import CHILD_TIMEOUT_S, tail
from dashboard_fixture import dashboard_studies

from tuner.experiment.status import read_status

pytestmark = pytest.mark.slow

SPACE = """
import os
import time
from pathlib import Path

import optuna


def space(trial):
    trial.suggest_int("channels_b0", 4, 16)
    constants = {"n_blocks": 1, "fc_layers": 0, "optimizer": "sgd", "momentum": 0.9}
    # The test holds the search mid-run: the driver asks for trial 3 only once the test has
    # looked (the dry run's in-memory studies pass straight through).
    search = not isinstance(trial.study._storage, optuna.storages.InMemoryStorage)
    if search and trial.number == 3:
        gate, deadline = Path(os.environ["LIVE_TEST_GATE"]), time.monotonic() + 300
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    if trial.number == 1:  # this one diverges: its loss turns non-finite in epoch 1
        return {**constants, "lr": 1e6}
    trial.suggest_float("lr", 0.02, 0.1, log=True)
    return constants
"""
EPOCHS = 3
BANNER = 'id="live-banner"'


def tuner(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuner.cli", *args]


def status_json(exp: Path) -> dict:
    proc = subprocess.run(tuner("status", str(exp), "--json"), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def read_dashboard(db: Path) -> list[dict]:
    """optuna-dashboard on the study's file: the trials of its one study."""
    studies = dashboard_studies(str(db))  # a file path: the dashboard finds it is a journal
    assert len(studies) == 1, list(studies)
    return next(iter(studies.values()))


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    work = tmp_path_factory.mktemp("live")
    (work / "space.py").write_text(SPACE)
    exp = work / "out" / "watched"
    mlruns = work / "mlruns"
    gate = work / "go"
    primary, secondary = pty.openpty()  # the search's stdout is a terminal
    errors = work / "stderr.log"  # a file, not a pipe nobody reads while the search runs
    with open(errors, "wb") as stderr_file:
        # -X importtime: the driver's process lists every module it imports on stderr (its
        # children do not inherit the flag), which shows whether it imported torch.
        command = tuner(
            "search",
            "--space",
            "space.py:space",
            "--dataset",
            "digits",
            "--samples",
            "4",
            "--epochs",
            str(EPOCHS),
            "--searcher",
            "random",
            "--seed",
            "3",
            "--concurrency",
            "2",
            "--max-trials",
            "4",
            "--grace-period",
            "1",
            "--no-confirm",
            "--report-every",
            "1s",
            "--mlflow",
            mlruns.as_uri(),
            "--out",
            "out",
            "--name",
            "watched",
        )
        proc = subprocess.Popen(
            [command[0], "-X", "importtime", *command[1:]],
            cwd=work, stdout=secondary, stderr=stderr_file, close_fds=True,
            env={**os.environ, "COLUMNS": "120", "LIVE_TEST_GATE": str(gate)},
        )  # fmt: skip
    os.close(secondary)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(primary, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    def output() -> str:
        return errors.read_text(errors="replace") + b"".join(chunks).decode(errors="replace")

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    seen = {"banner": None, "status": None, "dashboard": None}
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        if (exp / "optuna.journal").is_file():
            # polled in this process (the command's own reader): a new interpreter twice a
            # second took a core from the search; the command itself is run below
            status = read_status(exp)
            page = exp / "report.html"  # the starting page until the first copy replaces it
            copied = page.is_file() and BANNER in page.read_text()
            if status["state"] == "running" and status["finished"] >= 1 and copied:
                break  # held before trial 3: it stays so until the gate opens
        time.sleep(0.5)
    ended = proc.poll() is not None
    assert not ended, "the search ended before the test could look at it:\n" + tail(output())
    seen["status"] = status_json(exp)
    seen["banner"] = (exp / "report.html").read_text()
    seen["dashboard"] = read_dashboard(exp / "optuna.journal")
    gate.touch()
    try:
        code = proc.wait(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the search ran on after the gate opened:\n{tail(output())}", pytrace=False)
    reader.join(timeout=10)
    os.close(primary)
    lines = errors.read_text(errors="replace").splitlines(keepends=True)
    imported = [line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")]
    stderr = "".join(line for line in lines if not line.startswith("import time:"))
    terminal = b"".join(chunks).decode(errors="replace")
    assert code == 0, (stderr + terminal)[-3000:]
    return {"exp": exp, "mlruns": mlruns, "terminal": terminal, "stderr": stderr,
            "imported": imported, **seen}  # fmt: skip


def test_event_files_hold_one_scalar_per_epoch_and_no_nan(watched):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp = watched["exp"]
    trials = pd.read_csv(exp / "trials.csv")
    # Trial 1 and only it diverged (the space makes it): the branch below covers both kinds.
    assert trials.loc[trials["status"] == "diverged", "trial_index"].tolist() == [1]
    for _, row in trials.iterrows():
        events = EventAccumulator(str(exp / row["trial_dir"]))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        values = {tag: events.Scalars(tag) for tag in tags}
        assert all(math.isfinite(e.value) for scalars in values.values() for e in scalars)
        if row["status"] == "diverged":
            assert "loss/val" not in tags  # inf: never written
            texts = events.Tensors("status/text_summary")
            assert b"diverged at epoch 1" in texts[0].tensor_proto.string_val[0]
        else:
            for tag in ("loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr",
                        "images_per_s", "epoch_time_s"):  # fmt: skip
                assert [e.step for e in values[tag]] == list(range(1, row["epochs_run"] + 1))
            assert values["accuracy/val"][-1].value == pytest.approx(row["val_acc"])
        # the HParams plugin's records, written when the trial ended
        assert set(events.PluginTagToContent("hparams")) == {
            "_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"
        }  # fmt: skip


def test_the_report_had_a_banner_while_running_and_none_after(watched):
    live = watched["banner"]
    assert BANNER in live and '<meta http-equiv="refresh"' in live
    import re

    shown = re.search(r"running: (\d) of 4 trials finished, updated \d\d:\d\d", live)
    assert shown is not None and int(shown.group(1)) <= watched["status"]["finished"]
    final = (watched["exp"] / "report.html").read_text()
    assert BANNER not in final and 'http-equiv="refresh"' not in final


def test_tuner_status_agrees_with_trials_csv_mid_run_and_at_the_end(watched):
    exp = watched["exp"]
    trials = pd.read_csv(exp / "trials.csv")
    mid = watched["status"]
    assert mid["state"] == "running" and mid["finished"] + mid["running"] + mid["pending"] == 4
    assert 1 <= mid["finished"] <= 3 and mid["pending"] >= 1  # trial 3 not yet asked for
    # what had finished then is in trials.csv with the same outcome
    finished_then = {s: n for s, n in mid["by_status"].items() if s != "running"}
    assert finished_then and all(
        (trials["status"] == s).sum() >= n for s, n in finished_then.items()
    )
    end = status_json(exp)
    assert end["state"] == "finished" and end["finished"] == 4 and end["pending"] == 0
    assert end["by_status"] == trials["status"].value_counts().to_dict()
    assert end["epochs_trained"] == trials["epochs_run"].sum()
    best = trials.loc[trials["best_val_acc"].idxmax()]
    assert end["best"]["trial_index"] == best["trial_index"]
    assert mid["epochs_trained"] <= end["epochs_trained"]


def test_optuna_dashboard_read_the_running_study(watched):
    trials = watched["dashboard"]
    assert trials is not None and 1 <= len(trials) <= 4
    assert all("params" in t and "state" in t for t in trials)


def test_mlflow_lists_every_trial(watched, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3: a file store on request
    client = mlflow.MlflowClient(tracking_uri=watched["mlruns"].as_uri())
    experiment = client.get_experiment_by_name("watched")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4
    trials = pd.read_csv(watched["exp"] / "trials.csv")
    for run in runs:
        assert "channels_b0" in run.data.params
    finished = [r for r in runs if "val_acc" in r.data.metrics]
    assert len(finished) >= len(trials[trials["status"] != "diverged"])


def test_the_terminal_got_a_live_bar_and_the_trial_lines(watched):
    terminal = watched["terminal"]
    assert "━" in terminal  # rich's bar
    assert "[4/4 done]" in terminal and "4/4 trials" in terminal  # a trial line, the bar's text
    for index in range(4):
        assert f"trial {index:>3}" in terminal


def test_the_driver_never_imported_torch(watched):
    """Its dry run, test scoring and model.pt ran in its helper process
    (tuner/stages/torch_work.py); the trials in Ray's workers. `import torch` alone is 506 MB of
    the driver's memory, and a CUDA context it opened would hold GPU memory beside the trials."""
    assert "tuner.driver.run" in watched["imported"]  # the flag's list is the driver's own
    assert "ray.tune" in watched["imported"] and "tensorboardX" in watched["imported"]
    # A real import of torch loads its submodules (torch._C, torch.version, ...). "torch" alone
    # is listed once, for the attempt tensorboardX makes and the driver refuses
    # (tuner/driver/tensorboard.py), which loads nothing.
    assert [m for m in watched["imported"] if m.startswith("torch.")] == []
    assert (watched["exp"] / "model.pt").is_file()  # scored and written all the same
