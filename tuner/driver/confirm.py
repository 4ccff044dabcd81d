"""The confirm stage: after the search, the top configurations (and the lab's baseline) train
again from scratch under fresh seeds, so that the winner is named by its mean over seeds rather
than by one lucky run.

A search's best validation figure is the best of many noisy runs on a few hundred validation
images (1,000 images at 83 % give a standard error of 1.2 points), so the top of its table is
partly luck. Here each of the top --confirm-top configurations by validation, and the baseline
where the space has one, trains --confirm-seeds times at the search's full epoch budget.

The runs are a Tune experiment of their own, DIR/confirm/ (one grid of configuration x seed,
FIFO, the search's resources, checkpoints and retries), so they run in parallel and
`tuner resume` continues them like the search's trials. They are not Optuna trials (the
sampler must not learn from repeated configurations), and ASHA never sees them. Each run's
kept weights are scored on the test split afterwards (confirm.csv); the record in best.json,
with its intervals (tuner.experiment.stats: accuracies' t intervals on the logit, inside
[0, 1]; Welch's for differences, with no verdict below 3 seeds a side), is built by
`summarize`.

    plan (candidates, seeds) -> fit (Tune) -> runs_table (confirm.csv, test scores) ->
    summarize (best.json's "confirm")
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
from ray.tune import Callback

from tuner.config.objectives import (
    TUNE_SUMMARY_METRICS,
    knee_point,
    nearest_first,
    pareto_front,
    parse_objectives,
)
from tuner.config.search_config import SearchConfig
from tuner.driver.fence.internals import lean_tune_state
from tuner.experiment import (
    BEST_JSON,
    CONFIRM_DIR,
    confirm_run_dir_name,
    fresh_seeds,
    trial_config,
)
from tuner.stages.confirm_runs import CONFIG_KEY
from tuner.stages.confirm_time import largest_stage, stage_seconds
from tuner.stages.console import say
from tuner.train.trial_data import TrialData


@dataclass(frozen=True)
class Candidate:
    """A search trial whose configuration the stage retrains."""

    trial_index: int
    is_baseline: bool
    search_val_acc: float  # what the search saw, with the lab's seed
    config: dict[str, Any]  # the trial's flat config, as it ran
    epoch_seconds: float = 0.0  # its mean epoch in the search: what orders the runs


@dataclass(frozen=True)
class Plan:
    candidates: list[Candidate]
    seeds: list[int]
    epochs: int

    def runs(self) -> list[dict[str, Any]]:
        """One Tune config per (candidate, seed): the flat config with its seed and the full
        budget, and which trial it repeats. Slowest configuration first (its mean epoch in
        the search): started last, a slow configuration's third seed runs alone while the
        other cores idle; first, the quick runs fill the cores beside it (bench/results/
        HISTORY.md: on the demo the 1-s runs of small nets ran on one core while a 48-s run
        of a 2.9M-parameter net ran on the other)."""
        slowest_first = sorted(self.candidates, key=lambda c: -c.epoch_seconds)
        return [
            {"trial_index": c.trial_index, "seed": seed, "is_baseline": c.is_baseline,
             "config": {**c.config, "seed": seed, "epochs": self.epochs}}
            for c in slowest_first for seed in self.seeds
        ]  # fmt: skip

    def key(self) -> dict[str, Any]:
        """What identifies the plan in provenance.json: a changed plan is a new stage."""
        return {
            "trials": [c.trial_index for c in self.candidates],
            "seeds": list(self.seeds),
            "epochs": self.epochs,
        }


def plan(cfg: SearchConfig, trials: pd.DataFrame) -> Plan | None:
    """The top --confirm-top configurations by validation accuracy (those that kept weights),
    and the baseline; None when there is nothing to confirm. With --objectives: the knee of
    the Pareto front and the front points nearest it, since there the knee is the pick."""
    if trials.empty or "best_epoch" not in trials:
        return None
    exp = cfg.experiment_dir
    kept = trials[trials["best_epoch"].fillna(0) >= 1]
    if cfg.objectives:
        objectives = parse_objectives(cfg.objectives)
        front = pareto_front(kept, objectives)
        knee = knee_point(front, objectives)
        if knee is None:
            return None
        # Nearest in the scaled objectives the knee is picked in, not by rank along the front
        # (which took the neighbour on the first objective's better side, however far).
        nearest = nearest_first(front, objectives, knee)
        top = front.set_index("trial_index", drop=False).loc[nearest[: cfg.confirm_top]]
    else:
        ranked = kept.sort_values(["best_val_acc", "best_val_loss"], ascending=[False, True])
        top = ranked[~ranked["is_baseline"]].head(cfg.confirm_top)
    rows = [row for _, row in top.iterrows()]
    baseline = kept[kept["is_baseline"]] if "is_baseline" in kept else kept.iloc[:0]
    if baseline.empty and "is_baseline" in trials:  # diverged at once: still worth its seeds
        baseline = trials[trials["is_baseline"]]
    if not baseline.empty and int(baseline.iloc[0]["trial_index"]) not in {
        int(r["trial_index"]) for r in rows
    }:
        rows.append(baseline.iloc[0])
    if not rows:
        return None
    candidates = [
        Candidate(
            trial_index=int(r["trial_index"]),
            is_baseline=bool(r["is_baseline"]),
            search_val_acc=float(r["best_val_acc"]) if pd.notna(r["best_val_acc"]) else math.nan,
            config=trial_config(exp, r),
            epoch_seconds=_epoch_seconds(r),
        )
        for r in rows
    ]
    return Plan(candidates, fresh_seeds(cfg.confirm_seeds), cfg.epochs)


def budgeted(
    stage: Plan | None, record: dict[str, Any], resumed: bool, seconds_left: float | None,
    slots: int,
) -> tuple[Plan | None, str]:  # fmt: skip
    """The stage to run in what --time-budget leaves (`seconds_left`; None: no budget), and a
    line for the user when it was cut or left out. A resume of a run whose stage, cut or not,
    did not finish continues that stage (recorded_cut; its own clock stops it). A cut stage's
    line is kept in `record` (provenance.json's "confirm_cut"), for best.json and the report."""
    if stage is None or seconds_left is None:
        if stage is not None:
            record.pop("confirm_cut", None)
        return stage, ""
    earlier = recorded_cut(stage, record.get("confirm"))
    if earlier is not None and resumed and record.get("finished") is None:
        return earlier, ""
    fitted, line = fit_to_time(stage, seconds_left, slots)
    if fitted is not None and line:
        record["confirm_cut"] = line
    elif fitted is not None:
        record.pop("confirm_cut", None)
    return fitted, line


def recorded_cut(stage: Plan, recorded: dict[str, Any] | None) -> Plan | None:
    """The stage recorded in provenance.json (`recorded`, a Plan.key()) when it is `stage`
    itself or a cut of it (fit_to_time: some of its candidates, its first seeds, its epochs):
    a resume continues that stage rather than cutting `stage` anew to another plan, which
    would set the runs already trained aside. None otherwise."""
    if not recorded or recorded.get("epochs") != stage.epochs:
        return None
    by_index = {c.trial_index: c for c in stage.candidates}
    trials, seeds = list(recorded.get("trials") or []), list(recorded.get("seeds") or [])
    if not trials or any(i not in by_index for i in trials):
        return None
    if len(seeds) < 2 or seeds != stage.seeds[: len(seeds)]:
        return None
    return Plan([by_index[i] for i in trials], seeds, stage.epochs)


def fit_to_time(stage: Plan, seconds_left: float, slots: int) -> tuple[Plan | None, str]:
    """The largest part of `stage` expected to end within `seconds_left`, `slots` runs at once
    (tuner.stages.confirm_time.largest_stage says what is kept first), and one line saying what
    was cut; (None, why) when not even its best configuration with 2 seeds fits. A stage that
    fits is returned as it is, with no line."""
    searched = [c for c in stage.candidates if not c.is_baseline]
    baseline = next((c for c in stage.candidates if c.is_baseline), None)
    size = largest_stage(
        [c.epoch_seconds for c in searched], baseline.epoch_seconds if baseline else None,
        len(stage.seeds), stage.epochs, slots, seconds_left,
    )  # fmt: skip
    full = stage_seconds([c.epoch_seconds for c in stage.candidates], len(stage.seeds),
                         stage.epochs, slots)  # fmt: skip
    if size is None:
        return None, (
            f"No confirm stage: it needs about {full:.0f} s, and not even its best "
            f"configuration with 2 seeds fits in the {seconds_left:.0f} s --time-budget leaves; "
            "the winner is the search's best single run (`tuner confirm DIR` runs the stage "
            "later)"
        )
    kept = searched[: size.candidates] + ([baseline] if size.baseline and baseline else [])
    if len(kept) == len(stage.candidates) and size.seeds == len(stage.seeds):
        return stage, ""
    cut = Plan(kept, stage.seeds[: size.seeds], stage.epochs)
    without = "" if size.baseline or baseline is None else ", without the lab's baseline"
    return cut, (
        f"The confirm stage is cut to fit the {seconds_left:.0f} s left of --time-budget: "
        f"{size.candidates} configuration(s){without} x {size.seeds} seeds (about "
        f"{size.seconds:.0f} s; in full about {full:.0f} s, which `tuner confirm DIR` runs later)"
    )


def _epoch_seconds(row: pd.Series) -> float:
    """A trial's mean training seconds per epoch in the search (0 when unknown)."""
    seconds, epochs = row.get("train_seconds"), row.get("epochs_run")
    if pd.isna(seconds) or pd.isna(epochs) or not epochs:
        return 0.0
    return float(seconds) / float(epochs)


# --- the runs, under Tune -----------------------------------------------------------------------


class ConfirmProgress(Callback):
    """One line per finished run of the stage."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.done = total, stream, 0
        self.started = time.monotonic()

    def __getstate__(self) -> dict[str, Any]:  # pickled into tuner.pkl: not the stream
        return {**self.__dict__, "stream": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.stream = sys.stdout

    def setup(self, *args: Any, **info: Any) -> None:
        self.started = time.monotonic()

    def _line(self, trial: Any, outcome: str) -> None:
        self.done += 1
        run = trial.config.get(CONFIG_KEY, {})
        acc = (trial.last_result or {}).get("best_val_acc")
        acc_text = f"val_acc {acc:.4f}" if isinstance(acc, float) and math.isfinite(acc) else "-"
        minutes, secs = divmod(int(time.monotonic() - self.started), 60)
        say(self.stream, f"confirm: trial {run.get('trial_index', '?'):>3} seed "
            f"{run.get('seed', '?')}  {outcome:<10} {acc_text}  "
            f"[{self.done}/{self.total} runs, {minutes:02d}:{secs:02d}]")  # fmt: skip

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        diverged = (trial.last_result or {}).get("diverged")
        self._line(trial, "diverged" if diverged else "done")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        self._line(trial, "error")


def _tuner(cfg: SearchConfig, trial_data: TrialData, stage: Plan, stream: TextIO) -> Any:
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from tuner.driver.fence.loggers import ProgressCsvLogger, ResultJsonLogger
    from tuner.driver.guards import ClockGuard, DiskGuard, StateBackup
    from tuner.driver.live_report import LiveReport
    from tuner.driver.tensorboard import TensorBoardLogger
    from tuner.driver.trainable import train_confirm_run
    from tuner.driver.tuner_setup import make_trainable

    runs = stage.runs()
    return tune.Tuner(
        # No stop epochs: nothing stops these runs early, so they checkpoint only by
        # --checkpoint-interval and at their last epoch.
        make_trainable(
            cfg,
            trial_data,
            function=train_confirm_run,
            stop_epochs=frozenset(),
            experiment_dir=cfg.experiment_dir / CONFIRM_DIR,
        ),  # fmt: skip
        param_space={CONFIG_KEY: tune.grid_search(runs)},
        tune_config=tune.TuneConfig(
            scheduler=FIFOScheduler(),
            num_samples=1,
            max_concurrent_trials=cfg.concurrency,
            trial_dirname_creator=confirm_run_dir_name,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=CONFIRM_DIR,
            storage_path=str(cfg.experiment_dir),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            verbose=0,
            callbacks=[
                ConfirmProgress(len(runs), stream),
                DiskGuard(cfg.experiment_dir),
                ClockGuard(),
                StateBackup(cfg.experiment_dir / CONFIRM_DIR),
                ResultJsonLogger(),
                ProgressCsvLogger(),
                TensorBoardLogger(wrapped=CONFIG_KEY),
                LiveReport(
                    cfg.experiment_dir, len(runs), cfg.report_every, confirm_of=cfg.samples
                ),  # fmt: skip
            ],
        ),
    )


def _set_aside(confirm_dir: Path) -> Path:
    """An earlier stage of another plan is kept, renamed, never deleted."""
    n = 1
    while (aside := confirm_dir.with_name(f"{confirm_dir.name}.previous-{n}")).exists():
        n += 1
    confirm_dir.rename(aside)
    return aside


def run_stage(
    cfg: SearchConfig, trial_data: TrialData, stage: Plan, record: dict[str, Any],
    stream: TextIO, interrupts: Any,
) -> None:  # fmt: skip
    """Fit the stage's runs (continue them when an unfinished stage of the same plan is
    there). Ray must be up."""
    from ray import tune

    from tuner.driver.fence.recovery import repair_state
    from tuner.driver.trainable import train_confirm_run
    from tuner.driver.tuner_setup import make_trainable

    confirm_dir = cfg.experiment_dir / CONFIRM_DIR
    same_plan = record.get("confirm") == stage.key()
    restoring = same_plan and tune.Tuner.can_restore(str(confirm_dir))
    if confirm_dir.exists() and not restoring:
        aside = _set_aside(confirm_dir)
        say(stream, f"An earlier confirm stage (another plan) is kept in {aside.name}")
    record["confirm"] = stage.key()
    n, k = len(stage.runs()), len(stage.candidates)
    say(stream, f"Confirming the top configurations: {k} configuration(s) x "
        f"{len(stage.seeds)} seeds x {stage.epochs} epochs = {n} runs"
        + (" (continuing)" if restoring else ""))  # fmt: skip
    if restoring:
        for note in repair_state(confirm_dir):
            say(stream, note)
        tuner = tune.Tuner.restore(
            str(confirm_dir),
            trainable=make_trainable(cfg, trial_data, function=train_confirm_run,
                                     stop_epochs=frozenset(), experiment_dir=confirm_dir),
            resume_unfinished=True, resume_errored=False,
        )  # fmt: skip
    else:
        tuner = _tuner(cfg, trial_data, stage, stream)
    interrupts.in_fit = True
    search_plan = interrupts.plan
    interrupts.plan = lambda in_fit: (  # what the first Ctrl-C leads to, during this stage
        "Stopping the confirm runs (each keeps its last checkpoint), then writing "
        f"{BEST_JSON} and the report; `tuner resume {cfg.experiment_dir}` trains the runs left."
    )
    try:
        with lean_tune_state(TUNE_SUMMARY_METRICS):
            tuner.fit()
    finally:
        interrupts.in_fit = False
        interrupts.plan = search_plan
