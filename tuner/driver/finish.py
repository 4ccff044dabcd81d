"""After the fit: the tables, the study settled, best.json, the report, provenance.json and
the summary, whatever stopped the search."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pandas as pd

from tuner.driver.fence.recovery import reconcile_study, study_name
from tuner.experiment import (
    CONFIRM_DIR,
    EPOCHS_CSV,
    TRIALS_CSV,
    Damage,
    collect_tables,
    ray_trial_states,
)
from tuner.experiment.records import BestRecord
from tuner.io import atomic_write_csv
from tuner.stages.best import save_best, write_best, write_confirmed, write_model
from tuner.stages.console import print_summary, say
from tuner.stages.disk import is_disk_full
from tuner.stages.provenance import save_record
from tuner.stages.search_run import SearchRun

if TYPE_CHECKING:
    from tuner.config.search_config import SearchConfig


@dataclass
class SearchResult:
    experiment_dir: Path
    trials: pd.DataFrame  # trials.csv
    epochs: pd.DataFrame  # epochs.csv
    best: BestRecord | None  # best.json
    report: Path | None  # report.html, when the analysis package could write it
    interrupted: bool = False  # trials left unfinished: continue with `tuner resume DIR`
    stop_reason: str | None = None  # why the search stopped itself (the disk was filling up)
    stopped_by_clock: bool = False  # --time-budget was spent (unfinished trials: resume them)


def write_report(experiment_dir: Path, stream: TextIO) -> Path | None:
    """The HTML report, if the analysis package is there; a failure never loses the results."""
    try:
        from analysis import write_report as _write
    except ImportError:
        return None
    try:
        return _write(experiment_dir)
    except Exception as e:  # the tables are already on disk; `tuner report DIR` can retry
        if is_disk_full(e):
            raise
        say(
            stream,
            f"warning: could not write the report ({e}); run `tuner report {experiment_dir}`",
        )
        return None


CLOCK_STOPS = ("time-budget", "confirm-reserve")  # the kinds of stop --time-budget makes


@dataclass
class Tables:
    """The search's tables as write_tables left them, and how much of the search is left."""

    trials: pd.DataFrame
    epochs: pd.DataFrame
    unfinished: set[str]  # trial ids Tune left unfinished
    left: int  # trials still to run (unfinished, or never asked for)


def write_tables(run: SearchRun) -> Tables:
    """trials.csv and epochs.csv from the trial directories, and the study settled once no
    trial is left to run."""
    cfg, record, stream = run.cfg, run.record, run.stream

    exp = cfg.experiment_dir
    states = ray_trial_states(exp)
    unfinished = {tid for tid, s in states.items() if s["status"] not in ("TERMINATED", "ERROR")}
    has_baseline = run.space.baseline is not None
    damage = Damage()
    from tuner.driver import progress

    seen = progress.ACTIVE.failures if progress.ACTIVE is not None else None
    trials, epochs = collect_tables(
        exp, cfg.epochs, baseline_index=0 if has_baseline else None, running=unfinished,
        damage=damage, failures=seen,
    )  # fmt: skip
    if damage.summary():
        say(stream, f"warning: {damage.summary()}")
    atomic_write_csv(exp / TRIALS_CSV, trials)
    atomic_write_csv(exp / EPOCHS_CSV, epochs)
    # Trials still to run: those Tune left unfinished, and those never asked for (a stop came
    # before the searcher had proposed all --samples of them).
    finished = int((trials["status"] != "running").sum()) if not trials.empty else 0
    left = max(cfg.samples - finished, len(unfinished))
    if cfg.spends_savings:  # the budget is epochs: more trials start while any are left
        more = epochs_left(cfg, trials) > 0 and len(trials) < cfg.trial_cap
        left = max(len(unfinished), int(more))
    if not left:
        reconcile_study(exp, study_name(record, cfg))
    return Tables(trials, epochs, unfinished, left)


def _stage_has_baseline(stage: dict[str, Any] | None, trials: pd.DataFrame) -> bool:
    """Whether the confirm stage (provenance.json's "confirm") retrains the lab's baseline."""
    if not stage or trials.empty or "is_baseline" not in trials:
        return False
    baseline = set(trials.loc[trials["is_baseline"].astype(bool), "trial_index"].astype(int))
    return bool(baseline & {int(i) for i in stage.get("trials", [])})


def epochs_left(cfg: SearchConfig, trials: pd.DataFrame) -> int:
    """Epochs of cfg's budget (--samples x --epochs) not trained yet."""
    trained = int(trials["epochs_run"].fillna(0).sum()) if not trials.empty else 0
    return max(0, cfg.total_epochs - trained)


def write_results(
    run: SearchRun, tables: Tables, started: float, stopped_by: str | None = None
) -> SearchResult:
    """After fit (and the confirm stage): best.json (test scoring, the confirm stage's
    intervals), model.pt, the report, provenance.json and the summary. stopped_by:
    "time-budget", "confirm-reserve" (the end of the budget left to the confirm stage) or
    "disk" when the search stopped itself."""
    cfg, bundle, trial_data, record, stream, timings = (
        run.cfg, run.bundle, run.trial_data, run.record, run.stream, run.timings,
    )  # fmt: skip
    exp = cfg.experiment_dir
    trials, epochs, unfinished, left = tables.trials, tables.epochs, tables.unfinished, tables.left
    stage = record.get("confirm")
    # The budget cut the baseline out of the confirm stage: scoring it on the test split would
    # spend what the budget did not keep (tuner.stages.best.write_best).
    baseline_cut = bool(record.get("confirm_cut")) and not _stage_has_baseline(stage, trials)
    work = run.torch
    work.install(bundle, trial_data)  # sent to the helper once, at its first scoring
    with timings("test_evaluation"):
        best = write_best(cfg, trials, bundle, trial_data, stream,
                          score_baseline=not baseline_cut, work=work)  # fmt: skip
    confirm_left, runs = 0, None
    if stage is not None and record.get("confirm_cut"):  # cut to fit --time-budget
        stage = {**stage, "cut": record["confirm_cut"]}
    if best is not None and stage is not None and (exp / CONFIRM_DIR).is_dir():
        with timings("confirm_scoring"):
            confirm_left, runs = write_confirmed(
                cfg, best, stage, trials, bundle, trial_data, stream, work
            )
    # The search stopped to leave the rest of --time-budget to the confirm stage: its winner
    # is as final as a finished search's (more trials only come with `tuner resume`).
    reserved = stopped_by == "confirm-reserve"
    if best is not None and (not left or reserved):
        with timings("model_file"):
            write_model(cfg, best, bundle, trial_data, record, runs, work)
        save_best(exp, best)
    record["finished"] = None if left or confirm_left else datetime.now(timezone.utc).isoformat()
    record["seconds"] = round(record.get("seconds", 0) + time.time() - started, 1)
    record["outcomes"] = trials["status"].value_counts().to_dict() if not trials.empty else {}
    work.close()  # its torch and the dataset's copy leave before the report is drawn
    say(stream, "Writing the report")
    with timings("report"):
        report = write_report(exp, stream)
    # Where the time went, per phase (a resume adds its own entry): bench/overhead.py reads it.
    record.setdefault("timings", []).append(timings.seconds)
    save_record(exp, record)
    print_summary(stream, exp, trials, best, report)
    errors = int((trials["status"] == "error").sum()) if not trials.empty else 0
    if errors and not left:
        say(stream, f"{errors} trial(s) ended in error (see {TRIALS_CSV}); to run them again from "
             f"their last checkpoint: tuner resume {exp} --retry-errored")  # fmt: skip
    if left:
        started_ids = set(trials["trial_id"]) if not trials.empty else set()
        begun = len(unfinished & started_ids)
        why = "Stopped by --time-budget" if stopped_by in CLOCK_STOPS else "Interrupted"
        if reserved and not confirm_left:
            why = "Stopped the search early to leave the end of --time-budget to the confirm stage"
        if cfg.spends_savings:
            still = (f"{epochs_left(cfg, trials)} of the budget's {cfg.total_epochs} epochs "
                     f"still to train ({begun} trial(s) started and unfinished)")  # fmt: skip
        else:
            still = f"{left} of {cfg.samples} trials still to run ({begun} of them started)"
        say(stream, f"{why} with {still}; continue with:")
        say(stream, f"  tuner resume {exp}")
    elif confirm_left:
        why = "Stopped by --time-budget" if stopped_by in CLOCK_STOPS else "Interrupted"
        say(stream, f"{why} with {confirm_left} confirm run(s) still to train; continue with:")
        say(stream, f"  tuner resume {exp}")
    return SearchResult(exp, trials, epochs, best, report, interrupted=bool(left or confirm_left))
