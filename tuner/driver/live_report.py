"""A report that fills in while the search runs (a Ray Tune callback in the driver).

report.html is rewritten, atomically, at most once every --report-every seconds (default 60),
whenever something changed since the last copy: an epoch reported or a trial ended. The copy
carries a banner ("running: 7 of 20 trials finished, updated 14:02") and reloads itself; the
final report, written when the search ends (tuner/driver/finish.py), has neither.

The first copy comes --report-every after the start, not at it: a copy at the start showed no
trial, yet cost a process that imports pandas and plotly (1.5 s of a core; about 130 s of CPU
in a run of the slow tests went to such copies, most in searches shorter than a minute). A
new search's page exists from the start all the same: a few lines written here, without that
process, that say the search started and reload until the first copy replaces them.

Each copy is written in a process of its own (analysis.report.live_copy), which a thread starts
and waits for, so Tune's loop and the searcher go on while the tables are read from the trial
directories and the page is drawn, without sharing the interpreter's lock with that work. A
copy still being written when the next is due is not doubled, and the next copy waits at least
SHARE_LIMIT times as long as the last one took, so the copies keep under 5 % of the driver's
time even at a short --report-every. Their cost is measured by bench/live_report.py (write
time at 200 and 1,000 trials, and the share of a real 200-trial search's wall time): see
BENCHMARKS.md.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ray.tune import Callback

from tuner.driver.fence.asha import experiment_path

DONE = ("TERMINATED", "ERROR")
# A copy is written at most once per this many times its own writing time, start to start, so
# the copies never take more than 1/20 = 5 % of the driver's time, whatever --report-every
# asks: in a 200-trial search on 2 busy cores a copy took 1.5 s, and --report-every 5 spent
# 25 % of the wall time writing them (bench/live_report.py).
SHARE_LIMIT = 20
ACTIVE: list[LiveReport] = []  # this run's live reports (the search's, the confirm stage's)


def wait_all() -> dict[str, float]:
    """Wait for every copy being written (the final report comes after them); forget this
    run's live reports and return what they cost: {"writes", "seconds"} (provenance.json)."""
    writes, seconds = 0, 0.0
    for live in ACTIVE:
        live.wait()
        writes, seconds = writes + live.writes, seconds + live.seconds
    ACTIVE.clear()
    return {"writes": writes, "seconds": round(seconds, 3)}


class LiveReport(Callback):
    """Rewrites `experiment_dir`/report.html while trials run. total: the search's trial count
    (--samples). epochs: each trial's epochs where the budget is total x epochs epochs, spent
    on as many trials as it pays for (SearchConfig.spends_savings); None: a trial count.
    confirm_of: set for the confirm stage's runs (the search's trial count), whose banner then
    counts the stage's runs."""

    def __init__(
        self, experiment_dir: Path, total: int, every: float, confirm_of: int | None = None,
        epochs: int | None = None,
    ) -> None:  # fmt: skip
        self.experiment_dir = Path(experiment_dir)
        self.total = total
        self.epochs = epochs
        self.every = every
        self.confirm_of = confirm_of
        self.writes = 0  # copies written in this run, and the seconds they took
        self.seconds = 0.0
        self._reset()

    def _reset(self) -> None:
        self._last = -float("inf")
        self._gap = 0.0  # SHARE_LIMIT x the last copy's writing time
        self._changed = True  # the first copy is written when due, before any result came in
        self._thread: threading.Thread | None = None
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks into tuner.pkl
        state = self.__dict__.copy()
        state["_thread"] = None
        return state

    def setup(self, *args: Any, **info: Any) -> None:
        from tuner.driver.restore_context import current

        raised = current().raised_samples
        if raised is not None and self.confirm_of is None:
            self.total = max(self.total, raised)  # tuner resume --samples
        self._reset()
        self.writes, self.seconds = 0, 0.0
        ACTIVE.append(self)
        if self.every > 0:
            self._last = time.monotonic()  # the first copy is due --report-every from now
            if self.confirm_of is None:
                self._write_starting_page()

    def _write_starting_page(self) -> None:
        """A page for a new search, until the first copy: a resumed search, or one whose
        directory is not where it was pickled (a moved experiment, before its first step says
        where it is now), keeps the page it has."""
        from tuner.experiment import REPORT_HTML
        from tuner.io import atomic_write_text

        target = self.experiment_dir / REPORT_HTML
        if not self.experiment_dir.is_dir() or target.exists():
            return
        try:
            atomic_write_text(target, starting_page(self.experiment_dir.name, self.every),
                              durable=False)  # fmt: skip
        except OSError:  # a full disk: the guards stop the search and say so, in one line
            pass

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **_) -> None:
        self._changed = True

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_) -> None:
        self._changed = True

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_) -> None:
        self._changed = True

    def on_step_end(self, iteration: int, trials: list, **_) -> None:
        if self.every <= 0 or not self._changed:
            return
        now = time.monotonic()
        if now - self._last < max(self.every, self._gap):
            return
        if self._thread is not None and self._thread.is_alive():
            return  # the last copy is still being written
        self._last, self._changed = now, False
        done = sum(1 for t in trials if t.status in DONE)
        trained = sum(int((t.last_result or {}).get("epoch", 0)) for t in trials)
        # Where the trials run now: a resume restores this object from tuner.pkl with the path
        # the experiment had when it started, and the directory may have moved since.
        here = experiment_path(trials[0]) if trials else None
        if here is not None:
            self.experiment_dir = Path(here).parent if self.confirm_of is not None else Path(here)
        self._thread = threading.Thread(
            target=self._write, args=(done, trained), name="live-report", daemon=True
        )
        self._thread.start()

    def on_experiment_end(self, trials: list, **_) -> None:
        self.wait()

    def wait(self) -> None:
        """Until the copy being written is written: the final report must come after it."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _write(self, done: int, trained: int = 0) -> None:
        """Write one copy, in a process of its own (analysis.report.live_copy): in this one,
        its second and a half of Python at 1,000 trials held the interpreter's lock against
        the searcher and Tune's loop (6-7 ms a trial of the driver's overhead, suggestions of
        up to 625 ms; bench/scale.py --report-every 0 against 60). This thread only waits."""
        if self.confirm_of is None:
            per_trial = getattr(self, "epochs", None)  # None in a tuner.pkl from before it
            budget = [trained, self.total * per_trial] if per_trial else None
            running: dict[str, Any] = {"finished": done, "total": self.total, "epochs": budget}
        else:
            running = {
                "finished": self.confirm_of, "total": self.confirm_of,
                "stage": f"confirming the winner over seeds: {done} of {self.total} runs done",
            }  # fmt: skip
        running.update(updated=datetime.now().isoformat(), reload_s=self.every)
        start = time.perf_counter()
        try:
            child = subprocess.run(
                [sys.executable, "-m", "analysis.report.live_copy", str(self.experiment_dir),
                 json.dumps(running)],
                env=_child_env(), capture_output=True, text=True,
                start_new_session=True,  # Ctrl-C is the driver's to handle, not the copy's
            )  # fmt: skip
            error = ""
            if child.returncode:
                said = child.stderr.strip().splitlines()
                # a copy killed by a signal (the memory monitor, say) says nothing on stderr
                error = said[-1] if said else f"exit code {child.returncode}"
        except OSError as e:
            error = str(e)
        if error:
            if not self._warned:  # a copy that fails must not stop the search; the final one
                self._warned = True  # is written (and its errors shown) when the search ends
                print(f"cnn-tuner: the live report could not be written: {error}",
                      file=sys.stderr)  # fmt: skip
            return
        took = time.perf_counter() - start
        self.seconds += took
        self.writes += 1
        self._gap = SHARE_LIMIT * took


def starting_page(name: str, reload_s: float) -> str:
    """report.html before the first copy: the search's name, when it started, and a reload
    every `reload_s` seconds (at least 5, as the copies' own) until the report replaces it."""
    started = datetime.now().strftime("%H:%M")
    reload = max(5, round(reload_s))
    title = html.escape(name)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{reload}">'
        f"<title>{title}: search report</title></head>\n"
        '<body style="font-family: system-ui, sans-serif; margin: 2em">\n'
        f"<h1>{title}</h1>\n"
        f'<p role="status">running: the search started at {started}. The report appears here '
        f"with its first results; this page reloads itself every {reload} s.</p>\n"
        "</body></html>\n"
    )


def _child_env() -> dict[str, str]:
    """This environment, with the directory `analysis` is imported from first on the path (a
    checkout run without being installed)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("analysis")
    env = dict(os.environ)
    if spec is not None and spec.origin is not None:
        root = str(Path(spec.origin).parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
