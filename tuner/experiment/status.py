"""`tuner status DIR`: where a running or finished search stands, read from its files alone.

No Ray and no driver to ask: the trials' result files (each epoch as it ends, and how the
trial ended the moment it did), Tune's saved experiment state (for searches older than
trial_end.json; it trails by Tune's save interval) and provenance.json (the options, when the
run started, whether it finished) say it all. The same tables the search
writes at its end come from the same reader (tables.collect_tables), so the counts agree with
trials.csv once it is there.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from tuner.errors import ConfigError
from tuner.experiment.files import (
    CONFIRM_DIR,
    PROVENANCE_JSON,
    RESULT_JSON,
    TRIALS_CSV,
    has_trial_dirs,
    ray_trial_states,
    read_json,
    read_table,
    trial_dirs,
    trial_end,
    tune_state_files,
)
from tuner.experiment.rules import finite, pick_best
from tuner.experiment.tables import CONFIG_PREFIX, collect_tables

# Files untouched this long, in a search that has not finished, mean its driver is gone: Tune
# saves its state every ~10 s and trials report every epoch (an epoch over 10 minutes reads as
# interrupted until it reports).
STALE_S = 600.0
FINISHED = ("completed", "stopped", "diverged", "error")


def _parse_time(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def _newest_mtime(exp: Path) -> float | None:
    stage = exp / CONFIRM_DIR
    files = [*tune_state_files(exp), *(d / RESULT_JSON for d in trial_dirs(exp)),
             *tune_state_files(stage), *stage.glob(f"*/{RESULT_JSON}")]  # fmt: skip
    times = [f.stat().st_mtime for f in files if f.is_file()]
    return max(times) if times else None


def _confirm_runs(exp: Path) -> dict[str, int] | None:
    """The confirm stage's runs, {"done", "total"}: from its run directories (each run's end is
    on disk the moment it comes) or its Tune state (every run, once Tune has saved it), whichever
    knows more; None before the stage."""
    stage = exp / CONFIRM_DIR
    states = ray_trial_states(stage)
    runs = trial_dirs(stage)
    if not states and not runs:
        return None
    ended = sum(1 for d in runs if trial_end(d) is not None)
    done = sum(1 for s in states.values() if s.get("status") in ("TERMINATED", "ERROR"))
    return {"done": max(ended, done), "total": max(len(runs), len(states))}


def read_status(experiment_dir: str | Path, now: float | None = None) -> dict[str, Any]:
    """The search's state as plain data (what `tuner status --json` prints). ConfigError (one
    line) for a directory that holds no experiment."""
    exp = Path(experiment_dir).expanduser()
    provenance = read_json(exp / PROVENANCE_JSON) if exp.is_dir() else None
    if not exp.is_dir() or (provenance is None and not has_trial_dirs(exp)):
        raise ConfigError(f"{exp} holds no experiment (no {PROVENANCE_JSON} or trial directories)")
    now = time.time() if now is None else now
    provenance = provenance or {}
    config = provenance.get("config") or {}
    samples = int(config.get("samples") or 0)
    budget = int(config.get("epochs") or 1)

    if (exp / TRIALS_CSV).is_file() and provenance.get("finished"):
        trials = read_table(exp / TRIALS_CSV)
    else:
        trials, _ = collect_tables(exp, budget)
    counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
    finished = sum(int(counts.get(s, 0)) for s in FINISHED)
    running = int(counts.get("running", 0))
    pending = max(0, samples - finished - running)
    epochs = int(trials["epochs_run"].sum()) if not trials.empty else 0

    if provenance.get("finished"):
        state = "finished"
    else:
        newest = _newest_mtime(exp)
        state = "running" if newest is not None and now - newest < STALE_S else "interrupted"
        if newest is None:
            state = "starting" if provenance.get("started") else "interrupted"

    best, row = None, None
    if not trials.empty:  # the best of the finished trials, else of those running
        done = trials[trials["status"].isin(FINISHED)]
        row = pick_best(done if not done.empty else trials)
    if row is not None:
        best = {
            "trial_index": int(row["trial_index"]),
            "val_acc": finite(row.get("best_val_acc")),
            "status": str(row["status"]),
            "config": {
                c[len(CONFIG_PREFIX) :]: _plain(row[c])
                for c in trials.columns
                if c.startswith(CONFIG_PREFIX) and not pd.isna(row[c])
            },
        }

    # This run's clock: since the search started, or since its newest resume.
    starts = [provenance.get("started"), *(provenance.get("resumed") or [])]
    started = max((t for t in map(_parse_time, starts) if t is not None), default=None)
    elapsed = (now - started) if started is not None and state != "finished" else None
    time_budget = finite(config.get("time_budget"))
    left: float | None = None
    if state == "finished":
        left = 0.0
    elif time_budget is not None and elapsed is not None:
        left = max(0.0, time_budget - elapsed)
    elif elapsed is not None and finished and pending + running:
        left = elapsed / finished * (pending + running)  # at the pace so far
    return {
        "experiment": str(exp),
        "state": state,
        "confirm": _confirm_runs(exp),
        "samples": samples,
        "finished": finished,
        "running": running,
        "pending": pending,
        "by_status": {str(k): int(v) for k, v in counts.items()},
        "epochs_trained": epochs,
        "epoch_budget": budget,
        "best": best,
        "elapsed_s": elapsed,
        "time_budget_s": time_budget,
        "time_left_s": left,
        "time_left_is": "budget" if time_budget is not None and state != "finished" else "pace",
        "at": datetime.fromtimestamp(now, timezone.utc).isoformat(),
    }


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    # a conditional parameter's column is float in a table (NaN where absent): 32.0 -> 32
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_status(status: dict[str, Any]) -> str:
    """The status as a few lines for a terminal."""
    lines = [f"{status['experiment']}: {status['state']}"]
    by = ", ".join(f"{n} {s}" for s, n in sorted(status["by_status"].items()) if s != "running")
    lines.append(
        f"trials: {status['finished']} of {status['samples']} finished"
        + (f" ({by})" if by else "")
        + f", {status['running']} running, {status['pending']} pending; "
        f"{status['epochs_trained']} epochs trained (budget {status['epoch_budget']} per trial)"
    )
    best = status["best"]
    if best is not None and best["val_acc"] is not None:
        values = ", ".join(f"{k}={v}" for k, v in best["config"].items())
        lines.append(f"best so far: trial {best['trial_index']}, val acc {best['val_acc']:.4f}"
                     f" ({best['status']}): {values}")  # fmt: skip
    stage = status.get("confirm")
    if stage is not None:
        lines.append(f"confirm stage: {stage['done']} of {stage['total']} runs done")
    left = status["time_left_s"]
    if status["state"] in ("running", "starting"):
        clock = f"elapsed {_clock(status['elapsed_s'] or 0)}"
        if left is not None:
            how = "of --time-budget" if status["time_left_is"] == "budget" else "at this pace"
            clock += f", about {_clock(left)} left ({how})"
        lines.append(clock)
    elif status["state"] == "interrupted":
        lines.append(f"not running: `tuner resume {status['experiment']}` continues it")
    return "\n".join(lines)
