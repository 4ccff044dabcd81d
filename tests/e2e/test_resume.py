"""Crash and resume: SIGKILL the driver at seeded points, SIGINT it, and resume each time.

The method of Ray's own test_experiment_restore.py, written our way: a real `tuner search`
process on real data, killed for real, resumed with `tuner resume`, compared with an
uninterrupted run with the same seed. The trials train a tiny gated network
(tests/gate_fixture.py): each run of the driver trains exactly the epochs the test hands it,
then waits, so every kill and every Ctrl-C lands at a point the test knows.
"""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path

import optuna
import pandas as pd
import pytest
from cli_fixture import Child, run_here, tail, tuner
from gate_fixture import Gate, gated_search_args, write_net
from study_fixture import journal_study

from tuner.driver.fence.asha import PersistentASHA

pytestmark = pytest.mark.slow

SAMPLES, EPOCHS = 5, 8


def search_args(tmp_path: Path, concurrency: int = 2) -> list[str]:
    """Exactly 5 trials (--max-trials) x 8 epochs of the gated network: ASHA (grace 1, rf 3)
    leaves at least 8 + 4 epochs to train, more than the kills below hand out in all."""
    return [*gated_search_args(write_net(tmp_path)), "--no-confirm", "--samples", str(SAMPLES),
            "--max-trials", str(SAMPLES), "--epochs", str(EPOCHS), "--grace-period", "1",
            "--seed", "7", "--concurrency", str(concurrency)]  # fmt: skip


def rows_of(exp: Path) -> dict[str, list[tuple[int, float]]]:
    """Every epoch each trial has reported so far, in order, from its result.json: (epoch,
    epoch_started_at), which tells one training of an epoch from another."""
    out = {}
    for f in sorted(exp.glob("trial_*/result.json")):
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip().endswith("}")]
        out[f.parent.name] = [(r["epoch"], r["epoch_started_at"]) for r in rows]
    return out


def epochs_on_disk(exp: Path) -> set[tuple[str, int]]:
    """(trial, epoch) for every epoch trained and kept so far: reported in result.json, or in
    the history of a whole checkpoint. A trial writes its checkpoint before the driver hears of
    the epoch, and Tune saves its state (and copies result.json into the experiment) on its own
    clock, so a kill that follows a checkpoint lands before both: the resume starts from a
    state that knows less than the disk holds."""
    from tuner.train.checkpoints import read_state

    kept = {(trial, epoch) for trial, rows in rows_of(exp).items() for epoch, _ in rows}
    for history in exp.glob("trial_*/checkpoint_*/history.json"):
        try:
            metrics = json.loads(history.read_text())
        except (OSError, ValueError):  # being copied in, or deleted for a newer one
            continue
        epochs = {(history.parent.parent.name, m["epoch"]) for m in metrics}
        if not epochs <= kept and read_state(history.parent) is not None:  # not cut short
            kept |= epochs
    return kept


def trained(exp: Path) -> dict[str, dict[int, set[float]]]:
    """When each epoch of each trial started training (epoch_started_at), from all that is on
    disk: result.json's reports and the checkpoints' histories, which also hold the epochs a
    trial trained and saved but the driver never heard of (it was stopped first)."""
    out: dict[str, dict[int, set[float]]] = {}
    for trial_dir in sorted(exp.glob("trial_*")):
        epochs: dict[int, set[float]] = out.setdefault(trial_dir.name, {})
        for epoch, started in rows_of(exp).get(trial_dir.name, []):
            epochs.setdefault(epoch, set()).add(started)
        for history in trial_dir.glob("checkpoint_*/history.json"):
            for metrics in json.loads(history.read_text()):
                epochs.setdefault(metrics["epoch"], set()).add(metrics["epoch_started_at"])
    return out


def assert_each_epoch_trained_once(exp: Path, before: dict[str, dict[int, set[float]]]) -> None:
    """Every trial trained epochs 1..n, none missing, each once (one start time wherever it
    is recorded), and those it had trained `before` (a kill, a Ctrl-C) were not trained again.
    Its reports in result.json go up epoch by epoch (they may skip the epochs the driver never
    heard of); an epoch is reported twice only by a trial restored at its last checkpoint,
    which reports that epoch again (the same training, the same start time)."""
    now = trained(exp)
    for trial, epochs in now.items():
        assert sorted(epochs) == list(range(1, len(epochs) + 1)), (trial, epochs)
        assert all(len(starts) == 1 for starts in epochs.values()), (trial, epochs)
        for epoch, starts in before.get(trial, {}).items():
            assert epochs[epoch] == starts, (trial, epoch, starts, epochs[epoch])
    for trial, reports in rows_of(exp).items():
        for earlier, later in zip(reports, reports[1:], strict=False):
            assert later[0] > earlier[0] or later == earlier, (trial, reports)


def study_of(exp: Path) -> optuna.Study:
    return journal_study(exp, exp.name)


def finished_trials(exp: Path) -> dict[str, str]:
    """result.json text of the trials Optuna has finished: these must never change again."""
    if not (exp / "optuna.journal").exists():
        return {}
    ids = {t.user_attrs.get("tune_trial_id") for t in study_of(exp).trials
           if t.state.is_finished()}  # fmt: skip
    return {f.parent.name: f.read_text() for f in exp.glob("trial_*/result.json")
            if f.parent.name.rsplit("_", 1)[-1] in ids}  # fmt: skip


def test_sigkill_three_times_then_resume_matches_an_uninterrupted_run(tmp_path, shared_ray):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args = search_args(tmp_path)
    reference = run_here("search", *args, "--out", str(tmp_path), "--name", "ref")
    assert reference.returncode == 0, tail(reference.stdout) + tail(reference.stderr)
    ref = tmp_path / "ref"

    exp = tmp_path / "crashy"
    rng = random.Random(1234)  # where the kills fall: 1 to 3 fresh epochs into each run
    at_kills, frozen = [], {}
    command = tuner("search", *args, "--out", str(tmp_path), "--name", "crashy")
    for k in range(3):
        tickets = rng.randint(1, 3)
        gate = Gate(tmp_path / f"gate-{k}")
        gate.give(tickets)
        seen = epochs_on_disk(exp)
        child = Child(command, tmp_path / f"run-{k}.log", env=gate.env())
        child.wait_for(lambda seen=seen, n=tickets: len(epochs_on_disk(exp) - seen) >= n,
                       f"{tickets} more epochs on disk")  # fmt: skip
        os.kill(child.proc.pid, signal.SIGKILL)  # every trial is waiting for a ticket
        child.proc.wait()
        # This run trained exactly the epochs it was handed, each reported once.
        assert gate.taken() == tickets and len(epochs_on_disk(exp) - seen) == tickets
        at_kills.append((rows_of(exp), trained(exp)))
        frozen.update(finished_trials(exp))
        command = tuner("resume", str(exp))
    final = run_here("resume", str(exp))  # no gate: the rest trains straight through
    assert final.returncode == 0, tail(final.stdout) + tail(final.stderr)

    trials = pd.read_csv(exp / "trials.csv")
    epochs = pd.read_csv(exp / "epochs.csv")
    on_disk = {d.name: sorted(f.name for f in d.iterdir()) for d in exp.glob("trial_*")}
    assert len(trials) == SAMPLES and trials["trial_id"].is_unique, (on_disk, tail(final.stdout))
    assert set(trials["status"]) <= {"completed", "stopped", "diverged"}
    # Each resume went on from where its kill left every trial: what a kill left on disk
    # stays as it was, and each trial's epochs follow on from there, none missing and none
    # trained twice.
    rows, epochs_done = rows_of(exp), trained(exp)
    for k, (left, done) in enumerate(at_kills):
        for trial, reports in left.items():
            assert rows[trial][: len(reports)] == reports, (k, trial, reports, rows[trial])
        assert_each_epoch_trained_once(exp, before=done)
    for _, row in trials.iterrows():  # the tables agree: every trial has 1..n in the end
        seen = epochs.loc[epochs["trial_index"] == row["trial_index"], "epoch"].tolist()
        assert seen == list(range(1, row["epochs_run"] + 1))
        assert max(epochs_done[row["trial_dir"]]) == row["epochs_run"]
    for name, text in frozen.items():  # trials finished before a kill were never touched again
        assert (exp / name / "result.json").read_text() == text, name

    # The study agrees with the trials, nothing is left RUNNING, and the same seed made the
    # same suggestions as the uninterrupted run.
    study, ref_study = study_of(exp), study_of(ref)
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    outcomes = trials["status"].value_counts().to_dict()
    assert states.get("COMPLETE", 0) == outcomes.get("completed", 0)
    assert states.get("PRUNED", 0) == outcomes.get("stopped", 0)
    assert "RUNNING" not in states and len(study.trials) == SAMPLES
    assert [t.params for t in study.trials] == [t.params for t in ref_study.trials]
    # ASHA's rungs as the last run left them: every trial was judged at rung 1 (its first
    # epoch), in whichever run that fell. (Tune's restore once copied the file into its staging
    # dir and its saves copied that back, so the rungs reverted to the last resume's start.)
    rungs = dict(json.loads((exp / "asha_state.json").read_text())["brackets"][0])
    assert set(rungs[1]) == set(trials["trial_id"]), rungs


def test_ctrl_c_saves_state_and_resume_repeats_no_completed_epoch(tmp_path, shared_ray):
    """Ctrl-C, then a resume with a --time-budget of its own that runs out while the trial it
    restored waits at its gate (so the trial is certainly running: a search's own budget can
    run out before a loaded machine has started any trial), then a plain resume to the end.
    The budget stops the run gracefully: the report is written, the running trial is left
    unfinished (not marked finished, as Tune's own budget does), and the last resume carries
    the search to its end."""
    exp = tmp_path / "sigint"
    gate = Gate(tmp_path / "gate")
    gate.give(1)
    # Two trials at once and one epoch handed out: at the Ctrl-C one trial has reported its
    # first epoch and the other none. As they stop, each finishes the epoch in hand and saves
    # its checkpoint after Tune's last record of it: the first one's newer than that record,
    # the other's its first (Tune has none to hand over; the resume trained that epoch again).
    command = tuner("search", *search_args(tmp_path, concurrency=2), "--out", str(tmp_path),
                    "--name", "sigint")  # fmt: skip
    child = Child(command, tmp_path / "search.log", env=gate.env())
    started = lambda: len(list(exp.glob("trial_*/params.json")))  # noqa: E731
    child.wait_for(lambda: len(epochs_on_disk(exp)) >= 1 and started() >= 2,
                   "an epoch on disk, and two trials started")  # fmt: skip
    child.proc.send_signal(signal.SIGINT)
    child.wait_for_output("\nCtrl-C: ")
    gate.open()  # the held trials finish the epoch they were waiting for; there Tune stops them
    assert child.wait() == 130, tail(child.output())
    assert f"tuner resume {exp}" in child.output()
    before, done = rows_of(exp), trained(exp)
    # Epochs that only a checkpoint holds: trained, never reported before the stop.
    assert any(epochs and not before.get(trial) for trial, epochs in done.items()), (done, before)
    # Tune writes tuner.pkl once, as the search starts; a resume must never write it again (its
    # saves copied it back over itself, and a kill in that copy left it empty).
    pickled = (exp / "tuner.pkl").stat()

    clock = Gate(tmp_path / "clock-gate")  # no tickets: the restored trial waits
    budgeted = Child(tuner("resume", str(exp), "--time-budget", "1s"),
                     tmp_path / "budgeted.log", env=clock.env())  # fmt: skip
    budgeted.wait_for_output("Stopping the search: the time budget of 1 s is spent.")
    clock.open()  # it finishes the epoch in hand; there the search stops it
    assert budgeted.wait() == 0, tail(budgeted.output())
    out = budgeted.output()
    assert "Stopped by --time-budget with" in out and f"tuner resume {exp}" in out
    trials = pd.read_csv(exp / "trials.csv")
    assert "running" in set(trials["status"]) and (exp / "report.html").is_file()
    assert json.loads((exp / "provenance.json").read_text())["finished"] is None

    resumed = run_here("resume", str(exp))
    assert resumed.returncode == 0, tail(resumed.stdout) + tail(resumed.stderr)
    assert "time budget" not in resumed.stdout  # the budget was that run's alone
    after = rows_of(exp)
    for trial, reports in before.items():
        assert after[trial][: len(reports)] == reports, (trial, reports, after[trial])
    # Nothing trained before the Ctrl-C (reported, or only saved) is trained again.
    assert_each_epoch_trained_once(exp, before=done)
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == SAMPLES and "running" not in set(trials["status"])
    assert json.loads((exp / "provenance.json").read_text())["finished"] is not None
    unchanged = (exp / "tuner.pkl").stat()
    assert (unchanged.st_mtime_ns, unchanged.st_size) == (pickled.st_mtime_ns, pickled.st_size)


class _Trial:  # the scheduler only reads trial_id
    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def test_asha_rungs_survive_a_new_scheduler_instance(tmp_path):
    def make() -> PersistentASHA:
        return PersistentASHA(state_path=tmp_path / "asha.json", time_attr="epoch",
                              metric="val_loss", mode="min", max_t=9, grace_period=1,
                              reduction_factor=3)  # fmt: skip

    first = make()
    for i, loss in enumerate([1.0, 2.0, 3.0, 0.5]):
        trial = _Trial(f"t{i}")
        first.on_trial_add(None, trial)
        first.on_trial_result(None, trial, {"epoch": 1, "val_loss": loss})
    restored = make()  # as after a crash: a fresh scheduler from the same state file
    assert restored.rungs() == first.rungs()
    late = _Trial("late")
    restored.on_trial_add(None, late)
    # With the rungs restored, a poor newcomer at rung 1 is stopped (an empty rung would not).
    assert restored.on_trial_result(None, late, {"epoch": 1, "val_loss": 5.0}) == "STOP"


def test_first_ctrl_c_says_what_comes_next_and_a_second_stops_at_once(tmp_path, shared_ray):
    """The first Ctrl-C prints the plan (trials stopping, what is scored on how many test
    images, the report) before anything else happens; the second stops at once, and what it
    leaves is drawn by `tuner report` and continued by `tuner resume`."""
    exp = tmp_path / "twice"
    gate = Gate(tmp_path / "gate")
    gate.give(2)  # two epochs, then the trials wait: still running at both Ctrl-Cs
    child = Child(tuner("search", *search_args(tmp_path), "--out", str(tmp_path), "--name",
                        "twice"), tmp_path / "search.log", env=gate.env())  # fmt: skip
    child.wait_for(lambda: len(epochs_on_disk(exp)) >= 2, "2 epochs on disk")
    child.proc.send_signal(signal.SIGINT)
    child.wait_for_output("\nCtrl-C: ")
    lines = child.output().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Ctrl-C:"))
    plan = lines[at]
    assert "running trial" in plan and "on 360 test images" in plan and "report" in plan, lines
    assert not any(line.startswith("Scoring") for line in lines[:at])
    child.proc.send_signal(signal.SIGINT)
    assert child.wait() == 130, tail(child.output())
    rest = "\n".join(child.output().splitlines()[at:])
    assert "Stopped at once" in rest and f"tuner resume {exp}" in rest
    assert "Writing the report" not in rest  # it did stop at once

    reported = run_here("report", str(exp))
    assert reported.returncode == 0, tail(reported.stderr)
    assert (exp / "report.html").stat().st_size > 10_000
    resumed = run_here("resume", str(exp))  # no gate: the rest trains straight through
    assert resumed.returncode == 0, tail(resumed.stdout) + tail(resumed.stderr)
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == SAMPLES and "running" not in set(trials["status"])
