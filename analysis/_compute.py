"""Compute accounting: epochs and training seconds used, and what early stopping saved.

"Had every trial run to the end" counts a trial the scheduler stopped at epoch e as if it had
run its whole budget, at the mean epoch time it showed; trials that diverged or crashed end
themselves, so they count as they ran.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd


class ComputeSummary(NamedTuple):
    trials: int
    epochs_run: int
    epochs_full: int  # had every stopped trial run its budget
    seconds_run: float  # training seconds, summed over trials
    seconds_full: float  # estimate, at each stopped trial's own mean epoch time
    counts: dict[str, int]  # status -> trials

    @property
    def epochs_saved(self) -> int:
        return self.epochs_full - self.epochs_run

    @property
    def seconds_saved(self) -> float:
        return self.seconds_full - self.seconds_run


def compute_summary(trials: pd.DataFrame, epoch_budget: int) -> ComputeSummary:
    if trials.empty:
        return ComputeSummary(0, 0, 0, 0.0, 0.0, {})
    run = trials["epochs_run"].fillna(0).astype(int)
    seconds = trials["train_seconds"].fillna(0.0).astype(float)
    stopped = trials["status"] == "stopped"
    full = run.where(~stopped, run.clip(lower=epoch_budget))
    per_epoch = (seconds / run.where(run > 0)).fillna(0.0)
    seconds_full = seconds + (full - run) * per_epoch
    counts = {str(k): int(v) for k, v in sorted(trials["status"].value_counts().items())}
    return ComputeSummary(
        trials=len(trials),
        epochs_run=int(run.sum()),
        epochs_full=int(full.sum()),
        seconds_run=float(seconds.sum()),
        seconds_full=float(seconds_full.sum()),
        counts=counts,
    )
