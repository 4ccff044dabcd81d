"""Tune callbacks in the driver that end a search the way a first Ctrl-C does (gracefully, every
unfinished trial left to `tuner resume`): DiskGuard before the disk is full (figures in
tuner/stages/disk.py), ClockGuard when --time-budget is spent. Apart from tuner.stages.disk so
that importing the disk helpers never imports Ray."""

from __future__ import annotations

import logging
import math
import time
import traceback
from pathlib import Path
from typing import Any

from ray.tune import Callback

from tuner.driver.fence.asha import experiment_path
from tuner.driver.fence.recovery import back_up_state
from tuner.stages.confirm_time import ConfirmShape, StageSize, largest_stage
from tuner.stages.disk import CHECKPOINT_BYTES_PER_PARAM, MARGIN_BYTES, REPORT_BYTES, free_bytes, mb


class DiskGuard(Callback):
    """Stops the search gracefully before (or at the first sign that) the disk is full.

    After every step of Tune's loop (a statvfs call, microseconds) it compares the free space
    with what the running trials' next checkpoints need, plus a margin for the tables and the
    report; and when a trial fails with ENOSPC it stops at once instead of letting Tune retry
    it into the same full disk.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)  # followed to where the trials run (a moved resume)
        self.params: dict[str, int] = {}  # running trial id -> parameters
        self.stopped = False
        self.needed = 0  # bytes it wanted free when it stopped

    def setup(
        self, *args: Any, **info: Any
    ) -> None:  # a resume restores this object from tuner.pkl
        self.params, self.stopped, self.needed = {}, False, 0

    def _need(self) -> int:
        return sum(p * CHECKPOINT_BYTES_PER_PARAM for p in self.params.values()) + MARGIN_BYTES

    def _halt(self, why: str) -> None:
        from tuner.driver.interrupt import stop_gracefully

        if self.stopped:
            return
        self.needed = self._need() + REPORT_BYTES
        self.stopped = stop_gracefully(why)
        if self.stopped:  # what follows is the same ENOSPC over and over, in Ray's tracebacks
            for name in ("ray.tune", "ray.train", "ray"):
                logging.getLogger(name).setLevel(logging.CRITICAL)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **_) -> None:
        if result.get("params"):
            self.params[trial.trial_id] = int(result["params"])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_) -> None:
        self.params.pop(trial.trial_id, None)

    def on_step_end(self, iteration: int, trials: list, **_) -> None:
        if self.stopped:
            return
        here = experiment_path(trials[0]) if trials else None
        if here:
            self.directory = Path(here)

        free = free_bytes(self.directory)
        if free < self._need():
            self._halt(
                f"only {mb(free)} free under {self.directory}, and the running trials' next "
                f"checkpoints need about {mb(self._need())}"
            )

    def _failed(self, trial: Any) -> None:
        self.params.pop(trial.trial_id, None)
        text = ""
        try:
            text = Path(trial.error_file).read_text(errors="replace") if trial.error_file else ""
        except OSError:
            pass
        if "No space left on device" in text or free_bytes(self.directory) < MARGIN_BYTES:
            self._halt(f"no space left on the device under {self.directory}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **_) -> None:
        self._failed(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_) -> None:
        self._failed(trial)


class DiskFullLogFilter(logging.Filter):
    """Drops Ray's log records about a full disk (a trial's checkpoint copy failing with
    ENOSPC, an experiment state that could not be saved), each a long traceback, and asks
    the search to stop cleanly instead: the user gets one line from tuner.cli, not Ray's 16
    tracebacks. Also Tune's "Trials did not complete" after a stop: the summary says which
    are left and how to continue. Installed on the handlers of the `ray` logger, so it sees
    every Ray record."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith("Trials did not complete"):  # after any stop of ours: the summary
            return False  # says which trials are left, and how to continue them
        if record.exc_info and record.exc_info[1] is not None:  # the worker's own traceback
            text += "".join(traceback.format_exception(*record.exc_info))
        if "No space left on device" not in text and "database or disk is full" not in text:
            return True
        from tuner.driver.interrupt import stop_gracefully

        stop_gracefully("no space left on the device under the experiment directory")
        return False


def quiet_disk_full_logs() -> None:
    """Install DiskFullLogFilter once on the `ray` logger's handlers."""
    for handler in logging.getLogger("ray").handlers:
        if not any(isinstance(f, DiskFullLogFilter) for f in handler.filters):
            handler.addFilter(DiskFullLogFilter())


class StateBackup(Callback):
    """Keeps a copy of each of Tune's state files as it was when last whole (see
    tuner.driver.fence.recovery.back_up_state): a resume after a full disk puts it back over a
    cut one.
    Looked at every second (a listing and a stat; the copy, ~100 KB, only when Tune has
    saved anew, about every 10 s)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def setup(self, *args: Any, **info: Any) -> None:
        self.looked_at, self.seen = 0.0, dict[str, float]()

    def on_step_end(self, iteration: int, trials: list, **_) -> None:
        now = time.monotonic()
        if now - getattr(self, "looked_at", 0.0) < 1.0:
            return
        self.looked_at = now
        here = experiment_path(trials[0]) if trials else None
        back_up_state(Path(here) if here else self.directory, self.__dict__.setdefault("seen", {}))

    def on_experiment_end(self, trials: list, **_) -> None:
        self.looked_at = 0.0
        self.on_step_end(0, trials)


def confirm_reserve(
    shape: ConfirmShape, results: list[dict[str, Any]], slots: int, budget: float
) -> float | None:
    """Seconds to keep back from --time-budget for the confirm stage (confirm_stage's)."""
    size = confirm_stage(shape, results, slots, budget)
    return None if size is None else size.seconds


def confirm_stage(
    shape: ConfirmShape, results: list[dict[str, Any]], slots: int, budget: float
) -> StageSize | None:
    """The confirm stage to keep time back for from --time-budget, and its seconds, estimated
    from the trials' results so far (in creation order: the baseline, where there is one, first):
    the seconds of the largest stage that fits in half the budget (confirm_time.largest_stage:
    the search keeps at least the other half), each run at its latest epoch's seconds
    (time_this_iter_s: training, validation and the checkpoint) x --epochs, the top
    --confirm-top by best validation accuracy so far as the candidates, `slots` runs at once
    (the most trials that ran at once in the search). None until a trial has reported, or
    when not even the smallest stage fits (the search then runs to the end)."""
    first = results[0] if results else None
    baseline = _epoch_seconds(first) if shape.baseline and first else None
    timed = [r for r in (results[1:] if shape.baseline else results) if _epoch_seconds(r)]
    if not timed and not baseline:
        return None

    ranked = sorted(timed, key=_best_val_acc, reverse=True)[: shape.top]
    searched = [_epoch_seconds(r) for r in ranked]
    return largest_stage(searched, baseline or None, shape.seeds, shape.epochs, slots, budget / 2)


def scoring_reserve(results: list[dict[str, Any]], test_per_val: float, baseline: bool) -> float:
    """Seconds to keep back from --time-budget for scoring on the test split after the search:
    the best trial so far (by best validation accuracy) and, where the space has one, the lab's
    baseline (the first trial), each at its latest validation pass's seconds x test images per
    validation image. On 11,000 CIFAR-10 images the baseline's 2.2M-parameter network took 26 s
    to score on the 10,000 test images, after the budget had run out (BENCHMARKS.md)."""
    timed = [r for r in results if r]
    if not timed or test_per_val <= 0:
        return 0.0

    scored = [max(timed, key=_best_val_acc)]
    if baseline and results[0] and results[0] is not scored[0]:
        scored.append(results[0])
    return test_per_val * sum(float(r.get("val_time_s") or 0.0) for r in scored)


def _best_val_acc(result: dict[str, Any]) -> float:
    """A trial's best validation accuracy so far (-1 before it has one), to rank trials by."""
    value = result.get("best_val_acc")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else -1.0


def _epoch_seconds(result: dict[str, Any] | None) -> float:
    return float((result or {}).get("time_this_iter_s") or 0.0)


class ClockGuard(Callback):
    """Ends the search once --time-budget is spent, or, in the search's fit
    (`leave_for_confirm`), once what is left of it is about what the confirm stage will take
    (confirm_reserve), so that the stage runs inside the budget instead of being cut off by
    it (a CIFAR-10 run under 12 minutes: the stage took 6 of 10.5 minutes; another scored 2 of
    its 12 runs before the clock ran out).

    Tune's own time_budget_s stops the running trials for good (TERMINATED): they read as
    finished, a resume cannot continue them, and the trials never started are never asked for.
    Stopped this way instead, they stay unfinished, and `tuner resume` carries the search on.
    The budget and the stage's shape are those of the run in progress
    (tuner.driver.interrupt), so a restored copy of this callback (tuner.pkl) applies the
    resume's own, or none.
    """

    def __init__(self, leave_for_confirm: bool = False) -> None:
        self.leave_for_confirm = leave_for_confirm
        self.peak_running = 0

    def setup(self, *args: Any, **info: Any) -> None:
        self.started = time.monotonic()
        self.peak_running = 0  # a restored copy counts this run's concurrency afresh
        self.judged_at = -math.inf

    def on_step_end(self, iteration: int, trials: list, **_) -> None:
        from tuner.driver.interrupt import (
            current,
            current_confirm_shape,
            current_run_seconds,
            current_time_budget,
            stop_gracefully,
        )

        budget = current_time_budget()
        # From the run's start, not this fit's: the confirm stage's fit spends what the search
        # left of the budget, not a budget of its own.
        spent = current_run_seconds()
        if spent is None:
            spent = time.monotonic() - getattr(self, "started", 0)
        if budget is None:
            return
        run = current()
        search_fit = getattr(self, "leave_for_confirm", False)
        shape, reserve = current_confirm_shape(), None
        if search_fit:
            running = sum(1 for t in trials if t.status == "RUNNING")
            self.peak_running = max(getattr(self, "peak_running", 0), running)
        # Judged once a second, not at every step of Tune's loop: it reads every trial's result.
        if search_fit and spent - getattr(self, "judged_at", -math.inf) >= 1.0:
            self.judged_at = spent
            results = [t.last_result for t in trials]
            stage = None if shape is None else confirm_stage(shape, results, self.peak_running,
                                                             budget)  # fmt: skip
            reserve = None if stage is None else stage.seconds
            if run is not None:  # the test scoring after the search (the stage's fit keeps it)
                # A baseline the budget cuts out of the stage is not scored either
                # (tuner.stages.best.write_best).
                baseline = run.has_baseline and (stage is None or stage.baseline)
                run.scoring_s = scoring_reserve(results, run.test_per_val, baseline)
        scoring = run.scoring_s if run is not None else 0.0
        if spent + scoring >= budget:
            why = f"the time budget of {budget:g} s is spent"
            if scoring >= 1:
                why = (
                    f"{spent:.0f} s of the time budget of {budget:g} s are spent, and scoring "
                    f"on the test split needs about {scoring:.0f} s of the rest"
                )
            stop_gracefully(why, kind="time-budget")
        elif reserve is not None and spent + reserve + scoring >= budget:
            stop_gracefully(
                f"{spent:.0f} s of the time budget of {budget:g} s are spent, and the confirm "
                f"stage needs about {reserve:.0f} s of the rest",
                kind="confirm-reserve",
            )
