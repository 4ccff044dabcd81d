"""Ctrl-C during a search: the first says what comes next and stops gracefully, the second
stops at once.

Ray Tune's own SIGINT handler ends the run gracefully but prints nothing we show (its logger
is quiet) and, once fit() returns, test scoring and the report follow in silence: a
CIFAR-sized best trial on the CPU took ~90 s, and users pressed Ctrl-C again or killed the
driver. So Tune's SIGINT handler is switched off (TUNE_DISABLE_SIGINT_HANDLER) and this one
takes SIGINT for the whole search. The first Ctrl-C prints the plan (which trials stop, what is
scored on how many test images and about how long it takes, the report) and, inside fit(),
calls Tune's SIGUSR1 handler, the same graceful stop Tune's SIGINT handler makes. The second
raises KeyboardInterrupt wherever the driver is: every file is written atomically and trials
checkpoint every epoch, so what is on disk is an experiment `tuner resume` continues and
`tuner report` draws.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from tuner.driver.fence.internals import tune_graceful_stop

if TYPE_CHECKING:
    from search_spaces import SearchSpace
    from tuner.config.search_config import SearchConfig
    from tuner.data import DatasetBundle
    from tuner.stages.confirm_time import ConfirmShape

_CURRENT: Interrupts | None = None  # the search running in this process


def stop_gracefully(reason: str, kind: str = "disk") -> bool:
    """Stop the running search as the first Ctrl-C would (from a Tune callback, in the
    driver's main thread). kind: "disk", "time-budget" or "confirm-reserve". Returns False
    when no search is running here."""
    return _CURRENT.stop(reason, kind) if _CURRENT is not None else False


def current_time_budget() -> float | None:
    """Seconds the run in progress may take (--time-budget), or None."""
    return _CURRENT.time_budget if _CURRENT is not None else None


def current_confirm_shape() -> ConfirmShape | None:
    """The confirm stage the run in progress ends with (None: --no-confirm, or no run)."""
    return _CURRENT.confirm_shape if _CURRENT is not None else None


def current() -> Interrupts | None:
    """The run in progress in this process, or None."""
    return _CURRENT


def current_run_seconds() -> float | None:
    """Seconds since the run in progress started its fit (the search's, then the confirm
    stage's: one --time-budget covers both), or None outside a run."""
    return time.monotonic() - _CURRENT.entered if _CURRENT is not None else None


def time_budget_left() -> float | None:
    """Seconds left of the run in progress's --time-budget (>= 0), or None without one."""
    budget, spent = current_time_budget(), current_run_seconds()
    if budget is None or spent is None:
        return None
    return max(0.0, budget - spent)


def left_for_stage(interrupts: Interrupts) -> float | None:
    """Seconds of --time-budget the confirm stage may spend: what is left, less the test
    scoring that comes after it (the clock guard's estimate); None without a budget."""
    left = time_budget_left()
    return None if left is None else max(0.0, left - interrupts.scoring_s)


class Interrupts:
    """Context manager around the part of a search that runs after Ray has started."""

    def __init__(
        self,
        stream: TextIO,
        plan: Callable[[bool], str],
        time_budget: float | None = None,
        confirm_shape: ConfirmShape | None = None,
        test_per_val: float = 0.0,
        has_baseline: bool = False,
    ) -> None:
        """plan(in_fit) -> what happens next, one sentence. confirm_shape: the confirm stage
        that --time-budget keeps time back for (None: --no-confirm). test_per_val: the test
        split's images per validation image, to scale a validation pass's seconds to the
        test scoring that --time-budget also keeps time back for."""
        self.stream, self.plan, self.time_budget = stream, plan, time_budget
        self.confirm_shape = confirm_shape
        self.test_per_val, self.has_baseline = test_per_val, has_baseline
        # The clock guard's latest estimate of the test scoring after the search (seconds):
        # the confirm stage, planned in what is left, leaves it too.
        self.scoring_s = 0.0
        self.count = 0
        self.in_fit = False
        self._previous: Any = None
        self._installed = False
        self.stop_reason: str | None = None  # why the search stopped itself
        # "disk", "time-budget", or "confirm-reserve" (the rest of the budget is the stage's)
        self.stop_kind: str | None = None
        self.stopping_since: float | None = None  # monotonic time of the first stop request
        self.entered = time.monotonic()  # when the run's fit began (reset by __enter__)

    def stop(self, reason: str, kind: str = "disk") -> bool:
        """The graceful stop of a first Ctrl-C, for a reason of the search's own."""
        if self.stop_reason is not None or not self.in_fit:
            return False
        self.stop_reason, self.stop_kind = reason, kind
        self.stopping_since = time.monotonic()
        self.stream.write(f"\nStopping the search: {reason}.\n")
        self.stream.flush()
        tune_graceful_stop(None)
        return True

    def __enter__(self) -> Interrupts:
        global _CURRENT
        _CURRENT = self
        self.entered = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        global _CURRENT
        _CURRENT = None
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)

    @property
    def interrupted(self) -> bool:
        return self.count > 0

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        self.stopping_since = time.monotonic()
        try:
            text = self.plan(self.in_fit)
        except Exception:  # the plan is a courtesy; stopping must not depend on it
            text = "stopping the trials, then scoring the best one and writing the report."
        self.stream.write(
            f"\nCtrl-C: {text} Press Ctrl-C again to stop at once; the experiment is kept "
            "either way.\n"
        )
        self.stream.flush()
        if self.in_fit:
            tune_graceful_stop(frame)


def interrupt_plan(
    cfg: SearchConfig, space: SearchSpace, bundle: DatasetBundle, in_fit: bool
) -> str:
    """What the first Ctrl-C leads to, and about how long the test scoring takes: the best
    trial's validation pass, scaled from its validation images to the test split's."""
    from tuner.config.objectives import MAX_FRONT_EVALUATIONS
    from tuner.driver import progress

    shown = progress.ACTIVE
    steps = []
    if in_fit:
        running = len(shown.running) if shown else 0
        steps.append(
            f"stopping the {running} running trial(s) as their current epoch ends (each keeps "
            "its last checkpoint)"
            if running
            else "stopping the search"
        )
    tests = len(bundle.test.y)
    if cfg.objectives:
        scoring = f"scoring up to {MAX_FRONT_EVALUATIONS} Pareto-front trials"
    elif shown and shown.best:
        scoring = f"scoring trial {shown.best[1]}, the best so far,"
    else:
        scoring = "scoring the best trial"
    scoring += f" on {tests:,} test images"
    if space.baseline is not None:
        scoring += " (and the lab baseline)"
    if shown and shown.best and not cfg.objectives:
        val_seconds = shown.kept_result(shown.best[1]).get("val_time_s")
        if val_seconds and len(bundle.val.y):
            estimate = float(val_seconds) * tests / len(bundle.val.y)
            scoring += f", about {max(1, round(estimate)):,} s"
    steps += [scoring, "writing the report"]
    text = ", then ".join(steps) + "."
    return text[0].upper() + text[1:]
