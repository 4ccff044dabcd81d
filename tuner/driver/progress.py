"""A compact progress display for a running search (a Ray Tune callback in the driver).

Ray's own trial table is long and scrolls; users want to know how far along the search is and
what the best result is so far. On a terminal one status line is redrawn in place; in a log
(not a TTY) a status line is printed at most every `log_every_s`. Every finished trial gets
one permanent line either way.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from ray.tune import Callback

from tuner.experiment import trial_dir_name, trial_index

ACTIVE: SearchProgress | None = None  # the running search's display (read by Ctrl-C's plan)


class SearchProgress(Callback):
    def __init__(
        self, samples: int, epochs: int, stream: TextIO | None = None, log_every_s: float = 15.0
    ) -> None:
        self.samples, self.epochs = samples, epochs
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
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

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks into tuner.pkl; a stream (a captured stdout, an open
        log file) may not pickle, and a resumed search prints to its own stdout anyway."""
        state = self.__dict__.copy()
        state["stream"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Experiments from before these fields existed pickled this object without them.
        for name, empty in (("_index", dict), ("running", set), ("final_status", dict),
                            ("failures", dict)):  # fmt: skip
            state.setdefault(name, empty())
        state.setdefault("peak_running", 0)
        self.__dict__.update(state)
        self.stream = sys.stdout
        self.tty = self.stream.isatty()

    # -- Tune hooks ---------------------------------------------------------------------------
    def setup(self, *args: Any, **info: Any) -> None:
        global ACTIVE
        ACTIVE = self
        from tuner.driver import internals

        if internals.RAISED_SAMPLES is not None:  # `tuner resume --samples N`
            self.samples = max(self.samples, internals.RAISED_SAMPLES)
        self.running, self.peak_running = set(), 0  # a restored copy counts this run afresh
        self.failures = {}

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

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_) -> None:
        self.failures[trial.trial_id] = self.failures.get(trial.trial_id, 0) + 1
        self._finish(trials, trial, "error", self.last.get(trial.trial_id, {}))

    def on_experiment_end(self, trials: list, **_) -> None:
        # Tune's own saved state can lag behind: a trial whose worker died with no retries
        # left was saved as RUNNING (Ray 2.60), although Tune had ended it in ERROR.
        self.final_status = {t.trial_id: t.status for t in trials}
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    # -- output -------------------------------------------------------------------------------
    def _finish(self, trials: list, trial: Any, outcome: str, result: dict) -> None:
        self.running.discard(trial.trial_id)
        done = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        done.add(trial.trial_id)  # Tune may call this hook before it updates the status
        acc, kept = result.get("best_val_acc"), result.get("best_epoch")
        if kept:
            acc_text = f"val_acc {acc:.4f} (epoch {kept})"
        else:
            acc_text = "no finished epoch"
        params = result.get("params")
        size = f", {params:,} params" if params else ""
        line = (
            f"trial {trial_index(trial_dir_name(trial)):>3}  {outcome:<20} {acc_text}{size}"
            f"  [{len(done)}/{self.samples} done]"
        )
        self._write_line(line)

    def _summary(self, trials: list) -> str:
        # Counted from Tune's trial list, not from this object's history: after `tuner resume`
        # the restored trials are in the list but this callback never saw them finish.
        running = sum(1 for t in trials if t.status == "RUNNING")
        done = sum(1 for t in trials if t.status in ("TERMINATED", "ERROR"))
        epochs = sum(int((t.last_result or {}).get("epoch", 0)) for t in trials)
        elapsed = time.monotonic() - self.start
        best = (
            f"best val_acc {self.best[0]:.4f} (trial {self.best[1]})"
            if self.best
            else "no result yet"
        )
        return (
            f"[{_clock(elapsed)}] {done}/{self.samples} trials done, "
            f"{running} running, {epochs} epochs trained, {best}"
        )

    def _status(self, trials: list) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\033[K" + self._summary(trials))
            self.stream.flush()
        elif now - self.last_log >= self.log_every_s:
            self.last_log = now
            self._write_line(self._summary(trials))

    def _write_line(self, line: str) -> None:
        prefix = "\r\033[K" if self.tty else ""
        self.stream.write(prefix + line + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"
