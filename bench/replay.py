"""Replay schedulers on recorded learning curves: hundreds of seeds in minutes, no training.

Real searches cost too much to run over enough seeds to tell a better scheduler from a lucky
one (3 seeds of bench/peers.py could not). Here each task's curves are recorded once, with the
product itself, every configuration trained to the end:

    tuner search --dataset digits --space seed_cnn --searcher random --scheduler fifo \\
        --samples 150 --epochs 12 --concurrency 2 --no-confirm --name curves-digits-seed_cnn

and schedulers are replayed on them, the way Syne Tune's simulator and tabular benchmarks work:
each simulated search draws `--samples` of the recorded configurations (the baseline, trial 0,
first, as a real search proposes it, then a seeded permutation of the rest), runs them
`--concurrency` at a time on a simulated clock that advances by each epoch's measured seconds
(plus `--overhead` a trial start), and hands every epoch's recorded validation figures to the
scheduler, which continues or stops the trial. Every method sees the same configurations in
the same order under one seed: only its scheduling differs, so differences between methods
are paired, and the sweep (FIFO) of the same configurations is each seed's reference.

The schedulers are the real classes: this service's PersistentASHA (with its paper rule, its
baseline protection and the defaults of `tuner search`) and Ray's ASHAScheduler (stock, and as
asynchronous Hyperband with several brackets). Decisions are made exactly as in a search; only
the state file writes are skipped.

What a replay cannot say: how a searcher that learns (TPE) would have chosen among
configurations the recording does not hold; the replay draws at random. Confirm a scheduler
the replay picks with real runs (bench/peers.py).

    python bench/replay.py EXPERIMENT_DIR --samples 27 --seeds 300 \\
        --json bench/results/replay-digits-seed_cnn.json
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # replay_searchers

# --start-points: their curves' indices, past any recording's trial indices
START_INDEX = 1_000_000
METRIC, MODE = "val_loss", "min"  # the schedulers' metric, as tuner.config.objectives has it
STOP, CONTINUE = "STOP", "CONTINUE"  # ray.tune.schedulers.TrialScheduler's decisions


class Fifo:
    """Every trial to its end (Ray's FIFOScheduler, for where Ray is not installed)."""

    def on_trial_add(self, runner: Any, trial: Any) -> None:
        pass

    def on_trial_result(self, runner: Any, trial: Any, result: dict) -> str:
        return CONTINUE

    def on_trial_complete(self, runner: Any, trial: Any, result: dict) -> None:
        pass

    def on_trial_remove(self, runner: Any, trial: Any) -> None:
        pass


@dataclass
class Curve:
    """One recorded configuration: its validation figures and seconds, epoch by epoch."""

    index: int
    acc: list[float]
    loss: list[float]
    seconds: list[float]


def load_curves(exp: Path, epochs: int | None) -> tuple[list[Curve], int]:
    """The experiment's curves, cut to `epochs` (default: the recording's epoch budget)."""
    frame = pd.read_csv(exp / "epochs.csv").sort_values(["trial_index", "epoch"])
    if (exp / "trials.csv").is_file():  # a recording stopped early: its unfinished trials out
        trials = pd.read_csv(exp / "trials.csv")
        if "status" in trials:
            done = trials.loc[trials["status"].isin(["completed", "diverged"]), "trial_index"]
            frame = frame[frame["trial_index"].isin(set(done))]
    budget = int(frame["epoch"].max()) if epochs is None else epochs
    curves = []
    for index, rows in frame.groupby("trial_index"):
        rows = rows[rows["epoch"] <= budget]
        if rows.empty:
            continue
        acc = [float(a) if math.isfinite(a) else 0.0 for a in rows["val_acc"].fillna(0.0)]
        loss = [float(v) if math.isfinite(v) else math.inf
                for v in rows["val_loss"].fillna(math.inf)]  # fmt: skip
        seconds = [max(0.0, float(s)) for s in rows["epoch_time_s"].fillna(0.0)]
        curves.append(Curve(int(index), acc, loss, seconds))
    full = sum(1 for c in curves if len(c.acc) == budget)
    if full < len(curves) // 2:
        raise SystemExit(f"{exp}: only {full} of {len(curves)} trials ran {budget} epochs: "
                         "record with --scheduler fifo")  # fmt: skip
    return curves, budget


@dataclass
class Run:
    """One simulated search: (clock seconds, epochs trained, best validation accuracy so
    far) after every epoch, and what it found."""

    events: list[tuple[float, int, float]] = field(default_factory=list)
    epochs: int = 0
    best: float = 0.0


def fake_trial(position: int, curve: Curve) -> Any:
    """What the schedulers read of a Tune trial: its id, and its tag (trial 0, the baseline,
    is tagged 1_..., as Tune tags it)."""
    return SimpleNamespace(trial_id=f"t{position:05d}", experiment_tag=f"{position + 1}_x",
                           storage=None, curve=curve)  # fmt: skip


class Listed:
    """Random search: the seed's permutation of the recorded configurations, in order."""

    def __init__(self, curves: list[Curve], order: list[int]) -> None:
        self.queue = [curves[i] for i in reversed(order)]

    def next(self) -> Curve | None:
        return self.queue.pop() if self.queue else None

    def done(self, curve: Curve, epochs: int) -> None:
        pass


def simulate(curves: list[Curve], order: Any, scheduler: Any, concurrency: int,
             overhead: float, budget: int | None = None,
             limit: int | None = None) -> Run:  # fmt: skip
    """One search over `curves` in `order` (indices, or a proposer: `next()` the next curve
    or None, `done(curve, epochs)` when a trial ends). `budget`: no trial starts once that
    many epochs are trained (the running ones finish); None: every trial proposed runs, or
    the first `limit`."""
    propose = Listed(curves, order) if isinstance(order, list) else order
    run = Run()
    queue: list[tuple[float, int, int, Any]] = []  # (finish time, tie-break, epoch, trial)
    started = 0
    tie = 0

    def start(now: float) -> None:
        nonlocal started, tie
        if limit is not None and started >= limit:
            return
        curve = propose.next()
        if curve is None:
            return
        trial = fake_trial(started, curve)
        started += 1
        scheduler.on_trial_add(None, trial)
        tie += 1
        heapq.heappush(queue, (now + overhead + trial.curve.seconds[0], tie, 1, trial))

    for _ in range(concurrency):
        start(0.0)
    while queue:
        now, _, epoch, trial = heapq.heappop(queue)
        curve = trial.curve
        run.epochs += 1
        run.best = max(run.best, curve.acc[epoch - 1])
        run.events.append((now, run.epochs, run.best))
        result = {"training_iteration": epoch, "epoch": epoch, METRIC: curve.loss[epoch - 1],
                  "time_total_s": sum(curve.seconds[:epoch])}  # fmt: skip
        if epoch == len(curve.acc):  # its last epoch: the budget, or it diverged there
            scheduler.on_trial_complete(None, trial, result)
            ended = True
        else:
            ended = scheduler.on_trial_result(None, trial, result) == STOP
            if ended:
                scheduler.on_trial_remove(None, trial)
            else:
                tie += 1
                heapq.heappush(queue, (now + curve.seconds[epoch], tie, epoch + 1, trial))
        if ended:
            propose.done(curve, epoch)
            if budget is None or run.epochs < budget:
                start(now)
    return run


@dataclass(frozen=True)
class Method:
    """A scheduler (a fresh one each simulated search) and the searcher that proposes."""

    scheduler: Callable[[], Any]
    searcher: str = "random"  # or a key of SAMPLERS
    optuna_pruner: bool = False  # plain Optuna: the study's HyperbandPruner decides


def samplers() -> dict[str, Callable[[int], Any]]:
    from optuna.samplers import TPESampler

    from tuner.driver.fence.searcher import make_sampler

    return {
        "tpe": lambda seed: make_sampler("tpe", seed),  # what `tuner search` runs
        "tpe-mv": lambda seed: TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True
        ),  # fmt: skip
        "tpe-5": lambda seed: TPESampler(seed=seed, n_startup_trials=5),
    }


class OptunaPruning:
    """Plain Optuna's early stopping as a scheduler: each epoch is reported to the trial's
    Optuna trial and the study's pruner (HyperbandPruner) decides."""

    def __init__(self, proposer: Any) -> None:
        self.proposer = proposer

    def on_trial_add(self, runner: Any, trial: Any) -> None:
        pass

    def on_trial_complete(self, runner: Any, trial: Any, result: dict) -> None:
        pass

    def on_trial_remove(self, runner: Any, trial: Any) -> None:
        pass

    def on_trial_result(self, runner: Any, trial: Any, result: dict) -> str:
        ot = self.proposer.asked.get(trial.curve.index)
        value = result[METRIC]
        if ot is None or not math.isfinite(value):
            return CONTINUE
        ot.report(value, result["epoch"])
        self.proposer.reported.setdefault(trial.curve.index, set()).add(result["epoch"])
        return STOP if ot.should_prune() else CONTINUE


def methods(samples: int, max_t: int, equal_epochs: bool = False, known_points: int = 1,
            baseline_points: int | None = None) -> dict[str, Method]:  # fmt: skip
    """Each method: a fresh scheduler for one simulated search, and its searcher. With
    `equal_epochs` this service's ASHA judges its rungs by the trials the budget pays for, as a
    search that spends its savings does (tuner.driver.tuner_setup.expected_trials)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from tuner.driver.fence.asha import PersistentASHA, expected_trials
    from tuner.experiment import grace_period_for

    class ReplayASHA(PersistentASHA):
        def _save(self, trial_id: str) -> None:  # decisions only: no state file
            pass

    state = str(Path(tempfile.gettempdir()) / "replay-asha-unused.json")

    def ours(grace: int = 1, rf: int = 3, paper: bool = True) -> Callable[[], Any]:
        arriving = samples
        if equal_epochs:
            arriving = expected_trials(samples, max_t, grace, rf, samples * max_t // grace)
        return lambda: ReplayASHA(state_path=state, time_attr="training_iteration",
                                  metric=METRIC, mode=MODE, max_t=max_t, grace_period=grace,
                                  reduction_factor=rf, samples=arriving if paper else None,
                                  known_points=known_points,
                                  baseline_points=baseline_points)  # fmt: skip

    def ray(grace: int = 1, rf: int = 4, brackets: int = 1) -> Callable[[], Any]:
        return lambda: ASHAScheduler(time_attr="training_iteration", metric=METRIC, mode=MODE,
                                     max_t=max_t, grace_period=grace, reduction_factor=rf,
                                     brackets=brackets)  # fmt: skip

    fifo = FIFOScheduler
    return {
        "sweep (fifo)": Method(fifo),
        "ours (paper rule, grace 1, rf 3)": Method(ours()),
        "ours, ray rule": Method(ours(paper=False)),
        "ours, grace 2": Method(ours(grace=2)),
        "ours, grace 3": Method(ours(grace=3)),
        "ours, rf 2": Method(ours(rf=2)),
        "stock ray asha (grace 1, rf 4)": Method(ray()),
        "async hyperband (3 brackets, rf 3)": Method(ray(rf=3, brackets=3)),
        # With the searcher that learns (bench/replay_searchers.py):
        "TPE + fifo": Method(fifo, "tpe"),
        "ours as shipped (TPE + ASHA, grace 3 at most epochs - 1)": Method(
            ours(grace=grace_period_for(None, max_t)), "tpe"
        ),
        "ours + TPE, grace 1 (the default before 2026-12-06)": Method(ours(), "tpe"),
        "ours, grace 2 + TPE": Method(ours(grace=2), "tpe"),
        "ours, grace 3 + TPE": Method(ours(grace=3), "tpe"),
        "async hyperband + TPE": Method(ray(rf=3, brackets=3), "tpe"),
        "ours + TPE multivariate, group, liar": Method(ours(), "tpe-mv"),
        "ours + TPE, 5 start-up trials": Method(ours(), "tpe-5"),
        "stock ray tune: TPE + ASHA (grace 1, rf 4)": Method(ray(), "tpe"),
        "plain optuna: TPE + HyperbandPruner": Method(fifo, "tpe", optuna_pruner=True),
    }


def best_at(run: Run, axis: int, x: float) -> float:
    """Best validation accuracy reached by `x` on `axis` (0: seconds, 1: epochs)."""
    best = 0.0
    for event in run.events:
        if event[axis] > x:
            break
        best = event[2]
    return best


def reached(run: Run, target: float, axis: int) -> float | None:
    """Where on `axis` the run first reached `target`, or None."""
    return next((e[axis] for e in run.events if e[2] >= target), None)


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95 % t interval."""
    from tuner.experiment.stats import t_quantile

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


class Learning:
    """What a learning searcher needs of a recording: its space (search.toml beside the
    curves), the recorded configurations' parameters, and the nearest-neighbour snap."""

    def __init__(self, exp: Path, curves: list[Curve]) -> None:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        from replay_searchers import Nearest, recorded_params

        from search_spaces import get_space, space_distributions

        toml = exp / "search.toml"
        if not toml.is_file():
            raise SystemExit(f"{exp}: no search.toml: the space of the recording is unknown")
        options = tomllib.loads(toml.read_text())
        side = options.get("image_size") or (8 if options.get("dataset") == "digits" else 32)
        space = get_space(options.get("space", "seed_cnn"))
        if space.name == "resnet_cnn":
            from dataclasses import replace

            from search_spaces.resnet_cnn import BATCH_SIZES_BEFORE_2026_12_07, resnet_cnn

            batches = {p.get("batch_size") for p in recorded_params(exp, ["batch_size"]).values()}
            if batches <= set(BATCH_SIZES_BEFORE_2026_12_07):
                # recorded before batches of 32 and 64 joined the space: replay the space the
                # curves were recorded in, or TPE's proposals of 32 and 64 map to neighbours
                space = replace(space, define=resnet_cnn)
        dists = {n: d for n, (d, _) in space_distributions(space, side).items()}
        self.define = space.for_input(side)
        self.curves = {c.index: c for c in curves}
        self.nearest = Nearest(dists, recorded_params(exp, list(dists)))

    def add_start_points(self, exp: Path, starts: list[Curve]) -> None:
        """The curves of --start-points (indices START_INDEX + their trial index) and their
        parameters, for a proposer to tell its study as it tells the baseline."""
        from replay_searchers import recorded_params

        params = recorded_params(exp, list(self.nearest.dists))
        self.curves.pop(0, None)  # the recording's own start point, of an older space
        for curve in starts:
            self.curves[curve.index] = curve
            self.nearest.params[curve.index] = params[curve.index - START_INDEX]

    def proposer(self, sampler: Any, max_t: int, pruner: bool,
                 known: list[int] | None = None) -> Any:  # fmt: skip
        """A study that proposes `known` first (default: the recording's trial 0), then
        what its sampler asks, each snapped to the nearest recorded configuration not used."""
        import optuna
        from replay_searchers import OptunaProposer

        known = [0] if known is None else known
        # the recording's configurations, and of the start points only this search's own
        pool = [i for i in self.curves if i < START_INDEX or i in known]
        made = OptunaProposer(self.curves, pool, self.nearest, self.define,
                              sampler, max_t, baseline=known)  # fmt: skip
        if pruner:  # plain Optuna as bench/peers.py sets it up
            made.study.pruner = optuna.pruners.HyperbandPruner(min_resource=1,
                                                               max_resource=max_t)  # fmt: skip
        return made


def seed_curves(retrained: Path, index: int, max_t: int) -> list[Curve]:
    """A start point retrained under other seeds (`tuner train DIR --trial N --seeds S`: its
    epochs.csv has a row a seed and epoch), one curve a seed, cut to `max_t` epochs."""
    frame = pd.read_csv(retrained / "epochs.csv").sort_values(["seed", "epoch"])
    out = []
    for _, rows in frame.groupby("seed"):
        rows = rows[rows["epoch"] <= max_t]
        if len(rows) < max_t:
            raise SystemExit(f"{retrained}: a seed ran {len(rows)} epochs, not {max_t}")
        out.append(Curve(index, [float(a) for a in rows["val_acc"].fillna(0.0)],
                         [float(v) for v in rows["val_loss"].fillna(math.inf)],
                         [float(t) for t in rows["epoch_time_s"].fillna(0.0)]))  # fmt: skip
    return out


def summarise(runs: dict[str, list[Run]]) -> dict[str, Any]:
    """Each method's figures against the sweep (runs["sweep (fifo)"]) of the same seeds."""
    sweep = runs["sweep (fifo)"]
    summary: dict[str, Any] = {}
    for name, result in runs.items():
        gaps = [r.best - s.best for r, s in zip(result, sweep, strict=True)]
        within = [reached(r, s.best - 0.01, 1) for r, s in zip(result, sweep, strict=True)]
        secs = [reached(r, s.best - 0.01, 0) for r, s in zip(result, sweep, strict=True)]
        tenth = sum(1 for w, s in zip(within, sweep, strict=True)
                    if w is not None and w <= s.epochs / 10)  # fmt: skip
        curve = {}
        for fraction in (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0):
            values = [
                best_at(r, 1, fraction * s.epochs) for r, s in zip(result, sweep, strict=True)
            ]
            curve[str(fraction)] = interval(values)
        clock = {}  # the same against the simulated clock, as fractions of the sweep's seconds
        for fraction in (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0):
            values = [
                best_at(r, 0, fraction * s.events[-1][0])
                for r, s in zip(result, sweep, strict=True)
            ]
            clock[str(fraction)] = interval(values)
        summary[name] = {
            "final_best": interval([r.best for r in result]),
            "gap_to_sweep": interval(gaps),
            "worst_gap_to_sweep": min(gaps),
            "epochs": interval([float(r.epochs) for r in result]),
            "epochs_fraction_of_sweep": statistics.fmean(
                r.epochs / s.epochs for r, s in zip(result, sweep, strict=True)
            ),
            "reached_sweep_within_1pt": sum(w is not None for w in within) / len(within),
            "median_epochs_to_target": statistics.median(
                w if w is not None else math.inf for w in within
            ),  # fmt: skip
            "median_seconds_to_target": statistics.median(
                s if s is not None else math.inf for s in secs
            ),  # fmt: skip
            "seeds_within_1pt_at_tenth_of_sweep_epochs": tenth / len(within),
            "best_by_fraction_of_sweep_epochs": curve,
            "best_by_fraction_of_sweep_seconds": clock,
        }
    return summary


def replay(args: argparse.Namespace) -> dict[str, Any]:
    # Ray's ASHA takes np.nanpercentile of its rung's rewards; a diverged trial's is -inf, and
    # numpy warns "invalid value" on every cutoff after it (the cutoff itself is right).
    warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
    curves, max_t = load_curves(args.experiment, args.epochs)
    by_index = {c.index: c for c in curves}
    baseline = by_index.get(0)
    others = [c.index for c in curves if c.index != 0]
    samples = min(args.samples, len(curves))
    starts: list[Curve] = []
    baselines = 0
    if args.start_points is not None:
        recorded, start_t = load_curves(args.start_points, None)
        if start_t < max_t:
            raise SystemExit(f"{args.start_points}: its trials ran {start_t} epochs, the "
                             f"recording's {max_t}")  # fmt: skip
        recorded, _ = load_curves(args.start_points, max_t)
        samples = min(samples, len(others))  # the recording's trial 0 is left out
        starts = [Curve(START_INDEX + c.index, c.acc, c.loss, c.seconds) for c in recorded]
        # the lab's baseline, where the search has one, is the first (Ray's rule judges it);
        # the start points after it are never stopped, as in a search
        listed = args.start_points / "trials.csv"
        trials = pd.read_csv(listed) if listed.is_file() else pd.DataFrame()
        baselines = int(trials["is_baseline"].astype(bool).sum()) if "is_baseline" in trials else 0
    # The last start point's curve under other training seeds (`tuner train --seeds`): each
    # simulated search draws one of them or the recorded run, as a search's own training seed
    # could have gone. One run alone can be a lucky one.
    variants = starts[-1:]
    if starts and args.start_point_seeds:
        variants += seed_curves(args.start_point_seeds, starts[-1].index, max_t)
    table = methods(samples, max_t, args.equal_epochs, known_points=len(starts) or 1,
                    baseline_points=baselines if starts else None)  # fmt: skip
    if args.methods:
        unknown = [m for m in args.methods if m not in table]
        if unknown:
            raise SystemExit(f"unknown method(s) {unknown}; known: {list(table)}")
        table = {n: m for n, m in table.items() if n == "sweep (fifo)" or n in args.methods}
    learning = None
    if any(m.searcher != "random" for m in table.values()):
        if (args.experiment / "search.toml").is_file() or args.methods:
            learning = Learning(args.experiment, curves)
            if starts:
                learning.add_start_points(args.start_points, starts)
        else:  # scripted curves with no space: the methods that learn cannot run on them
            print(f"{args.experiment}: no search.toml (the recording's space): replaying the "
                  "random-search methods only", file=sys.stderr)  # fmt: skip
            table = {n: m for n, m in table.items() if m.searcher == "random"}
    make_sampler = samplers()
    runs: dict[str, list[Run]] = {name: [] for name in table}
    ordered = [baseline] if baseline is not None else []
    start = time.perf_counter()
    for seed in range(args.seeds):
        rng = random.Random(seed)
        if starts:  # the start point's training seed for this search (its own generator:
            # the sweep's draws below stay those of the runs without --start-point-seeds)
            starts[-1] = random.Random(-1 - seed).choice(variants)
            if learning is not None:
                learning.curves[starts[-1].index] = starts[-1]
        # --equal-epochs: every recorded configuration in the seed's order; the sweep runs the
        # first `samples`, and each other method goes on down the list until it has trained
        # the epochs the sweep did (what it saved buys more trials).
        if starts:  # the sweep and the peers: the recording alone, its trial 0 left out
            drawn = rng.sample(others, len(others) if args.equal_epochs else samples)
            picked = [by_index[i] for i in drawn]
        else:
            drawn = rng.sample(others, (len(others) if args.equal_epochs
                                        else samples - len(ordered)))  # fmt: skip
            picked = [*ordered, *(by_index[i] for i in drawn)]
        order = list(range(len(picked)))
        sweep_run = simulate(picked, order[:samples], table["sweep (fifo)"].scheduler(),
                             args.concurrency, args.overhead)  # fmt: skip
        runs["sweep (fifo)"].append(sweep_run)
        budget = sweep_run.epochs if args.equal_epochs else None
        limit = None if budget else samples
        for name, method in table.items():
            if name == "sweep (fifo)":
                continue
            # With --start-points this service's methods start from them, as a search does;
            # every other method as its documentation sets it up, from random configurations.
            own = bool(starts) and name.startswith("ours")
            these = [*starts, *picked] if own else picked
            if method.searcher == "random":
                proposer: Any = list(range(len(these)))
                proposer = proposer if budget else proposer[:samples]
                scheduler = method.scheduler()
            else:
                assert learning is not None
                known = [c.index for c in starts] if own else ([] if starts else None)
                proposer = learning.proposer(make_sampler[method.searcher](seed), max_t,
                                             pruner=method.optuna_pruner,
                                             known=known)  # fmt: skip
                scheduler = OptunaPruning(proposer) if method.optuna_pruner else method.scheduler()
            runs[name].append(simulate(these, proposer, scheduler, args.concurrency,
                                       args.overhead, budget, limit))  # fmt: skip
        if (seed + 1) % max(1, args.seeds // 10) == 0:
            print(f"  seed {seed + 1}/{args.seeds} ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
    summary = summarise(runs)
    return {
        "equal_epochs": args.equal_epochs,
        "start_points": str(args.start_points) if args.start_points else None,
        "start_point_curves": [{"acc": c.acc, "seconds": c.seconds} for c in starts],
        "start_point_seeds": str(args.start_point_seeds) if args.start_point_seeds else None,
        "start_point_variants": [{"acc": c.acc} for c in variants] if starts else [],
        "experiment": str(args.experiment), "configurations": len(curves), "epochs": max_t,
        "samples": samples, "concurrency": args.concurrency, "overhead_s": args.overhead,
        "seeds": args.seeds, "replay_seconds": round(time.perf_counter() - start, 1),
        "methods": summary,
    }  # fmt: skip


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['configurations']} recorded configurations x {result['epochs']} epochs; "
        f"{result['samples']} trials a search"
        f"{' (the sweep; the others: its epochs)' if result['equal_epochs'] else ''}, "
        f"{result['concurrency']} at a time; "
        f"{result['seeds']} seeds (replayed in {result['replay_seconds']} s)",
        "",
        f"{'method':<40} {'final best [95% CI]':>24} {'gap to sweep':>13} {'worst':>7} "
        f"{'epochs':>7} {'@1/10':>6} {'@1/5':>6}  {'to target':>9}",
    ]
    for name, m in result["methods"].items():
        mean, lo, hi = m["final_best"]
        tenth = m["best_by_fraction_of_sweep_epochs"]["0.1"][0]
        fifth = m["best_by_fraction_of_sweep_epochs"]["0.2"][0]
        lines.append(
            f"{name:<40} {mean:.4f} [{lo:.4f}, {hi:.4f}] {m['gap_to_sweep'][0]:+13.4f} "
            f"{m['worst_gap_to_sweep']:+7.3f} {m['epochs_fraction_of_sweep']:7.2f} "
            f"{tenth:6.3f} {fifth:6.3f}  {m['median_epochs_to_target']:9.0f}"
        )
    lines += ["", "epochs: the fraction of the sweep's; @1/10, @1/5: best so far at that "
              "fraction of the sweep's epochs; to target: median epochs to within 1 point of "
              "the sweep's best (inf: most seeds never did)"]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", type=Path, help="a FIFO random search's directory")
    parser.add_argument("--samples", type=int, default=27, help="trials a search (default 27)")
    parser.add_argument("--seeds", type=int, default=200, help="simulated searches a method")
    parser.add_argument("--concurrency", type=int, default=2, help="trials at once (default 2)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epoch budget (default: the recording's)")  # fmt: skip
    parser.add_argument("--overhead", type=float, default=0.5,
                        help="seconds a trial start adds to its epochs; default 0.5")  # fmt: skip
    parser.add_argument("--equal-epochs", action="store_true",
                        help="each method trains as many epochs as the sweep of --samples "
                        "trials did, starting more trials with what it saves")  # fmt: skip
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="replay only these methods (and the sweep); default: all")  # fmt: skip
    parser.add_argument("--start-points", type=Path, default=None, metavar="EXP",
                        help="a recording of the space's start points as `tuner search` has "
                        "them today (the same options as the recording, --samples K "
                        "--scheduler fifo, K its known points): the methods named 'ours ...' "
                        "start with them, as a search does; the sweep and every other method "
                        "draw from the recording alone, as their documentation sets them up; "
                        "the recording's own trial 0 (an older start point) is left out for "
                        "all")  # fmt: skip
    parser.add_argument("--start-point-seeds", type=Path, default=None, metavar="DIR",
                        help="with --start-points: the last start point retrained under other "
                        "seeds (`tuner train EXP --trial N --seeds S --out ... --name ...`); "
                        "each simulated search draws its curve from those runs and the "
                        "recorded one")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write the result here too")
    args = parser.parse_args(argv)
    if not (args.experiment / "epochs.csv").is_file():
        parser.error(f"{args.experiment} has no epochs.csv: not an experiment directory")
    if args.start_point_seeds is not None and args.start_points is None:
        parser.error("--start-point-seeds needs --start-points")
    if args.start_point_seeds is not None and not (args.start_point_seeds / "epochs.csv").is_file():
        parser.error(f"--start-point-seeds {args.start_point_seeds} has no epochs.csv")
    if args.start_points is not None and not (args.start_points / "epochs.csv").is_file():
        parser.error(f"--start-points {args.start_points} has no epochs.csv: not an experiment")
    result = replay(args)
    print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
