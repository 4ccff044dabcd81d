"""How much of the confirm stage fits in the time --time-budget leaves it (no Ray): the
stage's expected seconds, and the largest stage that fits. Used twice: by the search's clock
guard (tuner/driver/guards.py), to stop the search when what is left is what the stage will
take, and when the stage is planned (tuner/driver/confirm.py), to cut it to what is left.

What is kept first, and why: three seeds (with two, an interval is 3x as wide, t = 12.7
against 4.30, and the report gives no verdict below three seeds a side); then at least two of
the search's configurations (the winner is named against its runner-up); then the lab's
baseline, which can cost more than all the rest (on 11,000 CIFAR-10 images on 2 cores, 109 s
an epoch against 1.4-3.6 s for the top three: bench run in BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# What the estimate adds for scoring the runs on the test split and writing the report.
CONFIRM_MARGIN = 1.1
# A run's start (its Ray actor, the dataset, the network) and its share of the cores beside
# another run: a digits resnet_cnn run whose 10 epochs took 18.4 s of training (19.5 s wall)
# in the search took 23-24 s as a confirm run beside another one.
RUN_START_S = 4.0


@dataclass(frozen=True)
class ConfirmShape:
    """What the confirm stage will train after the search: its --confirm-top configurations
    and the lab's baseline (where the space has one), each --confirm-seeds times for the
    search's --epochs."""

    top: int
    seeds: int
    epochs: int
    baseline: bool


class StageSize(NamedTuple):
    candidates: int  # the search's configurations, from its best down
    baseline: bool  # with the lab's baseline
    seeds: int
    seconds: float  # expected wall seconds


def stage_seconds(epoch_seconds: list[float], seeds: int, epochs: int, slots: int) -> float:
    """The stage's expected wall seconds: `seeds` runs of each candidate, each its `epochs` at
    its seconds an epoch plus RUN_START_S, placed slowest first on `slots` runs at once (as
    the stage starts them: tuner/driver/confirm.py Plan.runs), and CONFIRM_MARGIN."""
    runs = sorted((s * epochs + RUN_START_S for s in epoch_seconds for _ in range(seeds)),
                  reverse=True)  # fmt: skip
    ends = [0.0] * max(1, slots)
    for run in runs:  # each run goes to the slot that frees first
        ends[ends.index(min(ends))] += run
    return max(ends) * CONFIRM_MARGIN


def largest_stage(
    searched: list[float], baseline: float | None, seeds: int, epochs: int, slots: int,
    seconds_left: float,
) -> StageSize | None:  # fmt: skip
    """The largest stage expected to end within `seconds_left`. `searched`: the seconds an
    epoch of the search's candidates, best first; `baseline`: the baseline's, or None. Tried in
    this order, the first that fits: all seeds with the baseline and k = all..2 candidates,
    then without the baseline, then one candidate with and without it; then the same with 2
    seeds. None when not even the best candidate with 2 seeds fits."""
    sizes = []
    for n_seeds in dict.fromkeys((seeds, 2)):
        with_runner_up = range(len(searched), 1, -1)
        sizes += [(k, True, n_seeds) for k in with_runner_up if baseline is not None]
        sizes += [(k, False, n_seeds) for k in with_runner_up]
        sizes += [(1, True, n_seeds)] if baseline is not None and searched else []
        sizes += [(1, False, n_seeds)] if searched else []
        if not searched and baseline is not None:
            sizes += [(0, True, n_seeds)]
    for k, with_baseline, n_seeds in sizes:
        times = searched[:k] + ([baseline] if with_baseline and baseline is not None else [])
        seconds = stage_seconds(times, n_seeds, epochs, slots)
        if seconds <= seconds_left:
            return StageSize(k, with_baseline, n_seeds, seconds)
    return None
