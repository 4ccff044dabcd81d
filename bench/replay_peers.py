"""The stronger peers, replayed on the same recorded curves as bench/replay.py: DEHB and SMAC3's
multi-fidelity facade (Hyperband with a random-forest model), each driven through its own
ask/tell interface the way its documentation runs a target function: a job is a configuration
at a fidelity (here epochs, 1 to the recording's budget), trained from scratch, its val_loss at
that fidelity told back with its cost in epochs. And Syne Tune's BOHB (asynchronous successive
halving with a KDE searcher), whose scheduler decides on every epoch's result as in its own
simulator.

Each job's configuration is mapped to a recorded one as bench/replay_searchers.py maps Optuna's
proposals (the nearest the search has not used; a configuration a peer evaluates again at a
higher fidelity keeps its recorded curve). The peer's space is the search space's own
distributions as a flat ConfigSpace (conditional parameters included; the distance reads only
those the recorded configuration has). Jobs run `--concurrency` at a time on the same
simulated clock, until the sweep's epochs are trained (the peers have no trial count that
means what ours does, so they run at an equal budget only).

Needs the bench extra, in a virtual environment of its own (SMAC3 pins an older numpy):
    python -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install torch torchvision \\
        && /tmp/benchvenv/bin/pip install -e ".[bench]"
    /tmp/benchvenv/bin/python bench/replay_peers.py bench/results/curves/digits-resnet_cnn-200 \\
        --samples 20 --seeds 100 --json bench/results/replay-peers-digits-resnet_cnn-200.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay import Curve, Fifo, Learning, Run, load_curves, simulate  # noqa: E402
from replay import summarise as summarise_runs  # noqa: E402

WORST_LOSS = 10.0  # what a diverged job reports: worse than any finite val_loss recorded


def configspace(dists: dict[str, Any], seed: int) -> Any:
    """The space's Optuna distributions as a flat ConfigSpace (choices as their str)."""
    import optuna.distributions as od
    from ConfigSpace import (
        CategoricalHyperparameter,
        ConfigurationSpace,
        UniformFloatHyperparameter,
        UniformIntegerHyperparameter,
    )

    cs = ConfigurationSpace(seed=seed)
    for name, dist in dists.items():
        if isinstance(dist, od.CategoricalDistribution):
            cs.add(CategoricalHyperparameter(name, [str(c) for c in dist.choices]))
        elif isinstance(dist, od.IntDistribution):
            cs.add(UniformIntegerHyperparameter(name, dist.low, dist.high, log=dist.log))
        else:
            cs.add(UniformFloatHyperparameter(name, dist.low, dist.high, log=dist.log))
    return cs


def point_of(config: Any, dists: dict[str, Any]) -> dict[str, Any]:
    """A ConfigSpace configuration as the space's values (a choice's str back to the choice)."""
    point = {}
    for name, value in dict(config).items():
        choices = getattr(dists[name], "choices", None)
        point[name] = next((c for c in choices if str(c) == value), value) if choices else value
    return point


class PeerProposer:
    """One simulated search of a peer: `ask()` -> (handle, configuration, fidelity),
    `tell(handle, loss, epochs)`. Each job is a recorded curve cut at its fidelity."""

    def __init__(self, learning: Learning, ask: Callable[[], tuple[Any, Any, float]],
                 tell: Callable[[Any, float, int], None]) -> None:  # fmt: skip
        self.curves, self.nearest = learning.curves, learning.nearest
        self.dists = learning.nearest.dists
        self.ask, self.tell = ask, tell
        self.unused = set(self.curves)
        self.by_key: dict[tuple, int] = {}
        self.jobs: dict[int, Any] = {}

    def _recorded(self, config: Any) -> int:
        key = tuple(sorted((k, str(v)) for k, v in dict(config).items()))
        if key not in self.by_key:
            pool = self.unused or set(self.curves)  # every one used: the nearest of all
            index = self.nearest.pick_flat(point_of(config, self.dists), pool)
            self.unused.discard(index)
            self.by_key[key] = index
        return self.by_key[key]

    def next(self) -> Curve | None:
        handle, config, fidelity = self.ask()
        curve = self.curves[self._recorded(config)]
        cut = max(1, min(int(round(fidelity)), len(curve.acc)))
        job = Curve(curve.index, curve.acc[:cut], curve.loss[:cut], curve.seconds[:cut])
        self.jobs[id(job)] = handle
        return job

    def done(self, job: Curve, epochs: int) -> None:
        loss = job.loss[epochs - 1]
        self.tell(self.jobs.pop(id(job)), loss if math.isfinite(loss) else WORST_LOSS, epochs)


def dehb(learning: Learning, max_t: int, seed: int, concurrency: int, tmp: Path) -> PeerProposer:
    """DEHB as its README runs ask/tell: min/max fidelity, eta 3. n_workers=1: above 1 DEHB
    starts a Dask cluster of its own for run(), which ask/tell never uses; the replay keeps
    `concurrency` jobs asked at once itself."""
    from dehb import DEHB

    optimizer = DEHB(cs=configspace(learning.nearest.dists, seed), min_fidelity=1,
                     max_fidelity=max_t, eta=3, n_workers=1, seed=seed,
                     output_path=str(tmp / f"dehb-{seed}"), save_freq="end")  # fmt: skip

    def ask() -> tuple[Any, Any, float]:
        job = optimizer.ask()
        return job, job["config"], job["fidelity"]

    def tell(job: Any, loss: float, epochs: int) -> None:
        optimizer.tell(job, {"fitness": loss, "cost": float(epochs)})

    return PeerProposer(learning, ask, tell)


def smac_hb(learning: Learning, max_t: int, seed: int, concurrency: int,
            tmp: Path) -> PeerProposer:  # fmt: skip
    """SMAC3's MultiFidelityFacade (random forest + Hyperband, eta 3), as its multi-fidelity
    example sets it up, through ask/tell."""
    from smac import MultiFidelityFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    scenario = Scenario(configspace(learning.nearest.dists, seed), deterministic=True,
                        n_trials=100_000, min_budget=1, max_budget=max_t, seed=seed,
                        n_workers=1, output_directory=tmp / f"smac-{seed}")  # fmt: skip
    facade = MultiFidelityFacade(
        scenario, lambda config, seed=0, budget=1.0: 0.0,
        intensifier=MultiFidelityFacade.get_intensifier(scenario, eta=3),
        overwrite=True, logging_level=40,
    )  # fmt: skip

    def ask() -> tuple[Any, Any, float]:
        info = facade.ask()
        return info, info.config, float(info.budget or max_t)

    def tell(info: Any, loss: float, epochs: int) -> None:
        facade.tell(info, TrialValue(cost=loss, time=float(epochs)))

    return PeerProposer(learning, ask, tell)


class SyneTunePeer:
    """A Syne Tune scheduler (stopping-type ASHA with its searcher) on the recorded curves:
    both the proposer (its `suggest()`, mapped to a recorded configuration) and the scheduler
    (its decision on every epoch's result) of one simulated search."""

    def __init__(self, learning: Learning, scheduler: Any) -> None:
        self.curves, self.nearest = learning.curves, learning.nearest
        self.dists = learning.nearest.dists
        self.scheduler = scheduler
        self.unused = set(self.curves)
        self.trials: dict[int, Any] = {}  # id(curve object) -> Syne Tune Trial
        self.count = 0

    def next(self) -> Curve | None:
        from datetime import datetime

        from syne_tune.backend.trial_status import Trial

        suggestion = self.scheduler.suggest()
        if suggestion is None or not self.unused:
            return None
        point = point_of(suggestion.config, self.dists)
        index = self.nearest.pick_flat(point, self.unused)
        self.unused.discard(index)
        recorded = self.curves[index]
        curve = Curve(recorded.index, recorded.acc, recorded.loss, recorded.seconds)
        self.trials[id(curve)] = Trial(trial_id=self.count, config=suggestion.config,
                                       creation_time=datetime.now())  # fmt: skip
        self.count += 1
        return curve

    def done(self, curve: Curve, epochs: int) -> None:
        pass

    @staticmethod
    def _result(result: dict) -> dict:
        loss = result["val_loss"]
        return {"val_loss": loss if math.isfinite(loss) else WORST_LOSS,
                "training_iteration": result["training_iteration"]}  # fmt: skip

    def on_trial_add(self, runner: Any, trial: Any) -> None:
        self.scheduler.on_trial_add(self.trials[id(trial.curve)])

    def on_trial_result(self, runner: Any, trial: Any, result: dict) -> str:
        decision = self.scheduler.on_trial_result(self.trials[id(trial.curve)],
                                                  self._result(result))  # fmt: skip
        return "STOP" if decision == "STOP" else "CONTINUE"

    def on_trial_complete(self, runner: Any, trial: Any, result: dict) -> None:
        self.scheduler.on_trial_complete(self.trials[id(trial.curve)], self._result(result))

    def on_trial_remove(self, runner: Any, trial: Any) -> None:
        self.scheduler.on_trial_remove(self.trials[id(trial.curve)])


def syne_config_space(dists: dict[str, Any]) -> dict[str, Any]:
    import optuna.distributions as od
    from syne_tune import config_space as sc

    space: dict[str, Any] = {}
    for name, dist in dists.items():
        if isinstance(dist, od.CategoricalDistribution):
            space[name] = sc.choice([str(c) for c in dist.choices])
        elif isinstance(dist, od.IntDistribution):
            space[name] = (sc.lograndint if dist.log else sc.randint)(dist.low, dist.high)
        else:
            space[name] = (sc.loguniform if dist.log else sc.uniform)(dist.low, dist.high)
    return space


def syne_bohb(learning: Learning, max_t: int, seed: int, concurrency: int,
              tmp: Path) -> SyneTunePeer:  # fmt: skip
    """Syne Tune's BOHB baseline (asynchronous successive halving, KDE searcher) with its
    defaults: grace period 1, reduction factor 3, one bracket."""
    import numpy as np
    from syne_tune.optimizer.baselines import BOHB

    np.random.seed(seed)  # its bracket choice draws from numpy's global generator
    scheduler = BOHB(syne_config_space(learning.nearest.dists), metric="val_loss",
                     time_attr="training_iteration", max_t=max_t, do_minimize=True,
                     random_seed=seed)  # fmt: skip
    return SyneTunePeer(learning, scheduler)


PEERS: dict[str, Callable[..., Any]] = {
    "DEHB (eta 3)": dehb,
    "SMAC3 multi-fidelity (RF + Hyperband, eta 3)": smac_hb,
    "Syne Tune BOHB (async SH + KDE)": syne_bohb,
}


def replay_peers(args: argparse.Namespace) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    curves, max_t = load_curves(args.experiment, args.epochs)
    by_index = {c.index: c for c in curves}
    others = [c.index for c in curves if c.index != 0]
    samples = min(args.samples, len(curves))
    learning = Learning(args.experiment, curves)
    if args.start_points:  # the recording's trial 0, an older start point of ours, left out
        learning.curves.pop(0, None)
        by_index.pop(0, None)
    names = args.peers or list(PEERS)
    runs: dict[str, list[Run]] = {"sweep (fifo)": [], **{n: [] for n in names}}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            rng = random.Random(seed)  # the same sweep as bench/replay.py's seed
            baseline = [by_index[0]] if 0 in by_index else []
            drawn = rng.sample(others, len(others))
            picked = [*baseline, *(by_index[i] for i in drawn)]
            sweep = simulate(picked, list(range(samples)), Fifo(), args.concurrency,
                             args.overhead)  # fmt: skip
            runs["sweep (fifo)"].append(sweep)
            for name in names:
                proposer = PEERS[name](learning, max_t, seed, args.concurrency, Path(tmp))
                decides = proposer if isinstance(proposer, SyneTunePeer) else Fifo()
                runs[name].append(simulate(picked, proposer, decides, args.concurrency,
                                           args.overhead, budget=sweep.epochs))  # fmt: skip
            if (seed + 1) % max(1, args.seeds // 10) == 0:
                print(f"  seed {seed + 1}/{args.seeds} ({time.perf_counter() - start:.0f} s)",
                      file=sys.stderr, flush=True)  # fmt: skip
    return {
        "equal_epochs": True, "peers": True, "start_points": args.start_points,
        "experiment": str(args.experiment), "configurations": len(curves), "epochs": max_t,
        "samples": samples, "concurrency": args.concurrency, "overhead_s": args.overhead,
        "seeds": args.seeds, "replay_seconds": round(time.perf_counter() - start, 1),
        "methods": summarise_runs(runs),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from replay import table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", type=Path, help="a recording (bench/results/curves/...)")
    parser.add_argument("--samples", type=int, default=27,
                        help="the sweep's trials, whose epochs are each peer's budget")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=100, help="simulated searches a peer")
    parser.add_argument("--concurrency", type=int, default=2, help="jobs at once (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help="max fidelity (default: all)")
    parser.add_argument("--overhead", type=float, default=0.5, help="seconds a job start adds")
    parser.add_argument("--peers", nargs="+", default=None, choices=list(PEERS), metavar="NAME",
                        help=f"default: all of {list(PEERS)}")  # fmt: skip
    parser.add_argument("--start-points", action="store_true",
                        help="leave the recording's trial 0 (the start point of an older space) "
                        "out of the sweep and of what the peers may pick: the same sweep as "
                        "bench/replay.py --equal-epochs --start-points, where only this "
                        "service's methods start from the space's start points")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write the result here too")
    args = parser.parse_args(argv)
    if not (args.experiment / "epochs.csv").is_file():
        parser.error(f"{args.experiment} has no epochs.csv: not a recording")
    result = replay_peers(args)
    print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
