"""Objectives of a multi-objective search, its Pareto front and the front's knee point.

`--objectives val_acc:max,params:min` makes Optuna's study multi-objective (Optuna's TPE
samples Pareto-aware in that case); ASHA still stops trials on validation loss. Only trials that
ran their whole epoch budget compete: a trial stopped early has truncated scores.

Names a user may give, what each one reads and its natural direction:

    val_acc     best_val_acc  max   validation accuracy of the kept (lowest-val-loss) weights
    val_loss    best_val_loss min
    params      params        min   trainable parameters
    macs        macs          min   multiply-accumulates per image (forward)
    latency     latency_ms    min   forward time of one image on the trial's device
    train_time  time_total_s  min   the trial's wall-clock seconds (Ray's time_total_s)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tuner.errors import ConfigError
from tuner.experiment import pareto_mask

# name -> (reported metric, trials.csv column, natural mode)
KNOWN: dict[str, tuple[str, str, str]] = {
    "val_acc": ("best_val_acc", "best_val_acc", "max"),
    "val_loss": ("best_val_loss", "best_val_loss", "min"),
    "params": ("params", "params", "min"),
    "macs": ("macs", "macs", "min"),
    "latency": ("latency_ms", "latency_ms", "min"),
    "train_time": ("time_total_s", "wall_seconds", "min"),
}

MAX_FRONT_EVALUATIONS = 25  # Pareto points scored on the test split (nearest the knee first)


# The single objective: the validation accuracy of the kept (lowest-validation-loss) weights,
# which the searcher maximises; ASHA compares trials at a rung by validation loss.
SEARCHER_METRIC, SEARCHER_MODE = "best_val_acc", "max"
SCHEDULER_METRIC, SCHEDULER_MODE = "val_loss", "min"

# The reported metrics Tune keeps running summaries of in its saved state (the searcher's, the
# scheduler's and every --objectives one): tuner.driver.fence.internals.lean_tune_state.
TUNE_SUMMARY_METRICS = frozenset(
    {SEARCHER_METRIC, SCHEDULER_METRIC, "val_acc", "time_total_s"}
    | {metric for metric, _, _ in KNOWN.values()}
)


@dataclass(frozen=True)
class Objective:
    name: str  # as the user wrote it: val_acc, params, ...
    metric: str  # the reported metric Optuna is told
    column: str  # the trials.csv column
    mode: str  # max | min

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "metric": self.metric, "column": self.column, "mode": self.mode}


def parse_objectives(text: str) -> list[Objective]:
    """ "val_acc:max,params:min" (a mode may be left out: each name has its natural one)."""
    objectives = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, _, mode = part.partition(":")
        if name not in KNOWN:
            raise ConfigError(
                f"--objectives: unknown objective {name!r}; choose from {', '.join(KNOWN)}"
            )
        metric, column, natural = KNOWN[name]
        mode = mode or natural
        if mode not in ("min", "max"):
            raise ConfigError(f"--objectives: {part!r} must end in :min or :max")
        objectives.append(Objective(name, metric, column, mode))
    names = [o.name for o in objectives]
    if len(objectives) < 2 or len(set(names)) != len(names):
        raise ConfigError(
            "--objectives needs two or more different objectives, e.g. val_acc:max,params:min"
        )
    return objectives


def _costs(frame: pd.DataFrame, objectives: list[Objective]) -> np.ndarray:
    """(N, K) with every objective turned into one to minimise."""
    cols = [frame[o.column].astype(float).to_numpy() for o in objectives]
    signs = np.array([-1.0 if o.mode == "max" else 1.0 for o in objectives])
    return np.stack(cols, axis=1) * signs


def pareto_front(trials: pd.DataFrame, objectives: list[Objective]) -> pd.DataFrame:
    """The completed trials no other completed trial dominates (at least as good in every
    objective and better in one), sorted by the first objective, best first."""
    done = trials[trials["status"] == "completed"]
    if done.empty:
        return done
    front = done[pareto_mask(_costs(done, objectives))]
    first = objectives[0]
    return front.sort_values(first.column, ascending=first.mode == "min", kind="stable")


def knee_point(front: pd.DataFrame, objectives: list[Objective]) -> int | None:
    """The front's knee: the trial closest to the ideal point once each objective is scaled to
    [0, 1] over the front (0 = the front's best value). Returns its trial_index."""
    if front.empty:
        return None
    costs = _costs(front, objectives)
    low, high = costs.min(axis=0), costs.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    distance = np.sqrt((((costs - low) / span) ** 2).sum(axis=1))
    return int(front.iloc[int(np.argmin(distance))]["trial_index"])


def nearest_first(front: pd.DataFrame, objectives: list[Objective], point: int) -> list[int]:
    """The front's trial indices, nearest to `point`'s (a trial on the front) first, by distance
    once each objective is scaled to [0, 1] over the front as knee_point scales them; ties in
    front order. `point` itself comes first."""
    costs = _costs(front, objectives)
    low, high = costs.min(axis=0), costs.max(axis=0)
    scaled = (costs - low) / np.where(high > low, high - low, 1.0)
    at = list(front["trial_index"]).index(point)
    distance = np.sqrt(((scaled - scaled[at]) ** 2).sum(axis=1))
    distance[at] = -1.0  # before any point of the same values
    return [int(front.iloc[i]["trial_index"]) for i in np.argsort(distance, kind="stable")]


def values_of(row: pd.Series | dict[str, Any], objectives: list[Objective]) -> dict[str, Any]:
    out = {}
    for o in objectives:
        value = row.get(o.column) if hasattr(row, "get") else row[o.column]
        value = float(value) if value is not None else math.nan
        out[o.name] = int(value) if o.name in ("params", "macs") and math.isfinite(value) else value
    return out
