"""Searchers that learn, replayed on recorded configurations (for bench/replay.py).

A replay holds a few hundred recorded configurations, not the whole space, so a searcher that
proposes a point is given the recorded configuration nearest to it that this search has not
used yet: the 1-nearest-neighbour surrogate of tabular benchmarks (HPOBench, Syne Tune's
blackbox repository), without replacement so that no configuration is trained twice. The
distance is taken over the space's own parameters: a numeric one on its distribution's scale
(log where the space samples it on a log scale) divided by its range, a categorical one 0 or
1, a parameter one side lacks (conditional) 1.

`OptunaProposer` runs a real Optuna study with the sampler it is given, the space's own
define-by-run function asking the parameters (as in a search), and tells it what the product's
TruthfulOptunaSearch tells it: every epoch's val_loss as an intermediate value, COMPLETE at the
epoch budget, PRUNED when the scheduler stopped the trial, FAIL when it diverged. The baseline
(trial 0 of the recording, the space's start point) is enqueued first, as a search does.

Not replayed: the size budget's rejections (every recorded configuration fits the budget it
was recorded under; a proposal past it is snapped to the nearest one that fits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd


def recorded_params(exp: Path, names: list[str]) -> dict[int, dict[str, Any]]:
    """{trial index: {parameter: value}} from trials.csv's config/ columns (absent: not set)."""
    frame = pd.read_csv(exp / "trials.csv")
    out: dict[int, dict[str, Any]] = {}
    for _, row in frame.iterrows():
        params = {}
        for name in names:
            value = row.get(f"config/{name}")
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                params[name] = value
        out[int(row["trial_index"])] = params
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


class Nearest:
    """The nearest recorded configuration to a proposed point (see the module docstring)."""

    def __init__(self, dists: dict[str, Any], params: dict[int, dict[str, Any]]) -> None:
        self.dists, self.params = dists, params

    def _scaled(self, name: str, value: Any) -> float | None:
        dist = self.dists[name]
        if not hasattr(dist, "low"):
            return None  # categorical
        low, high, v = float(dist.low), float(dist.high), float(value)
        if getattr(dist, "log", False):
            low, high, v = math.log(low), math.log(high), math.log(max(v, 1e-300))
        return (v - low) / (high - low) if high > low else 0.0

    def distance(self, point: dict[str, Any], index: int) -> float:
        other = self.params[index]
        total = 0.0
        for name in self.dists:
            if (name in point) != (name in other):
                total += 1.0
            elif name in point:
                total += self._one(name, point[name], other[name])
        return total

    def pick(self, point: dict[str, Any], candidates: set[int]) -> int:
        return min(sorted(candidates), key=lambda i: self.distance(point, i))

    def flat_distance(self, point: dict[str, Any], index: int) -> float:
        """For a flat space's point (every parameter set, conditional ones too): the mean
        distance over the parameters the recorded configuration has."""
        other = self.params[index]
        names = [n for n in other if n in self.dists and n in point]
        if not names:
            return math.inf
        return sum(self._one(n, point[n], other[n]) for n in names) / len(names)

    def _one(self, name: str, a: Any, b: Any) -> float:
        x, y = self._scaled(name, a), self._scaled(name, b)
        if x is None or y is None:
            return 0.0 if _same(a, b) else 1.0
        return abs(x - y)

    def pick_flat(self, point: dict[str, Any], candidates: set[int]) -> int:
        return min(sorted(candidates), key=lambda i: self.flat_distance(point, i))


class OptunaProposer:
    """One simulated search's Optuna study, proposing recorded configurations."""

    def __init__(self, curves: dict[int, Any], pool: list[int], nearest: Nearest,
                 define: Callable[[Any], Any], sampler: Any, max_t: int,
                 baseline: int | list[int] | None) -> None:  # fmt: skip
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.curves, self.nearest, self.define, self.max_t = curves, nearest, define, max_t
        self.unused = set(pool)
        # A fixed name: HyperbandPruner puts a trial in a bracket by a hash of the study's name
        # and the trial's number, and an unnamed study gets a random name: plain Optuna's
        # replays came out different on every run.
        self.study = optuna.create_study(study_name="replay", direction="minimize",
                                         sampler=sampler)  # fmt: skip
        # the space's start points (the baseline, trial 0 of the recording, or the points of
        # bench/replay.py --start-points), proposed first and in order, as a search has them
        known = baseline if isinstance(baseline, list) else [baseline]
        self.known = [i for i in known if i in self.unused]
        self.asked: dict[int, Any] = {}
        self.reported: dict[int, set[int]] = {}  # epochs a pruner was already told

    def next(self) -> Any:
        if not self.unused:
            return None
        if self.known:  # the space's start points, first, as a search has them
            index = self.known.pop(0)
            self.unused.discard(index)
            self.asked[index] = None
            return self.curves[index]
        trial = self.study.ask()
        self.define(trial)
        index = self.nearest.pick(trial.params, self.unused)
        self.unused.discard(index)
        self.asked[index] = trial
        return self.curves[index]

    def done(self, curve: Any, epochs: int) -> None:
        from optuna.trial import TrialState

        trial = self.asked.pop(curve.index)
        losses = curve.loss[:epochs]
        if trial is None:  # a start point: told with its recorded parameters
            self._tell_fixed(curve, losses, epochs)
            return
        if not all(math.isfinite(v) for v in losses) or len(curve.loss) < self.max_t == epochs:
            self.study.tell(trial, state=TrialState.FAIL)
            return
        told = self.reported.pop(curve.index, set())
        for step, value in enumerate(losses, 1):
            if step not in told:
                trial.report(value, step)
        if epochs >= self.max_t:
            self.study.tell(trial, losses[-1])
        else:
            self.study.tell(trial, state=TrialState.PRUNED)

    def _tell_fixed(self, curve: Any, losses: list[float], epochs: int) -> None:
        """A start point, added as a finished trial with its recorded parameters (what a
        search's enqueued start point becomes)."""
        import optuna
        from optuna.trial import TrialState

        params = {}
        dists = {}
        for name, value in self.nearest.params[curve.index].items():
            dist = self.nearest.dists[name]
            if hasattr(dist, "choices"):
                match = [c for c in dist.choices if _same(c, value)]
                if not match:
                    continue
                value = match[0]
            elif isinstance(dist, optuna.distributions.IntDistribution):
                value = int(round(float(value)))
            else:
                value = float(value)
            if hasattr(dist, "low") and not dist.low <= value <= dist.high:
                continue  # a start point of a later space, outside the recording's range
            params[name], dists[name] = value, dist
        finite = all(math.isfinite(v) for v in losses)
        state = TrialState.PRUNED
        if not finite:
            state = TrialState.FAIL
        elif epochs >= self.max_t:
            state = TrialState.COMPLETE
        self.study.add_trial(optuna.trial.create_trial(
            params=params, distributions=dists, state=state,
            value=losses[-1] if state == TrialState.COMPLETE else None,
            intermediate_values=dict(enumerate(losses, 1)) if finite else {},
        ))  # fmt: skip
