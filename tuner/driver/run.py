"""`search(SearchConfig)`: one architecture and hyperparameter search, end to end, and
`resume(DIR)`, which continues an interrupted one.

    SearchConfig (validated) -> dataset (decoded once, cached) -> Ray (in-process or --address)
    -> Tuner(trainable, TruthfulOptunaSearch(define-by-run space), PersistentASHA | FIFO)
    -> experiment dir: trials.csv, epochs.csv, best.json, provenance.json, optuna.db,
       asha_state.json, report.html, Ray's files

The CLI (tuner/cli.py) is a thin layer over these functions.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import pandas as pd

from tuner.data import DatasetBundle, load_dataset
from tuner.driver import provenance
from tuner.driver.config import SearchConfig
from tuner.driver.disk import DiskFullError, is_disk_full
from tuner.driver.objectives import knee_point, pareto_front, parse_objectives, values_of
from tuner.driver.recovery import (
    OPTUNA_DB,
    errored_trials,
    forget_missing_checkpoints,
    prepare_search_state,
    reconcile_study,
    record_errors,
    reopen_trials,
    repair_state,
    settle_finished_trials,
)
from tuner.experiment import (
    Damage,
    collect_tables,
    pick_best,
    ray_trial_states,
    trial_config,
    trial_dir_name,
)
from tuner.io import atomic_write_csv, atomic_write_json
from tuner.train.config import ConfigError

if TYPE_CHECKING:
    from tuner.train.cost import Cost

T = TypeVar("T")
SPACE_CHECK_SAMPLES = 8  # configurations dry-run before any trial (while Ray starts)
REJECTED_CSV = "rejected.csv"  # configurations over --max-params / --max-macs, never trained
SEARCHER_METRIC, SEARCHER_MODE = "best_val_acc", "max"  # accuracy of the kept weights
SCHEDULER_METRIC, SCHEDULER_MODE = "val_loss", "min"


@dataclass
class SearchResult:
    experiment_dir: Path
    trials: pd.DataFrame  # trials.csv
    epochs: pd.DataFrame  # epochs.csv
    best: dict[str, Any] | None  # best.json
    report: Path | None  # report.html, when the analysis package could write it
    interrupted: bool = False  # trials left unfinished: continue with `tuner resume DIR`
    stop_reason: str | None = None  # why the search stopped itself (the disk was filling up)
    stopped_by_clock: bool = False  # --time-budget was spent (unfinished trials: resume them)


def _say(stream: TextIO, message: str) -> None:
    stream.write(message + "\n")
    stream.flush()


def fixed_params(cfg: SearchConfig, bundle: DatasetBundle) -> dict[str, Any]:
    """Constants merged into every trial's config (the space's samples go on top)."""
    params: dict[str, Any] = {"epochs": cfg.epochs}
    if bundle.name == "digits":
        params["hflip"] = False  # a mirrored digit is a different glyph
    return params


def keep_local_ray_on_loopback() -> None:
    """Make an in-process Ray bind every port (GCS, raylet, workers) to 127.0.0.1.

    On Linux Ray listens on every interface by default (seen with `ss -ltnp`). Its switch for
    "local only" is the constant behind RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when ray is
    imported; set the variable for the processes Ray spawns and the constant for this one,
    which may have imported ray already.
    """
    import ray._private.ray_constants as ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


# The environment Tune gives its trial actors (DEFAULT_ENV_VARS in ray/tune/execution/
# class_cache.py; for PyTorch Lightning, ray-project/ray#28197). An in-process Ray is started
# with it already in place, so that its prestarted workers can take trials (below).
TUNE_ACTOR_ENV = {"PL_DISABLE_FORK": "1"}


def let_trials_use_prestarted_workers() -> None:
    """Let Tune's trial actors run in the worker processes an in-process Ray prestarts.

    Ray starts idle Python workers with the cluster, but hands an actor only to a worker whose
    runtime env matches the actor's, and Tune gives its trial actors one of their own
    (TUNE_ACTOR_ENV). So the first trial of every slot waited for a new Python process and its
    `import ray`, about 1 s (bench/overhead.py, start-up). start_ray puts those variables into
    the environment every process of an in-process Ray inherits; this empties Tune's copy, but
    only when all of it is in that environment already. Should Tune add variables of its own
    (it also propagates a few, such as AWS keys, when they are set), its actors simply start
    fresh processes as before. Call it after Ray has started, for an in-process Ray only.
    """
    try:
        from ray.tune.execution import class_cache
    except ImportError:  # moved in some Ray release: nothing is lost but this saving
        return
    defaults = getattr(class_cache, "DEFAULT_ENV_VARS", None)
    if isinstance(defaults, dict) and all(os.environ.get(k) == v for k, v in defaults.items()):
        defaults.clear()


def start_ray(cfg: SearchConfig, stream: TextIO) -> bool:
    """Connect to `cfg.address`, or start Ray in this process. Returns True if we started it."""
    import ray

    # Read by Tune in this process when fit() starts, so set even when Ray already runs here
    # (a notebook, or the test matrix sharing one Ray between searches).
    # The legacy reporter honours verbose=0; the new one prints its own tables regardless, and
    # SearchProgress replaces both.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune adds CSV, JSON and TensorBoard loggers; the TensorBoard one prints "NaN or Inf found
    # in input tensor" for every diverged trial. build_tuner adds the two we read instead.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    if ray.is_initialized():
        return False
    quiet = {
        "log_to_driver": cfg.verbose,
        "logging_level": logging.INFO if cfg.verbose else logging.ERROR,
    }
    if cfg.address:
        _say(stream, f"Connecting to the Ray cluster at {cfg.address}")
        ray.init(address=cfg.address, **quiet)
        return True
    keep_local_ray_on_loopback()
    for name, value in TUNE_ACTOR_ENV.items():  # see let_trials_use_prestarted_workers
        os.environ.setdefault(name, value)
    # Ray's usage statistics (sent to Anyscale when a network is there) cost ray.init ~0.9 s
    # here (bench/overhead.py, start-up). A private in-process Ray for one search does not send
    # them unless the user asks for it with RAY_USAGE_STATS_ENABLED=1.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # address="local" always starts a private instance: it never joins a cluster someone else
    # started on this machine (which address=None or "auto" could).
    ray.init(address="local", include_dashboard=False, **quiet)
    return True


def check_schedulable(cfg: SearchConfig) -> None:
    """Refuse a per-trial request that no node of the cluster can ever satisfy.

    Ray would otherwise keep the trial PENDING forever with a warning every 60 s.
    """
    import ray

    from tuner.train.config import ConfigError

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    fits = any(
        n["Resources"].get("CPU", 0) >= cfg.cpus_per_trial
        and n["Resources"].get("GPU", 0) >= cfg.gpus_per_trial
        for n in nodes
    )
    if not fits:
        have = ", ".join(
            f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPU, "
            f"{n['Resources'].get('GPU', 0):g} GPU"
            for n in nodes
        )
        raise ConfigError(
            f"no node can run a trial with {cfg.cpus_per_trial:g} CPU and "
            f"{cfg.gpus_per_trial:g} GPU (cluster has {have}); "
            "lower --cpus-per-trial or --gpus-per-trial"
        )


def scheduler_stop_epochs(cfg: SearchConfig) -> frozenset[int]:
    """The epochs at which ASHA may stop a trial: its rungs, grace_period x rf^k < epochs."""
    from tuner.driver.asha import rung_epochs

    if cfg.scheduler != "asha":
        return frozenset()
    return frozenset(rung_epochs(cfg.grace_period, cfg.reduction_factor, cfg.epochs))


def make_trainable(cfg: SearchConfig, payload: dict[str, Any]) -> Any:
    from ray import tune

    from tuner.driver.trainable import CheckpointPolicy, train_trial

    if cfg.address is None:
        let_trials_use_prestarted_workers()

    threads = max(1, int(cfg.cpus_per_trial))
    checkpoints = CheckpointPolicy(cfg.checkpoint_interval, scheduler_stop_epochs(cfg))
    trainable = tune.with_parameters(  # the dataset goes into the object store once, here
        train_trial, data=payload, threads=threads, gpu_share=cfg.gpus_per_trial,
        checkpoints=checkpoints,
    )  # fmt: skip
    return tune.with_resources(trainable, {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial})


def open_study_storage(cfg: SearchConfig) -> Any:
    """The Optuna study's database, optuna.db in the experiment directory (~0.8 s of SQLAlchemy
    and Alembic the first time, so search() opens it while Ray starts)."""
    import optuna

    return optuna.storages.RDBStorage(f"sqlite:///{cfg.experiment_dir / OPTUNA_DB}")


def build_tuner(
    cfg: SearchConfig,
    bundle: DatasetBundle,
    payload: dict[str, Any],
    stream: TextIO,
    storage: Any = None,
) -> Any:
    import optuna
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from search_spaces import get_space
    from tuner.driver.guards import ClockGuard, DiskGuard, StateBackup
    from tuner.driver.progress import SearchProgress
    from tuner.driver.searcher import TruthfulOptunaSearch, make_sampler
    from tuner.train.cost import Budget, model_cost

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space(cfg.space)
    side = bundle.input_shape[1]
    points, notes = space.fit_points(side)
    for note in notes:
        _say(stream, note)
    budget = Budget(cfg.max_params, cfg.max_macs)
    objectives = parse_objectives(cfg.objectives) if cfg.objectives else None
    # Optuna's TPE is multi-objective (MOTPE) when the study has several directions.
    sampler = make_sampler(cfg.searcher, cfg.seed)
    storage = storage if storage is not None else open_study_storage(cfg)
    searcher = TruthfulOptunaSearch(
        epoch_budget=cfg.epochs,
        space=space.for_input(side),
        metric=[o.metric for o in objectives] if objectives else SEARCHER_METRIC,
        mode=[o.mode for o in objectives] if objectives else SEARCHER_MODE,
        points_to_evaluate=points,
        sampler=sampler,
        storage=storage,
        study_name=cfg.name,
        budget=budget,
        pricer=functools.partial(
            model_cost, input_shape=bundle.input_shape, num_classes=bundle.num_classes
        ),
        rejections=functools.partial(record_rejection, cfg.experiment_dir / REJECTED_CSV),
    )
    scheduler = make_scheduler(cfg, has_baseline=space.baseline is not None)

    return tune.Tuner(
        make_trainable(cfg, payload),
        param_space=fixed_params(cfg, bundle),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=cfg.samples,
            max_concurrent_trials=cfg.concurrency,
            trial_dirname_creator=trial_dir_name,
            # One worker process serves trial after trial (same resources): a new trial skips
            # starting a process and importing torch, ~3 s each (bench/overhead.py).
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=str(cfg.experiment_dir.parent),
            # Each checkpoint carries the kept (lowest-val-loss) weights as well as the latest
            # state, so the newest one is both "the latest and the best": a resume and the
            # final evaluation need nothing older. Keeping one halves the disk used.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            verbose=0,
            callbacks=[
                SearchProgress(cfg.samples, cfg.epochs, stream=stream),
                DiskGuard(cfg.experiment_dir),  # stops cleanly before the disk is full
                ClockGuard(),  # --time-budget, leaving the unfinished trials to `tuner resume`
                StateBackup(cfg.experiment_dir),  # whole copies of Tune's state files
                JsonLoggerCallback(),  # result.json: what tuner.experiment reads
                CSVLoggerCallback(),  # progress.csv
            ],
        ),
    )


def make_scheduler(cfg: SearchConfig, has_baseline: bool) -> Any:
    """ASHA (rungs kept in asha_state.json, the `--asha-rule` in force) or FIFO."""
    from ray.tune.schedulers import FIFOScheduler

    from tuner.driver.asha import STATE_FILE as ASHA_STATE
    from tuner.driver.asha import PersistentASHA

    if cfg.scheduler != "asha":
        return FIFOScheduler()
    return PersistentASHA(
        state_path=cfg.experiment_dir / ASHA_STATE,
        time_attr="training_iteration",
        metric=SCHEDULER_METRIC,
        mode=SCHEDULER_MODE,
        max_t=cfg.epochs,
        grace_period=cfg.grace_period,
        reduction_factor=cfg.reduction_factor,
        samples=cfg.samples if cfg.asha_rule == "paper" else None,
        protect_baseline=has_baseline,
    )


def record_rejection(path: Path, config: dict[str, Any], cost: Cost, reason: str) -> None:
    """Add one over-budget configuration to rejected.csv (rewritten atomically)."""
    row = {"params": cost.params, "macs": cost.macs, "reason": reason}
    row.update({f"config/{k}": v for k, v in sorted(config.items())})
    table = pd.read_csv(path) if path.exists() else pd.DataFrame()
    atomic_write_csv(path, pd.concat([table, pd.DataFrame([row])], ignore_index=True))


MAX_FRONT_EVALUATIONS = 25  # Pareto points scored on the test split (nearest the knee first)


def _score(
    exp: Path,
    row: pd.Series,
    bundle: DatasetBundle,
    payload: dict[str, Any],
    stream: TextIO | None,
) -> dict[str, Any] | None:
    """evaluate_on_test, saying first what it scores (on a CPU a big net takes a minute)."""
    from tuner.train.scoring import evaluate_on_test

    if stream is not None:
        _say(
            stream, f"Scoring trial {int(row['trial_index'])} on {len(bundle.test.y):,} test images"
        )
    return evaluate_on_test(trial_config(exp, row), exp / row["trial_dir"], bundle, payload)


def _trial_record(
    exp: Path,
    row: pd.Series,
    bundle: DatasetBundle,
    payload: dict[str, Any],
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """One trial as best.json describes it, scored on the test split."""
    config = trial_config(exp, row)
    record: dict[str, Any] = {
        "trial_id": row["trial_id"],
        "trial_index": int(row["trial_index"]),
        "is_baseline": bool(row["is_baseline"]),
        "status": row["status"],
        "config": config,
        "val_acc": row["best_val_acc"],
        "val_loss": row["best_val_loss"],
        "best_epoch": int(row["best_epoch"]),
        "epochs_run": int(row["epochs_run"]),
        "params": int(row["params"]),
    }
    scored = _score(exp, row, bundle, payload, stream) or {}
    if scored and scored["kept_epoch"] != record["best_epoch"]:
        # Stopped from outside (--time-budget) after its best epoch but before that epoch's
        # checkpoint (see --checkpoint-interval): the weights scored are the checkpoint's, so
        # the validation figures given are theirs too.
        record.update(
            val_acc=scored["kept_val_acc"], val_loss=scored["kept_val_loss"],
            best_epoch=int(scored["kept_epoch"]), reported_best_epoch=record["best_epoch"],
        )  # fmt: skip
    record.update(scored)
    return record


def _pick(
    cfg: SearchConfig,
    trials: pd.DataFrame,
    bundle: DatasetBundle,
    payload: dict[str, Any],
    stream: TextIO | None = None,
) -> dict[str, Any] | None:
    """Single objective: the highest validation accuracy. Several: the Pareto front of the
    completed trials, each point scored on the test split, and its knee as `the` best."""
    exp = cfg.experiment_dir
    if not cfg.objectives:
        row = pick_best(trials) if not trials.empty else None
        if row is None:
            return None
        best = _trial_record(exp, row, bundle, payload, stream)
        best["selected_by"] = (
            f"highest {SEARCHER_METRIC} (val accuracy of the lowest-val-loss weights)"
        )
        return best
    objectives = parse_objectives(cfg.objectives)
    front = pareto_front(trials, objectives)
    knee = knee_point(front, objectives)
    if knee is None:
        return None
    by_index = front.set_index("trial_index", drop=False)
    # Score the points nearest the knee first, so a huge front cannot stall the search's end.
    positions = list(by_index.index)
    at_knee = positions.index(knee)
    nearest = sorted(range(len(positions)), key=lambda p: abs(p - at_knee))
    scored = {positions[p] for p in nearest[:MAX_FRONT_EVALUATIONS]}
    points = []
    for index in by_index.index:
        row = by_index.loc[index]
        if index in scored:
            point = _trial_record(exp, row, bundle, payload, stream)
        else:
            point = {"trial_index": int(index), "params": int(row["params"])}
        point["objectives"] = values_of(row, objectives)
        points.append(point)
    best = dict(next(p for p in points if p["trial_index"] == knee))
    best["selected_by"] = (
        "knee of the Pareto front over "
        + ", ".join(f"{o.name} ({o.mode})" for o in objectives)
        + ": the point nearest the ideal once each objective is scaled to the front's range"
    )
    best["objectives"] = [o.to_dict() for o in objectives]
    best["pareto_front"] = points
    return best


def write_best(
    cfg: SearchConfig,
    trials: pd.DataFrame,
    bundle: DatasetBundle,
    payload: dict[str, Any],
    stream: TextIO | None = None,
) -> dict[str, Any] | None:
    """Pick the best trial on validation, then (only then) score it on the test split."""
    exp = cfg.experiment_dir
    best = _pick(cfg, trials, bundle, payload, stream)
    if best is None:
        return None
    best["classes"] = list(bundle.classes)
    best["val_images"] = len(bundle.val.y)
    baseline = trials[trials["is_baseline"]]
    if not baseline.empty and baseline.iloc[0]["best_epoch"] >= 1:
        base = baseline.iloc[0]
        scored = _score(exp, base, bundle, payload, stream)
        best["baseline"] = {
            "trial_index": int(base["trial_index"]),
            "val_acc": base["best_val_acc"],
            "test_acc": scored["test_acc"] if scored else None,
            "per_class_acc": scored["per_class_acc"] if scored else None,
            "params": int(base["params"]),
        }
    atomic_write_json(exp / "best.json", best)
    return best


def write_report(experiment_dir: Path, stream: TextIO) -> Path | None:
    """The HTML report, if the analysis package is there; a failure never loses the results."""
    try:
        from analysis import write_report as _write
    except ImportError:
        return None
    try:
        return _write(experiment_dir)
    except Exception as e:  # the tables are already on disk; `tuner report DIR` can retry
        if is_disk_full(e):
            raise
        _say(
            stream,
            f"warning: could not write the report ({e}); run `tuner report {experiment_dir}`",
        )
        return None


def _load(cfg: SearchConfig, stream: TextIO) -> tuple[DatasetBundle, dict[str, Any]]:
    from tuner.driver.trainable import trial_payload

    bundle = load_dataset(
        cfg.dataset, cfg.data_dir, val_count=cfg.val_count, image_size=cfg.image_size,
        progress=lambda m: _say(stream, m),
    )  # fmt: skip
    # On a cluster every node opens the dataset from the shared cache itself; the driver sends
    # each trial only where it is. In-process Ray shares the arrays through the object store.
    from_cache = cfg.address is not None and bundle.cache is not None
    if cfg.address is not None and not from_cache:
        _say(stream, "warning: the dataset could not be cached; the driver sends it to trials")
    if from_cache:
        _say(stream, f"trials open the dataset on their own node from {bundle.cache.cache_dir}")
    return bundle, trial_payload(bundle, from_cache=from_cache)


def dry_run_space(cfg: SearchConfig, bundle: DatasetBundle, stream: TextIO) -> Any:
    """Dry-run a few of the space's configurations on this dataset's shape (ConfigError)."""
    from search_spaces import SpaceError, get_space
    from search_spaces.check import check_space

    try:
        report = check_space(
            get_space(cfg.space), bundle.input_shape, bundle.num_classes, SPACE_CHECK_SAMPLES,
            device="cpu",  # 6x quicker than "meta" here: meta kernels import sympy (~1.4 s)
        )  # fmt: skip
    except SpaceError as e:
        raise ConfigError(str(e)) from e
    _say(
        stream,
        f"Checked {report.samples} samples of {cfg.space} in {report.seconds:.1f} s: "
        f"{report.params[0]:,}-{report.params[1]:,} params",
    )
    return report


def warn_if_short_of_space(cfg: SearchConfig, mean_params: float, stream: TextIO) -> None:
    """One line when --out has less free space than the search will probably write."""
    from tuner.driver.disk import estimate_bytes, free_bytes, mb

    needed = estimate_bytes(cfg.samples, cfg.epochs, mean_params)
    free = free_bytes(cfg.experiment_dir)
    if free < needed:
        _say(
            stream,
            f"warning: {cfg.experiment_dir.parent} has {mb(free)} free and this search may "
            f"write about {mb(needed)} (a checkpoint per trial, tables, report); it stops "
            "cleanly if the disk fills, and `tuner resume` continues once there is room",
        )


def check_budget(cfg: SearchConfig, bundle: DatasetBundle, stream: TextIO) -> None:
    """ConfigError (one line) when no configuration the space samples at this dataset's shape
    fits --max-params / --max-macs."""
    from search_spaces import get_space
    from search_spaces.check import BUDGET_SAMPLES, smallest_cost
    from tuner.train.cost import Budget

    budget = Budget(cfg.max_params, cfg.max_macs)
    space = get_space(cfg.space)
    shape = bundle.input_shape
    fits, params, macs = smallest_cost(space, shape, bundle.num_classes, budget)
    if fits is not None:
        return
    asked = ", ".join(
        f"--max-{name} {value:,}" for name, value in (("params", cfg.max_params),
                                                       ("macs", cfg.max_macs)) if value
    )  # fmt: skip
    raise ConfigError(
        f"no configuration of {cfg.space} at {'x'.join(map(str, shape))} fits {asked}: the "
        f"smallest of {BUDGET_SAMPLES} samples had {params:,} params and {macs:,} MACs; raise "
        "the budget or narrow the space"
    )


class Timings:
    """Seconds spent in each named phase of a search, for provenance.json."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = round(time.perf_counter() - start, 3)


def while_ray_starts(
    cfg: SearchConfig, stream: TextIO, prepare: Callable[[], T], timings: Timings
) -> tuple[T, bool]:
    """Run `prepare` (load the dataset, dry-run the space, write provenance), then import Tune,
    in a thread while this thread imports and starts Ray; together they take about the longer
    of the two instead of the sum (bench/overhead.py, start-up).

    Returns prepare's result and whether Ray was started here. If `prepare` fails, Ray is shut
    down again and its error (a one-line ConfigError or DataError) is raised: nothing of the
    search was written, and no trial ran.
    """
    outcome: dict[str, Any] = {}
    ray_imported = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = prepare()
            # Then Tune's own import (~0.8 s), which building the Tuner would wait for. Only
            # once `ray` itself is imported, so the two threads never import it at once.
            ray_imported.wait()
            import ray.tune  # noqa: F401
        except BaseException as e:  # handed to the main thread below
            outcome["error"] = e

    thread = threading.Thread(target=work, name="tuner-prepare", daemon=True)
    thread.start()
    try:
        with timings("ray_start"):
            try:
                import ray  # only now: input that fails validate() never pays for importing Ray
            finally:
                ray_imported.set()
            we_started = start_ray(cfg, stream)
    finally:
        thread.join()
    if "error" in outcome:
        if we_started:
            ray.shutdown()
        raise outcome["error"]
    return outcome["value"], we_started


def search(cfg: SearchConfig, stream: TextIO | None = None) -> SearchResult:
    """Run one search and return its experiment directory and tables.

    Raises ConfigError / DataError (one-line messages) for bad input. Everything that can be
    checked without data (the options, the space's name, the directories) is checked before
    Ray is even imported; the dataset and the space's dry run are checked while Ray starts,
    and a failure there shuts Ray down again before the error is raised.
    """
    stream = stream or sys.stdout
    cfg.validate()
    timings = Timings()
    loaded: tuple[DatasetBundle, dict[str, Any]] | None = None
    if cfg.max_params is not None or cfg.max_macs is not None:
        # Priced before Ray starts, so that an impossible budget costs a second and exit 2,
        # not Ray's start and 200 refused proposals inside Tune. The dataset is loaded first
        # (for its shape) instead of beside Ray's start: ~0.1 s from the cache.
        with timings("dataset"):
            loaded = _load(cfg, stream)
        with timings("budget_check"):
            check_budget(cfg, loaded[0], stream)

    def prepare() -> tuple[DatasetBundle, dict[str, Any], dict[str, Any], Any]:
        if loaded is None:
            with timings("dataset"):
                bundle, payload = _load(cfg, stream)
        else:
            bundle, payload = loaded
        with timings("space_check"):
            checked = dry_run_space(cfg, bundle, stream)
        warn_if_short_of_space(cfg, checked.mean_params, stream)
        with timings("provenance"):
            exp = cfg.experiment_dir
            exp.mkdir(parents=True)
            record = provenance.collect(cfg.to_dict(), cfg.seed)
            record["dataset"] = {
                "name": bundle.name, "source": bundle.source, "classes": list(bundle.classes),
                "input_shape": list(bundle.input_shape), "train": len(bundle.train.y),
                "val": len(bundle.val.y), "test": len(bundle.test.y),
            }  # fmt: skip
            record["started"] = datetime.now(timezone.utc).isoformat()
            atomic_write_json(exp / "provenance.json", record)
        with timings("study_storage"):
            storage = open_study_storage(cfg)
        return bundle, payload, record, storage

    (bundle, payload, record, storage), we_started = while_ray_starts(cfg, stream, prepare, timings)
    _say(
        stream,
        f"Searching {cfg.space} on {bundle.name} {bundle.input_shape} "
        f"({len(bundle.train.y)} train / {len(bundle.val.y)} val / {len(bundle.test.y)} test): "
        f"{cfg.samples} trials x {cfg.epochs} epochs, {cfg.searcher.upper()} + "
        f"{cfg.scheduler.upper()}, seed {cfg.seed}",
    )
    return _run(cfg, bundle, payload, record, stream, restore=False, we_started=we_started,
                timings=timings, storage=storage)  # fmt: skip


def resume(
    experiment_dir: str | Path,
    stream: TextIO | None = None,
    max_failures: int | None = None,
    retry_errored: bool = False,
    time_budget: float | None = None,
) -> SearchResult:
    """Continue an interrupted search (driver killed, Ctrl-C, machine lost) where it stopped.

    Finished trials stay as they are; unfinished ones continue from their last checkpoint;
    trials not yet started are started, up to the search's --samples. retry_errored: trials
    that ended in error are run again from their last checkpoint. Only resume experiment
    directories you trust: Ray's tuner.pkl inside is a pickle.
    """
    from tuner.train.config import ConfigError

    stream = stream or sys.stdout
    exp = Path(experiment_dir).expanduser().resolve()
    for needed in ("provenance.json", "tuner.pkl"):
        if not (exp / needed).is_file():
            raise ConfigError(f"{exp} is not a search experiment directory (no {needed})")
    refuse_writable_by_others(exp)
    record = json.loads((exp / "provenance.json").read_text())
    fields = set(SearchConfig.__dataclass_fields__)
    cfg = SearchConfig(**{k: v for k, v in record["config"].items() if k in fields})
    cfg.out, cfg.name = str(exp.parent), exp.name  # the directory may have moved
    retry = errored_trials(exp) if retry_errored else set()
    record["retry_errored"] = sorted(retry)
    if max_failures is not None:
        cfg.max_failures = max_failures
    # A --time-budget is for one run: the resume has its own, or none.
    cfg.time_budget = time_budget
    timings = Timings()

    def prepare() -> tuple[DatasetBundle, dict[str, Any]]:
        with timings("dataset"):
            return _load(cfg, stream)

    (bundle, payload), we_started = while_ray_starts(cfg, stream, prepare, timings)
    record.setdefault("resumed", []).append(datetime.now(timezone.utc).isoformat())
    atomic_write_json(exp / "provenance.json", record)
    _say(stream, f"Resuming {exp}")
    return _run(cfg, bundle, payload, record, stream, restore=True, we_started=we_started,
                timings=timings, retry=retry)  # fmt: skip


def _private_group(gid: int) -> bool:
    """A user's own group (Debian's umask 002 setups): named after the user, no other members."""
    import grp
    import pwd

    try:
        group = grp.getgrgid(gid)
        return not group.gr_mem and group.gr_name == pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return False


def refuse_writable_by_others(exp: Path) -> None:
    """ConfigError unless only its owner can change what a resume unpickles.

    tuner.pkl, searcher-state-*.pkl and search_gen_state-*.json are pickles, and loading a
    pickle runs code: anyone who can write them (or replace them, through the directory) could
    run code as whoever resumes. So the directory and those files must be writable by their
    owner alone (or the owner's private group), and owned by the user resuming (or root).
    """
    me = os.geteuid()
    pickles = [exp / "tuner.pkl", *exp.glob("searcher-state-*.pkl")]
    backups = exp.glob(".tuner-state-backup/*")  # copied back over cut-short state files
    for path in [exp, *pickles, *exp.glob("search_gen_state-*"), *backups]:
        st = path.stat()
        if st.st_mode & 0o002 or (st.st_mode & 0o020 and not _private_group(st.st_gid)):
            raise ConfigError(
                f"refusing to resume {exp}: {path.name} is writable by other users "
                f"(mode {st.st_mode & 0o777:o}) and a resume loads the pickles inside, which "
                f"runs code; if you trust it, `chmod -R go-w {exp}`"
            )
        if st.st_uid not in (me, 0):
            raise ConfigError(
                f"refusing to resume {exp}: {path.name} belongs to another user (uid "
                f"{st.st_uid}) and a resume loads the pickles inside, which runs code; copy "
                "the experiment to a directory of your own first"
            )


def _run(
    cfg: SearchConfig,
    bundle: DatasetBundle,
    payload: dict[str, Any],
    record: dict[str, Any],
    stream: TextIO,
    restore: bool,
    we_started: bool,
    timings: Timings,
    storage: Any = None,
    retry: set[str] | None = None,
) -> SearchResult:
    """Fit (or restore and fit), then the tables, best.json and the report. `storage`: the
    study's database when search() already opened it; `retry`: errored trials a resume runs
    again. Ctrl-C: see tuner/driver/interrupt.py."""
    from tuner.driver.interrupt import Interrupts

    plan = functools.partial(interrupt_plan, cfg, bundle)
    with Interrupts(stream, plan, cfg.time_budget) as interrupts:
        return _fit_and_write(
            cfg, bundle, payload, record, stream, restore, we_started, timings, storage,
            interrupts, retry or set(),
        )  # fmt: skip


def interrupt_plan(cfg: SearchConfig, bundle: DatasetBundle, in_fit: bool) -> str:
    """What the first Ctrl-C leads to, and about how long the test scoring takes: the best
    trial's validation pass, scaled from its validation images to the test split's."""
    from search_spaces import get_space
    from tuner.driver import progress

    shown = progress.ACTIVE
    steps = []
    if in_fit:
        running = len(shown.running) if shown else 0
        steps.append(
            f"stopping the {running} running trial(s) as their current epoch ends (each keeps "
            "its last checkpoint)"
            if running
            else "stopping the search"
        )
    tests = len(bundle.test.y)
    if cfg.objectives:
        scoring = f"scoring up to {MAX_FRONT_EVALUATIONS} Pareto-front trials"
    elif shown and shown.best:
        scoring = f"scoring trial {shown.best[1]}, the best so far,"
    else:
        scoring = "scoring the best trial"
    scoring += f" on {tests:,} test images"
    if get_space(cfg.space).baseline is not None:
        scoring += " (and the lab baseline)"
    if shown and shown.best and not cfg.objectives:
        val_seconds = shown.kept_result(shown.best[1]).get("val_time_s")
        if val_seconds and len(bundle.val.y):
            estimate = float(val_seconds) * tests / len(bundle.val.y)
            scoring += f", about {max(1, round(estimate)):,} s"
    steps += [scoring, "writing the report"]
    text = ", then ".join(steps) + "."
    return text[0].upper() + text[1:]


def _fit_and_write(
    cfg: SearchConfig,
    bundle: DatasetBundle,
    payload: dict[str, Any],
    record: dict[str, Any],
    stream: TextIO,
    restore: bool,
    we_started: bool,
    timings: Timings,
    storage: Any,
    interrupts: Any,
    retry: set[str],
) -> SearchResult:
    import ray
    from ray import tune

    started = time.time()
    exp = cfg.experiment_dir
    try:
        check_schedulable(cfg)
        if restore:
            for note in repair_state(exp):
                _say(stream, note)
            prepare_search_state(exp, retry)
            settled = settle_finished_trials(exp, study_name(record, cfg))
            forgotten = forget_missing_checkpoints(exp)
            told = {note.split(":", 1)[0] for note in forgotten}
            others = [n for n in checkpoint_notes(exp) if n.split(":", 1)[0] not in told]
            for note in forgotten + others:
                _say(stream, note)
            if settled:
                _say(stream, f"{settled} trial(s) had finished just before the interruption")
            if retry:
                reopen_trials(exp, study_name(record, cfg), retry)
                _say(stream, f"Retrying {len(retry)} errored trial(s) from their last checkpoint")
            with restoring_searcher(exp / OPTUNA_DB, retry):
                tuner = tune.Tuner.restore(
                    str(exp), trainable=make_trainable(cfg, payload), resume_unfinished=True,
                    resume_errored=bool(retry),
                )  # fmt: skip
        else:
            with timings("build_tuner"):
                tuner = build_tuner(cfg, bundle, payload, stream, storage)
        if not cfg.verbose:  # a full disk: one line from us, not Ray's tracebacks
            from tuner.driver.guards import quiet_disk_full_logs

            quiet_disk_full_logs()
        interrupts.in_fit = True
        memory_kills = 0
        with timings("fit"):
            while True:
                try:
                    # Tune unpickles the searcher's saved state inside fit() as well.
                    with restoring_searcher(exp / OPTUNA_DB, retry):
                        tuner.fit()
                    break
                except Exception as e:
                    # Ray's memory monitor killed a trial's worker. Tune 2.60 does not count
                    # that as a trial failure: its actor manager raises "Caught unexpected
                    # exception" and the whole fit() ends. The experiment is as a killed
                    # driver leaves it, so it is restored here and carries on; the killed
                    # trial continues from its last checkpoint, as a retry would.
                    if not killed_by_memory_monitor(e) or memory_kills >= max(1, cfg.max_failures):
                        raise
                    memory_kills += 1
                    _say(stream, f"Ray's memory monitor killed a trial (node memory above its "
                         "threshold); the search continues from its last saved state "
                         f"({memory_kills}/{max(1, cfg.max_failures)})")  # fmt: skip
                    repair_state(exp)
                    prepare_search_state(exp)
                    settle_finished_trials(exp, study_name(record, cfg))
                    forget_missing_checkpoints(exp)
                    with restoring_searcher(exp / OPTUNA_DB, set()):
                        tuner = tune.Tuner.restore(
                            str(exp), trainable=make_trainable(cfg, payload),
                            resume_unfinished=True,
                        )  # fmt: skip
        interrupts.in_fit = False
        if interrupts.stopping_since is not None:  # the wait was for each trial's epoch to end
            waited = time.monotonic() - interrupts.stopping_since
            _say(stream, f"Trials stopped ({waited:.0f} s); writing what the search has")
        if memory_kills:
            record.setdefault("memory_monitor_restarts", []).append(memory_kills)
    except Exception as e:
        # Optuna's StorageInternalError on a full SQLite journal; or, once the disk guard has
        # stopped the search, Ray choking on the error files the full disk cut short.
        if is_disk_full(e) or interrupts.stop_kind == "disk":
            raise disk_full_error(exp) from None
        raise
    finally:
        if we_started:
            with timings("ray_shutdown"):
                ray.shutdown()
    from tuner.driver import progress

    shown = progress.ACTIVE
    if shown is not None and shown.final_status:
        record_errors(exp, {t for t, status in shown.final_status.items() if status == "ERROR"})
    if shown is not None:  # how many trials really ran at once (--concurrency, resources)
        record.setdefault("peak_concurrent_trials", []).append(shown.peak_running)
    try:
        result = _write_results(
            cfg, bundle, payload, record, stream, timings, started, interrupts.stop_kind
        )
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(exp) from None
        raise
    if interrupts.stop_kind == "disk":
        result.stop_reason = interrupts.stop_reason
    elif interrupts.stop_kind == "time-budget":
        result.stopped_by_clock = True
    return result


@contextlib.contextmanager
def restoring_searcher(db: Path, retry: set[str]) -> Iterator[None]:
    """While Tune unpickles a searcher (tuner.pkl in Tuner.restore, searcher-state-*.pkl in
    fit): open its study at `db`, where the experiment is now, and listen again to the `retry`
    trials. Set only for that span: a process may run several searches (tests, notebooks)."""
    from tuner.driver import searcher

    before = searcher.RESTORE_DB, searcher.RETRY_TUNE_IDS
    searcher.RESTORE_DB, searcher.RETRY_TUNE_IDS = db, set(retry)
    try:
        yield
    finally:
        searcher.RESTORE_DB, searcher.RETRY_TUNE_IDS = before


def killed_by_memory_monitor(error: BaseException | None) -> bool:
    """A Ray OutOfMemoryError (its memory monitor killed a worker) anywhere in the chain."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__name__ == "OutOfMemoryError" or (
            "killed due to the node running low on memory" in str(error)
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full_error(exp: Path) -> DiskFullError:
    from tuner.driver.disk import MARGIN_BYTES, REPORT_BYTES, free_bytes, mb

    return DiskFullError(
        f"no space left under {exp} ({mb(free_bytes(exp))} free): the search stopped and "
        f"kept what it had; free at least {mb(REPORT_BYTES + MARGIN_BYTES)} more and run "
        f"`tuner resume {exp}`"
    )


def _write_results(
    cfg: SearchConfig,
    bundle: DatasetBundle,
    payload: dict[str, Any],
    record: dict[str, Any],
    stream: TextIO,
    timings: Timings,
    started: float,
    stopped_by: str | None = None,
) -> SearchResult:
    """After fit: the tables, the study settled, best.json (test scoring), the report,
    provenance.json and the summary. stopped_by: "time-budget" or "disk" when the search
    stopped itself."""
    from search_spaces import get_space

    exp = cfg.experiment_dir

    states = ray_trial_states(exp)
    unfinished = {tid for tid, s in states.items() if s["status"] not in ("TERMINATED", "ERROR")}
    has_baseline = get_space(cfg.space).baseline is not None
    damage = Damage()
    from tuner.driver import progress

    seen = progress.ACTIVE.failures if progress.ACTIVE is not None else None
    trials, epochs = collect_tables(
        exp, cfg.epochs, baseline_index=0 if has_baseline else None, running=unfinished,
        damage=damage, failures=seen,
    )  # fmt: skip
    if damage.summary():
        _say(stream, f"warning: {damage.summary()}")
    atomic_write_csv(exp / "trials.csv", trials)
    atomic_write_csv(exp / "epochs.csv", epochs)
    # Trials still to run: those Tune left unfinished, and those never asked for (a stop came
    # before the searcher had proposed all --samples of them).
    finished = int((trials["status"] != "running").sum()) if not trials.empty else 0
    left = max(cfg.samples - finished, len(unfinished))
    if not left:
        reconcile_study(exp, study_name(record, cfg))
    with timings("test_evaluation"):
        best = write_best(cfg, trials, bundle, payload, stream)
    record["finished"] = None if left else datetime.now(timezone.utc).isoformat()
    record["seconds"] = round(record.get("seconds", 0) + time.time() - started, 1)
    record["outcomes"] = trials["status"].value_counts().to_dict() if not trials.empty else {}
    _say(stream, "Writing the report")
    with timings("report"):
        report = write_report(exp, stream)
    # Where the time went, per phase (a resume adds its own entry): bench/overhead.py reads it.
    record.setdefault("timings", []).append(timings.seconds)
    atomic_write_json(exp / "provenance.json", record)
    _print_summary(stream, exp, trials, best, report)
    errors = int((trials["status"] == "error").sum()) if not trials.empty else 0
    if errors and not left:
        _say(stream, f"{errors} trial(s) ended in error (see trials.csv); to run them again from "
             f"their last checkpoint: tuner resume {exp} --retry-errored")  # fmt: skip
    if left:
        started_ids = set(trials["trial_id"]) if not trials.empty else set()
        begun = len(unfinished & started_ids)
        why = "Stopped by --time-budget" if stopped_by == "time-budget" else "Interrupted"
        _say(
            stream,
            f"{why} with {left} of {cfg.samples} trials still to run ({begun} of them "
            "started); continue with:",
        )
        _say(stream, f"  tuner resume {exp}")
    return SearchResult(exp, trials, epochs, best, report, interrupted=bool(left))


def checkpoint_notes(exp: Path) -> list[str]:
    """One line for each unfinished trial whose newest checkpoint cannot be read (cut short by
    a crash or a full disk, or deleted): where the resume continues it from instead."""
    from tuner.train.checkpoints import checkpoint_dirs, describe_fallback, newest_readable

    notes = []
    for trial_id, state in ray_trial_states(exp).items():
        if state["status"] in ("TERMINATED",):
            continue
        for trial_dir in exp.glob(f"trial_*_{trial_id}"):
            if not checkpoint_dirs(trial_dir) and not (trial_dir / "result.json").exists():
                continue  # never started: nothing to continue from
            chosen, _, skipped = newest_readable(trial_dir)
            note = describe_fallback(trial_dir.name, chosen, skipped)
            if chosen is None and not skipped:
                note = f"{trial_dir.name}: no checkpoint left; it starts again from epoch 1"
            if note:
                notes.append(note)
    return notes


def study_name(record: dict[str, Any], cfg: SearchConfig) -> str:
    """The Optuna study's name: the experiment's name when it was created. A moved or copied
    experiment directory may have another name now; the study inside optuna.db keeps its own."""
    return str((record.get("config") or {}).get("name") or cfg.name)


def _fmt(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_summary(
    stream: TextIO, exp: Path, trials: pd.DataFrame, best: dict | None, report: Path | None
) -> None:
    counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
    counts.pop("running", None)  # unfinished trials are counted once, on the line that follows
    _say(stream, "")
    _say(
        stream, "Outcomes: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none")
    )
    if best and best.get("pareto_front"):
        _say(stream, f"Pareto front ({len(best['pareto_front'])} trials, best first):")
        for point in best["pareto_front"]:
            values = ", ".join(f"{k} {_fmt(v)}" for k, v in point["objectives"].items())
            test = point.get("test_acc")
            test_text = f", test acc {test:.4f}" if test is not None else ""
            knee = "  <- knee" if point["trial_index"] == best["trial_index"] else ""
            _say(stream, f"  trial {point['trial_index']}: {values}{test_text}{knee}")
    if best:
        test = best.get("test_acc")
        test_text = f", test acc {test:.4f}" if test is not None and math.isfinite(test) else ""
        _say(
            stream,
            f"Best: trial {best['trial_index']} val acc {best['val_acc']:.4f}{test_text}, "
            f"{best['params']:,} params",
        )
        base = best.get("baseline")
        if base and base.get("val_acc") is not None:
            _say(
                stream, f"Lab baseline (trial {base['trial_index']}): val acc {base['val_acc']:.4f}"
            )
    _say(stream, f"Results: {exp}")
    if report:
        _say(stream, f"Report:  {report}")
