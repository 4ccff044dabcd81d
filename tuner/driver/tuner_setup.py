"""Wiring one Tune experiment: the trainable with its resources, the Optuna searcher on the
study's database, ASHA or FIFO, the callbacks; and the searcher's restore hooks."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tuner.config.objectives import (
    SCHEDULER_METRIC,
    SCHEDULER_MODE,
    SEARCHER_METRIC,
    SEARCHER_MODE,
    parse_objectives,
)
from tuner.config.search_config import SearchConfig
from tuner.data import MIRROR_SENSITIVE, DatasetBundle
from tuner.driver.ray_runtime import let_trials_use_prestarted_workers
from tuner.experiment import (
    ASHA_STATE_JSON,
    REJECTED_CSV,
    epochs_trained,
    ray_trial_states,
    record_rejection,
    rung_epochs,
    trial_dir_name,
    trial_dirs,
    trial_id_of,
)
from tuner.stages.console import say
from tuner.train.trial_data import TrialData

if TYPE_CHECKING:
    from search_spaces import SearchSpace
    from tuner.stages.torch_work import TorchWork


def fixed_params(cfg: SearchConfig, bundle: DatasetBundle) -> dict[str, Any]:
    """Constants merged into every trial's config (the space's samples go on top)."""
    params: dict[str, Any] = {"epochs": cfg.epochs}
    if bundle.name in MIRROR_SENSITIVE:
        params["hflip"] = False  # a mirrored digit is a different glyph
    return params


def scheduler_stop_epochs(cfg: SearchConfig) -> frozenset[int]:
    """The epochs at which ASHA may stop a trial: its rungs, grace_period x rf^k < epochs."""
    if cfg.scheduler != "asha":
        return frozenset()
    return frozenset(rung_epochs(cfg.grace, cfg.reduction_factor, cfg.epochs))


def make_trainable(
    cfg: SearchConfig,
    trial_data: TrialData,
    function: Any = None,
    stop_epochs: frozenset[int] | None = None,
    experiment_dir: Path | None = None,
) -> Any:
    """The trainable with its data and resources. function: the Tune function (default the
    search's train_trial); stop_epochs: where a scheduler may stop a trial (default ASHA's
    rungs), where a checkpoint is always written; experiment_dir: the Tune experiment's
    directory (default the search's), where a trial looks for checkpoints Tune never heard of."""
    from ray import tune

    from tuner.driver.trainable import train_trial
    from tuner.train.checkpoints import CheckpointPolicy

    if cfg.address is None:
        let_trials_use_prestarted_workers()

    threads = max(1, int(cfg.cpus_per_trial))
    stops = scheduler_stop_epochs(cfg) if stop_epochs is None else stop_epochs
    checkpoints = CheckpointPolicy(cfg.checkpoint_interval, stops)
    trainable = tune.with_parameters(  # the dataset goes into the object store once, here
        function or train_trial, data=trial_data, threads=threads, gpu_share=cfg.gpus_per_trial,
        checkpoints=checkpoints, compile_backend=cfg.compile,
        experiment_dir=str(experiment_dir or cfg.experiment_dir),
    )  # fmt: skip
    if cfg.gpus_per_trial == "auto":
        return tune.with_resources(trainable, auto_gpu_shares(cfg, trial_data))
    return tune.with_resources(
        trainable, {"cpu": cfg.cpus_per_trial, "gpu": float(cfg.gpus_per_trial)}
    )


def auto_gpu_shares(cfg: SearchConfig, trial_data: TrialData) -> Any:
    """--gpus-per-trial auto: each trial's request from its configuration's estimated memory
    (tuner/driver/gpu_packing.py)."""
    from tuner.driver.gpu_packing import AutoGpuShares
    from tuner.train.memory import gpu_memory_bytes

    data = trial_data.opened()  # memory-mapped when only the cache's place travelled
    train, val = data.splits()
    estimate = functools.partial(
        _estimated_peak_of_run, input_shape=data.input_shape, num_classes=data.num_classes,
        images=(len(train.y), len(val.y)),
    )  # fmt: skip
    return AutoGpuShares(estimate, gpu_memory_bytes(cfg.gpu_memory), cfg.cpus_per_trial)


def _estimated_peak_of_run(config: dict[str, Any], **shape: Any) -> int:
    """A search trial's config is flat; a confirm run's holds it under "confirm"."""
    from tuner.train.memory import estimated_peak

    flat = config["confirm"]["config"] if "confirm" in config else config
    return estimated_peak(flat, **shape)


def open_study_storage(cfg: SearchConfig) -> Any:
    """The Optuna study's storage: optuna.journal in the experiment directory (optuna.db in an
    older one's), or the --storage server (~0.8 s of SQLAlchemy and Alembic the first time, so
    search() opens it while Ray starts)."""
    from tuner.driver.study_storage import open_storage

    return open_storage(cfg.study_url)


def build_tuner(
    cfg: SearchConfig,
    space: SearchSpace,
    bundle: DatasetBundle,
    trial_data: TrialData,
    stream: TextIO,
    storage: Any = None,
    work: TorchWork | None = None,
) -> Any:
    """The Tuner of a new search. work: where a size budget prices proposals (the run's
    torch helper; None: a helper of the pricer's own)."""
    import optuna
    from ray import tune

    from search_spaces.fit_to_run import fit_start_points
    from tuner.driver.fence.loggers import ProgressCsvLogger, ResultJsonLogger
    from tuner.driver.fence.searcher import TruthfulOptunaSearch, make_sampler
    from tuner.driver.guards import ClockGuard, DiskGuard, StateBackup
    from tuner.driver.interrupt import time_budget_left
    from tuner.driver.live_report import LiveReport
    from tuner.driver.newest_checkpoint import NewestCheckpointOnly
    from tuner.driver.progress import SearchProgress
    from tuner.driver.tensorboard import TensorBoardLogger
    from tuner.stages.torch_work import Pricer
    from tuner.train.budget import Budget

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    side = bundle.input_shape[1]
    points, notes = space.fit_points(side)
    budget = Budget(cfg.max_params, cfg.max_macs)
    pricer = Pricer(work, bundle.input_shape, bundle.num_classes)
    points, fitted = fit_start_points(
        space, points, side, train_images=len(bundle.train.y), epochs=cfg.epochs,
        budget=budget, prices=pricer.many,
    )  # fmt: skip
    for note in notes + fitted:
        say(stream, note)
    objectives = parse_objectives(cfg.objectives) if cfg.objectives else None
    # Optuna's TPE is multi-objective (MOTPE) when the study has several directions.
    sampler = make_sampler(cfg.searcher, cfg.seed)
    storage = storage if storage is not None else open_study_storage(cfg)
    searcher = TruthfulOptunaSearch(
        epoch_budget=cfg.epochs,
        total_epochs=cfg.total_epochs if cfg.spends_savings else None,
        space=space.for_input(side),
        metric=[o.metric for o in objectives] if objectives else SEARCHER_METRIC,
        mode=[o.mode for o in objectives] if objectives else SEARCHER_MODE,
        points_to_evaluate=points,
        sampler=sampler,
        storage=storage,
        study_name=cfg.name,
        budget=budget,
        pricer=pricer,
        rejections=functools.partial(record_rejection, cfg.experiment_dir / REJECTED_CSV),
    )
    # The first trials are known points when the space has them: the lab's baseline, judged by
    # Ray's rule (it passes a rung it reaches first), and start points such as resnet_cnn's
    # recipe or seed_cnn's quarter-width network, never stopped. Under the paper rule the first
    # trials at a rung are stopped, and on 11,000 CIFAR-10 images (--space resnet_cnn --max-macs
    # 20M --samples 16 --epochs 5 --seed 0) that stopped the narrowed recipe at epoch 3 at 51 %
    # validation; protected, it ran to epoch 5 and reached 62 %. seed_cnn's start point, trial
    # 1, was stopped the same way at epoch 3 (52.7 %) under --time-budget 12m; trained to epoch
    # 10 it scores 72 % held out. Ray's rule still stopped a start point at its first rung in
    # some replayed seeds (fence/asha.py), so start points are now never stopped.
    scheduler = make_scheduler(cfg, known_points=len(points or []),
                               baseline_points=1 if space.baseline else 0)  # fmt: skip

    return tune.Tuner(
        make_trainable(cfg, trial_data),
        param_space=fixed_params(cfg, bundle),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=cfg.trial_cap,  # the searcher ends it sooner: its epoch budget spent
            max_concurrent_trials=cfg.concurrency,
            trial_dirname_creator=trial_dir_name,
            # One worker process serves trial after trial (same resources): a new trial skips
            # starting a process and importing torch, ~3 s each (bench/overhead.py).
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=str(cfg.experiment_dir.parent),
            # No num_to_keep: with one, Tune forces a save of its whole state at every trial
            # checkpoint. NewestCheckpointOnly keeps the newest instead (newest_checkpoint.py).
            checkpoint_config=tune.CheckpointConfig(),
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            verbose=0,
            callbacks=[
                SearchProgress(
                    cfg.samples,
                    cfg.epochs,
                    stream=stream,
                    budget_left=time_budget_left,
                    spends_savings=cfg.spends_savings,
                ),  # fmt: skip
                NewestCheckpointOnly(),  # each trial's older checkpoints deleted
                DiskGuard(cfg.experiment_dir),  # stops cleanly before the disk is full
                # --time-budget, leaving the unfinished trials to `tuner resume` and the end
                # of the budget to the confirm stage
                ClockGuard(leave_for_confirm=True),
                StateBackup(cfg.experiment_dir),  # whole copies of Tune's state files
                ResultJsonLogger(),  # result.json: what tuner.experiment reads
                ProgressCsvLogger(),  # progress.csv
                TensorBoardLogger(),  # events.out.tfevents.*: tensorboard --logdir DIR
                LiveReport(
                    cfg.experiment_dir,
                    cfg.samples,
                    cfg.report_every,
                    epochs=cfg.epochs if cfg.spends_savings else None,
                ),  # fmt: skip
                *_mlflow(cfg),
            ],
        ),
    )


def check_mlflow(uri: str) -> None:
    """ConfigError (one line) unless MLflow answers at `uri`, before anything starts.

    A file:// URI is a file store, which MLflow 3 keeps only in maintenance mode and refuses
    unless MLFLOW_ALLOW_FILE_STORE is set: asked for by name here, it is allowed (for this
    process and the callback's).
    """
    import os

    from tuner.errors import ConfigError

    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    # MLflow's HTTP client retries for minutes by default: this check asks once, for 10 s.
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    before = {k: os.environ.get(k) for k in quick}
    os.environ.update(quick)
    try:
        import mlflow

        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:  # a refused store, an unreachable server, a bad URI: one line
        detail = " ".join(str(e).split())[:300]
        raise ConfigError(f"--mlflow {uri}: MLflow does not answer there: {detail}") from None
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _mlflow(cfg: SearchConfig) -> list[Any]:
    """Ray Tune's own MLflow callback, with --mlflow: a run per trial in the MLflow experiment
    named after this search, its config as params and every epoch's metrics."""
    if not cfg.mlflow:
        return []
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    return [MLflowLoggerCallback(tracking_uri=cfg.mlflow, experiment_name=cfg.name,
                                 save_artifact=False)]  # fmt: skip


def expected_trials(cfg: SearchConfig) -> int:
    """The trials cfg's budget is expected to pay for under ASHA (tuner.driver.fence.asha)."""
    from tuner.driver.fence.asha import expected_trials as expected

    return expected(cfg.samples, cfg.epochs, cfg.grace, cfg.reduction_factor,
                    cfg.trial_cap)  # fmt: skip


def make_scheduler(cfg: SearchConfig, known_points: int, baseline_points: int = 0) -> Any:
    """ASHA (rungs kept in asha_state.json, the `--asha-rule` in force) or FIFO. known_points:
    the first trials, the space's baseline (the first `baseline_points`) and start points: the
    baseline is judged by Ray's rule, the start points are never stopped."""
    from ray.tune.schedulers import FIFOScheduler

    from tuner.driver.fence.asha import TIME_ATTR, PersistentASHA

    if cfg.scheduler != "asha":
        return FIFOScheduler()
    return PersistentASHA(
        state_path=cfg.experiment_dir / ASHA_STATE_JSON,
        # The trial's own epoch, not Tune's count of its reports: a trial restored from a
        # checkpoint newer than Tune's record (a kill between the two, a Ctrl-C in its first
        # epoch) carries on at epoch 5 while Tune counts from the record's 3, and was judged
        # at the wrong rung.
        time_attr=TIME_ATTR,
        metric=SCHEDULER_METRIC,
        mode=SCHEDULER_MODE,
        max_t=cfg.epochs,
        grace_period=cfg.grace,
        reduction_factor=cfg.reduction_factor,
        samples=expected_trials(cfg) if cfg.asha_rule == "paper" else None,
        known_points=known_points,
        baseline_points=baseline_points,
    )


@contextlib.contextmanager
def restoring_searcher(cfg: SearchConfig, retry: set[str], raised: bool = False) -> Iterator[None]:
    """While Tune unpickles a searcher (tuner.pkl in Tuner.restore, searcher-state-*.pkl in
    fit): open its study in cfg's experiment directory, where the experiment is now, listen
    again to the `retry` trials, and give it cfg's epoch budget. `raised`: `tuner resume
    --samples` raised cfg.samples. All of it through one RestoreContext (restore_context.py)."""
    from tuner.driver.fence import internals
    from tuner.driver.restore_context import RestoreContext, restoring

    if raised:
        internals.install_sample_raise()
    known = frozenset(ray_trial_states(cfg.experiment_dir))
    trained = {trial_id_of(d): epochs_trained(d) for d in trial_dirs(cfg.experiment_dir)
               if trial_id_of(d) in known}  # fmt: skip
    context = RestoreContext(
        study_url=cfg.study_url,
        retry_tune_ids=frozenset(retry),
        known_tune_ids=known or None,
        total_epochs=cfg.total_epochs if cfg.spends_savings else None,
        raised_samples=cfg.samples if raised else None,
        raised_trial_cap=cfg.trial_cap if raised else None,
        epochs_trained=trained,
    )
    with restoring(context):
        yield
