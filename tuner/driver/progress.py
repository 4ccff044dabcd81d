"""A compact progress display for a running search (a Ray Tune callback in the driver).

Ray's own trial table is long and scrolls; users want to know how far along the search is and
what the best result is so far. In an interactive terminal one live bar (drawn by rich) shows
trials and epochs done, the best so far, the time elapsed and the time left; in a log or CI
(not a TTY) a status line every `log_every_s`, also while no trial reports (Tune's loop calls
on_step_end many times a second; a CIFAR-10 search whose large networks took minutes an epoch
printed nothing for minutes when only results drove it). Every finished trial gets one
permanent line either way.

The bar's progress is counted in epochs. Where the search spends what ASHA saves on new
trials (SearchConfig.spends_savings), its budget is epochs, and the bar counts the epochs
trained against it. Otherwise a finished trial counts its whole budget (ASHA stops most trials
early, so epochs trained alone would never reach the end), a running one the epochs it has
trained. Time left is rich's estimate from that pace, or what is left of --time-budget when
that is sooner.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback

from tuner.experiment import trial_dir_name, trial_index

ACTIVE: SearchProgress | None = None  # the running search's display (read by Ctrl-C's plan)


class SearchProgress(Callback):
    def __init__(
        self,
        samples: int,
        epochs: int,
        stream: TextIO | None = None,
        log_every_s: float = 15.0,
        budget_left: Callable[[], float | None] | None = None,
        spends_savings: bool = False,
    ) -> None:
        """budget_left: seconds left of --time-budget, shown beside the bar (a module-level
        function: Tune pickles this callback into tuner.pkl). spends_savings: the budget is
        samples x epochs epochs, not a trial count."""
        self.samples, self.epochs = samples, epochs
        self.spends_savings = spends_savings
        self.budget_left = budget_left
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._bar: _Bar | None = None  # the live bar (TTY only), made when the search starts
        self.log_every_s = log_every_s
        self.start = time.monotonic()
        self.last_log = 0.0
        self.last: dict[str, dict[str, Any]] = {}  # trial id -> last result
        self.best: tuple[float, int] | None = None  # (val acc of kept weights, trial index)
        self._index: dict[str, int] = {}  # trial id -> trial index
        self.running: set[str] = set()  # started and not yet finished, as this display saw it
        self.final_status: dict[str, str] = {}  # trial id -> Tune's status when the run ended
        self.peak_running = 0  # the most trials running at once (provenance.json)
        self.failures: dict[str, int] = {}  # trial id -> failures seen in this run
        # Trials Tune has ended, counted from its list once a run and kept up after: the list
        # walked at every end was O(trials) a trial (0.4 ms at 1,000, 4 ms at 10,000).
        self._done: set[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks into tuner.pkl; a stream (a captured stdout, an open
        log file) may not pickle, and a resumed search prints to its own stdout anyway."""
        state = self.__dict__.copy()
        state["stream"] = None
        state["_bar"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Experiments from before these fields existed pickled this object without them.
        for name, empty in (("_index", dict), ("running", set), ("final_status", dict),
                            ("failures", dict)):  # fmt: skip
            state.setdefault(name, empty())
        state.setdefault("peak_running", 0)
        state.setdefault("spends_savings", False)
        state["_done"] = None
        state["_bar"] = None
        self.__dict__.update(state)
        self.stream = sys.stdout
        self.tty = self.stream.isatty()

    # -- Tune hooks ---------------------------------------------------------------------------
    def setup(self, *args: Any, **info: Any) -> None:
        global ACTIVE
        ACTIVE = self
        from tuner.driver.restore_context import current

        raised = current().raised_samples
        if raised is not None:  # `tuner resume --samples N`
            self.samples = max(self.samples, raised)
        self.running, self.peak_running = set(), 0  # a restored copy counts this run afresh
        self._done = None
        self.failures = {}
        self.start = time.monotonic()  # a resumed run's clock (and --time-budget) starts now
        if self.tty and self._bar is None:
            self._bar = _Bar(self.stream, self.samples * self.epochs)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **_) -> None:
        self.running.add(trial.trial_id)
        self.peak_running = max(self.peak_running, len(self.running))

    def kept_result(self, index: int) -> dict[str, Any]:
        """The last result seen of trial `index` (its epoch timings), or {}."""
        for trial_id, result in self.last.items():
            if self._index.get(trial_id) == index:
                return result
        return {}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **_) -> None:
        self.last[trial.trial_id] = result
        self._index[trial.trial_id] = trial_index(trial_dir_name(trial))
        acc = result.get("best_val_acc")
        if acc is not None and math.isfinite(acc) and (self.best is None or acc > self.best[0]):
            self.best = (acc, trial_index(trial_dir_name(trial)))
        self._status(trials)

    def on_step_end(self, iteration: int, trials: list, **_) -> None:
        if self._bar is None:  # the bar redraws its own clock
            self._status(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_) -> None:
        result = self.last.get(trial.trial_id, {})
        epochs = int(result.get("epoch", 0))
        if result.get("diverged"):
            outcome = f"diverged at epoch {epochs}"
        elif epochs >= self.epochs:
            outcome = "completed"
        else:
            outcome = f"stopped at epoch {epochs}"
        self._finish(trials, trial, outcome, result)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **_) -> None:
        # Counted here too: Tune's saved state did not always carry a failure a retry
        # recovered from (a lost node's trial read num_failures 0).
        self.failures[trial.trial_id] = self.failures.get(trial.trial_id, 0) + 1
        # One line instead of Tune's traceback (TUNE_PRINT_ALL_TRIAL_ERRORS=0 unless
        # --verbose; the whole trace is in the trial's error.txt).
        epochs = int(self.last.get(trial.trial_id, {}).get("epoch", 0))
        self._write_line(
            f"trial {trial_index(trial_dir_name(trial)):>3}  failed after epoch {epochs} "
            f"({error_summary(trial)}): retried from its last checkpoint "
            f"(failure {self.failures[trial.trial_id]})"
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_) -> None:
        self.failures[trial.trial_id] = self.failures.get(trial.trial_id, 0) + 1
        self._finish(trials, trial, "error", self.last.get(trial.trial_id, {}),
                     why=error_summary(trial))  # fmt: skip

    def on_experiment_end(self, trials: list, **_) -> None:
        # Tune's own saved state can lag behind: a trial whose worker died with no retries
        # left was saved as RUNNING (Ray 2.60), although Tune had ended it in ERROR.
        self.final_status = {t.trial_id: t.status for t in trials}
        if self._bar is not None:
            self._bar.update(self._progress(trials), self._summary(trials, bar=True))
            self._bar.stop()
            self._bar = None

    # -- output -------------------------------------------------------------------------------
    def _finish(self, trials: list, trial: Any, outcome: str, result: dict, why: str = "") -> None:
        self.running.discard(trial.trial_id)
        if self._done is None:
            self._done = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        done = self._done
        done.add(trial.trial_id)  # Tune may call this hook before it updates the status
        acc, kept = result.get("best_val_acc"), result.get("best_epoch")
        if kept:
            acc_text = f"val_acc {acc:.4f} (epoch {kept})"
        else:
            acc_text = "no finished epoch"
        params = result.get("params")
        size = f", {params:,} params" if params else ""
        if self.spends_savings:
            count = f"{len(done)} done, {self._trained(trials)}/{self._total()} epochs"
        else:
            count = f"{len(done)}/{self.samples} done"
        line = (
            f"trial {trial_index(trial_dir_name(trial)):>3}  {outcome:<20} {acc_text}{size}"
            f"  [{count}]"
        )
        self._write_line(line + (f"  {why}" if why else ""))

    def _summary(self, trials: list, bar: bool = False) -> str:
        # Counted from Tune's trial list, not from this object's history: after `tuner resume`
        # the restored trials are in the list but this callback never saw them finish.
        running = sum(1 for t in trials if t.status == "RUNNING")
        done = sum(1 for t in trials if t.status in ("TERMINATED", "ERROR"))
        epochs = self._trained(trials)
        best = (
            f"best val_acc {self.best[0]:.4f} (trial {self.best[1]})"
            if self.best
            else "no result yet"
        )
        if bar:  # short, beside the bar, which draws the clock itself
            best_text = f"best {self.best[0]:.4f} (trial {self.best[1]})" if self.best else ""
            if self.spends_savings:
                return f"{done} trials, {running} running, {epochs} epochs {best_text}"
            return f"{done}/{self.samples} trials, {running} running, {epochs} epochs {best_text}"
        if self.spends_savings:
            counts = (f"{done} trials done, {running} running, {epochs}/{self._total()} epochs "
                      "of the budget trained")  # fmt: skip
        else:
            counts = (f"{done}/{self.samples} trials done, {running} running, {epochs} epochs "
                      "trained")  # fmt: skip
        return f"[{_clock(time.monotonic() - self.start)}] {counts}, {best}"

    def _total(self) -> int:
        return self.samples * self.epochs

    @staticmethod
    def _trained(trials: list) -> int:
        return sum(int((t.last_result or {}).get("epoch", 0)) for t in trials)

    def _progress(self, trials: list) -> int:
        """Epochs of the whole budget accounted for: with an epoch budget, the epochs trained;
        otherwise a finished trial's every epoch, a running trial's epochs trained."""
        if self.spends_savings:
            return min(self._total(), self._trained(trials))
        total = 0
        for t in trials:
            if t.status in ("TERMINATED", "ERROR"):
                total += self.epochs
            else:
                total += min(self.epochs, int((t.last_result or {}).get("epoch", 0)))
        return total

    def _status(self, trials: list) -> None:
        now = time.monotonic()
        if self._bar is not None:
            # The run in progress's budget (a resume's own, or none), as ClockGuard applies it.
            budget_left = getattr(self, "budget_left", None)
            left = budget_left() if budget_left is not None else None
            self._bar.update(self._progress(trials), self._summary(trials, bar=True), left)
        elif now - self.last_log >= self.log_every_s:
            self.last_log = now
            self._write_line(self._summary(trials))

    def _write_line(self, line: str) -> None:
        if self._bar is not None:  # above the live bar, which stays at the bottom
            self._bar.print(line)
            return
        self.stream.write(line + "\n")
        self.stream.flush()


class _Bar:
    """rich's live progress bar on the terminal `stream`: one line, redrawn in place."""

    def __init__(self, stream: TextIO, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        self.console = Console(file=stream)
        self.progress = Progress(
            BarColumn(bar_width=20), TimeElapsedColumn(), TextColumn("left"),
            TimeRemainingColumn(),
            # the text gives way (an ellipsis) on a narrow terminal; the bar and clocks do not
            TextColumn("{task.fields[left]}{task.description}",
                       table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            console=self.console, transient=False, refresh_per_second=4, expand=True,
        )  # fmt: skip
        self.task = self.progress.add_task("starting", total=max(1, total), left="")
        self.progress.start()

    def update(self, completed: int, text: str, budget_left: float | None = None) -> None:
        left = f"(budget {_clock(budget_left)}) " if budget_left is not None else ""
        self.progress.update(self.task, completed=completed, description=text, left=left)

    def print(self, line: str) -> None:
        self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self.progress.stop()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


# How error.txt says that a trial's process or node is gone, not that its own code failed.
LOST = re.compile(
    r"Actor(Died|Unavailable)Error|NodeDiedError|WorkerCrashedError|OwnerDiedError"
    r"|actor died|actor is unavailable|actor .* is unavailable|node .* (dead|died)",
    re.IGNORECASE,
)
RAISED = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Interrupt)): ?(.*)$")


def error_summary(trial: Any) -> str:
    """The trial's latest failure in a few words: that its worker process or node was lost,
    or its exception's name and message; the whole trace stays in the trial's error.txt."""
    text = ""
    try:  # the driver's own copy, written just before Tune's hooks run (its synced copy later)
        text = Path(trial.error_file).read_text(errors="replace")
    except (AttributeError, TypeError, OSError):
        pass
    last = text.rsplit("Failure # ", 1)[-1]  # error.txt holds every failure, newest last
    if LOST.search(last):
        return "its worker process or node was lost"
    for line in reversed(last.splitlines()):
        raised = RAISED.match(line.strip())
        if raised:
            name, message = raised.groups()
            return f"{name}: {message}"[:160] if message else name
    return "error"
