"""`search(SearchConfig)`: one architecture and hyperparameter search, end to end, and
`resume(DIR)`, which continues an interrupted one. Each reads top to bottom:

    SearchConfig (validated) -> preflight: dataset (decoded once, cached), the space's dry
    run, the size budget -> Ray (in-process on loopback, or --address) -> fit: Tuner(trainable,
    TruthfulOptunaSearch, PersistentASHA | FIFO) -> finish: trials.csv, epochs.csv, best.json
    (test scoring), report.html, provenance.json, the summary

The CLI (tuner/cli.py) is a thin layer over these two functions.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO, cast

from tuner.config.search_config import SearchConfig, claim_experiment_dir
from tuner.data import DatasetBundle
from tuner.driver import warm_start
from tuner.driver.fence.recovery import (
    errored_trials,
    record_errors,
    refuse_without_tune_state,
)
from tuner.driver.finish import SearchResult, write_results, write_tables
from tuner.driver.fit import disk_full_error, fit
from tuner.driver.interrupt import interrupt_plan
from tuner.driver.ray_runtime import check_schedulable, while_ray_starts
from tuner.driver.study_storage import check_storage
from tuner.driver.tuner_setup import check_mlflow, open_study_storage
from tuner.errors import ConfigError, DataError
from tuner.experiment import PROVENANCE_JSON, SEARCH_TOML, TUNER_PKL
from tuner.experiment.records import ProvenanceRecord
from tuner.io import atomic_write_text
from tuner.stages import provenance
from tuner.stages.console import say
from tuner.stages.disk import is_disk_full
from tuner.stages.preflight import (
    check_budget,
    dry_run_space,
    load_data,
    refuse_writable_by_others,
    space_for_run,
    warn_if_short_of_space,
)
from tuner.stages.provenance import Timings, save_record
from tuner.stages.search_run import SearchRun
from tuner.stages.torch_work import TorchHelper, gpus
from tuner.train.trial_data import TrialData

__all__ = ["SearchResult", "resume", "search"]


def search(cfg: SearchConfig, stream: TextIO | None = None) -> SearchResult:
    """Run one search and return its experiment directory and tables.

    Raises ConfigError / DataError (one-line messages) for bad input. Everything that can be
    checked without data (the options, the space's name, the directories) is checked before
    Ray is even imported; the dataset and the space's dry run are checked while Ray starts,
    and a failure there shuts Ray down again before the error is raised.
    """
    stream = stream or sys.stdout
    cfg = cfg.named(datetime.now())  # the run starts: a config without a --name gets its name
    cfg.validate()
    space = cfg.search_space()  # looked up once: every stage below is handed it
    if cfg.warm_start:  # the rest of its checks need the dataset's shape: prepare() below
        warm_start.check_source(cfg.warm_start)
    if cfg.mlflow:
        check_mlflow(cfg.mlflow)
    if cfg.storage:  # the server answers, takes the credentials, and has no study of this name
        check_storage(cfg.storage, study_name=cfg.name)
    timings = Timings()
    # The dry run, the pricing and the scoring run in a helper process: the driver never
    # imports torch (tuner/stages/torch_work.py). Closed after the preflight unless a size
    # budget prices the searcher's proposals, and again after the scoring.
    work = TorchHelper()
    try:
        return _search(cfg, space, stream, timings, work)
    finally:
        work.close()


def _search(
    cfg: SearchConfig, space: Any, stream: TextIO, timings: Timings, work: TorchHelper
) -> SearchResult:
    loaded: tuple[DatasetBundle, TrialData] | None = None
    budgeted = cfg.max_params is not None or cfg.max_macs is not None
    if budgeted:
        # Priced before Ray starts, so that an impossible budget costs a second and exit 2,
        # not Ray's start and 200 refused proposals inside Tune. The dataset is loaded first
        # (for its shape) instead of beside Ray's start: ~0.1 s from the cache.
        with timings("dataset"):
            loaded = load_data(cfg, stream)
        with timings("budget_check"):
            check_budget(cfg, space, loaded[0], work)
    # without the lab's baseline under --no-baseline or over the size budget (priced above)
    space, baseline_note = space_for_run(cfg, space, loaded[0] if loaded else None, work)
    if baseline_note:
        say(stream, baseline_note)

    claimed: list[Path] = []  # the experiment directory, once prepare() has made it

    def prepare() -> tuple[DatasetBundle, TrialData, ProvenanceRecord, Any]:
        if loaded is None:
            with timings("dataset"):
                bundle, trial_data = load_data(cfg, stream)
        else:
            bundle, trial_data = loaded
        with timings("space_check"):
            checked = dry_run_space(cfg, space, bundle, stream, work)
        warm = None
        if cfg.warm_start:  # checked before anything is written
            with timings("warm_start"):
                warm = warm_start.plan(cfg, space, bundle.input_shape, bundle.num_classes, work)
        warn_if_short_of_space(cfg, checked.mean_params, stream)
        with timings("provenance"):
            exp = cfg.experiment_dir
            # validate() found no such directory, but another search given this name at the
            # same moment may have made it since: whichever makes it first runs.
            claim_experiment_dir(exp)
            claimed.append(exp)
            record = provenance.collect(cfg.to_dict(), cfg.seed, work.run(gpus))
            record["dataset"] = {
                "name": bundle.name, "source": bundle.source, "classes": list(bundle.classes),
                "input_shape": list(bundle.input_shape), "train": len(bundle.train.y),
                "val": len(bundle.val.y), "test": len(bundle.test.y),
            }  # fmt: skip
            record["started"] = datetime.now(timezone.utc).isoformat()
            if baseline_note:  # a resume runs the same space: without the baseline
                record["baseline_left_out"] = baseline_note
            if warm is not None:
                record["warm_start"] = warm.record()
            save_record(exp, record)
            atomic_write_text(exp / SEARCH_TOML, cfg.to_toml())  # tuner search --config it
        with timings("study_storage"):
            storage = open_study_storage(cfg)
        if warm is not None:
            told = warm_start.tell(warm, storage, str(cfg.name), warm_start.directions_of(cfg))
            left = (
                f" ({warm.over_budget} over this search's budget left out)"
                if warm.over_budget
                else ""
            )
            say(
                stream, f"Warm start: {told} completed trials of {warm.source} told to Optuna{left}"
            )
        return bundle, trial_data, record, storage

    try:
        (bundle, trial_data, record, storage), we_started = while_ray_starts(
            cfg, stream, prepare, timings
        )
    except (ConfigError, DataError):
        # Refused after the claim (the study's storage, the warm start): what this search made
        # goes, and only that. A directory another search holds was never claimed here.
        for exp in claimed:
            shutil.rmtree(exp, ignore_errors=True)
        raise
    if not budgeted:
        work.close()  # nothing to price: its memory is free for the trials until the scoring
    try:
        check_schedulable(cfg)  # needs Ray's view of the nodes
    except ConfigError:
        # Refused before any trial: the directory made a moment ago by prepare() (provenance,
        # search.toml, an empty study) goes too, so the same command can run again as it is.
        shutil.rmtree(cfg.experiment_dir, ignore_errors=True)
        if we_started:
            import ray

            ray.shutdown()
        raise
    say(
        stream,
        f"Searching {cfg.space}{f' with {cfg.model}' if cfg.model else ''} on {bundle.name} "
        f"{bundle.input_shape} "
        f"({len(bundle.train.y)} train / {len(bundle.val.y)} val / {len(bundle.test.y)} test): "
        f"{budget_text(cfg)}, {cfg.searcher.upper()} + {cfg.scheduler.upper()}, seed {cfg.seed}",
    )
    return _run(SearchRun(cfg, space, bundle, trial_data, record, stream, timings, we_started,
                          storage=storage, torch=work))  # fmt: skip


def budget_text(cfg: SearchConfig) -> str:
    """The budget as the search's first line states it."""
    if not cfg.spends_savings:
        return f"{cfg.samples} trials x {cfg.epochs} epochs"
    return (f"a budget of {cfg.total_epochs} epochs ({cfg.samples} trials x {cfg.epochs}; "
            f"what ASHA saves starts more trials, up to {cfg.trial_cap})")  # fmt: skip


def resume(
    experiment_dir: str | Path,
    stream: TextIO | None = None,
    max_failures: int | None = None,
    retry_errored: bool = False,
    time_budget: float | None = None,
    confirm_top: int | None = None,
    confirm_seeds: int | None = None,
    confirm_only: bool = False,
    samples: int | None = None,
) -> SearchResult:
    """Continue an interrupted search (driver killed, Ctrl-C, machine lost) where it stopped.

    Finished trials stay as they are; unfinished ones continue from their last checkpoint;
    trials not yet started are started, up to the search's --samples. retry_errored: trials
    that ended in error are run again from their last checkpoint. Only resume experiment
    directories you trust: Ray's tuner.pkl inside is a pickle.

    confirm_top / confirm_seeds: the confirm stage's K and S (default: as the search had).
    confirm_only (`tuner confirm DIR`): the search must be finished; its confirm stage runs
    (again, with these settings, even if the search had --no-confirm).
    samples (`tuner resume DIR --samples N`): raise a finished or interrupted search to N
    trials; the study, the sampler's history and ASHA's rungs carry on.
    """
    stream = stream or sys.stdout
    exp = Path(experiment_dir).expanduser().resolve()
    for needed in (PROVENANCE_JSON, TUNER_PKL):
        if not (exp / needed).is_file():
            raise ConfigError(f"{exp} is not a search experiment directory (no {needed})")
    refuse_writable_by_others(exp)  # first: a pickle others could write is never a resume
    refuse_without_tune_state(exp)
    record: ProvenanceRecord = json.loads((exp / PROVENANCE_JSON).read_text())
    fields = set(SearchConfig.__dataclass_fields__)
    cfg = SearchConfig(**{k: v for k, v in record["config"].items() if k in fields})
    if "max_trials" not in record["config"] and cfg.scheduler == "asha":
        # Searched before the budget was epochs: --samples was the trial count, and stays so.
        cfg = replace(cfg, max_trials=cfg.samples)
    cfg = replace(
        cfg,
        out=str(exp.parent), name=exp.name,  # the directory may have moved
        max_failures=cfg.max_failures if max_failures is None else max_failures,
        time_budget=time_budget,  # a --time-budget is for one run: the resume has its own, or none
        confirm_top=cfg.confirm_top if confirm_top is None else confirm_top,
        confirm_seeds=cfg.confirm_seeds if confirm_seeds is None else confirm_seeds,
        no_confirm=cfg.no_confirm and not confirm_only,
    )  # fmt: skip
    cfg.validate_confirm()
    if cfg.storage:  # the study's server answers before Ray starts (or one line, exit 2)
        check_storage(cfg.storage, study_name=None)
    raised = None
    if samples is not None and samples != cfg.samples:
        if samples < cfg.samples:
            raise ConfigError(
                f"--samples {samples} is below the search's {cfg.samples}; a resume can only "
                "raise it"
            )
        raised = samples
        record.setdefault("samples_raised", []).append(
            {"from": cfg.samples, "to": samples, "at": datetime.now(timezone.utc).isoformat()}
        )
        # A search of exactly --samples trials stays one; a cap below the new budget rises to it.
        capped = cfg.max_trials is not None and cfg.max_trials <= samples
        cfg = replace(cfg, samples=samples, max_trials=samples if capped else cfg.max_trials)
        record["config"]["samples"] = samples
        if capped:
            record["config"]["max_trials"] = samples
    if confirm_only and record.get("finished") is None and "confirm" not in record:
        raise ConfigError(
            f"the search in {exp} is not finished; `tuner resume {exp}` continues it (and "
            "runs the confirm stage at its end)"
        )
    # The stage's settings as this run has them (`tuner confirm --confirm-top 5`); the rest of
    # the recorded config stays the one the search started with.
    record["config"].update(confirm_top=cfg.confirm_top, confirm_seeds=cfg.confirm_seeds,
                            no_confirm=cfg.no_confirm)  # fmt: skip
    retry = errored_trials(exp) if retry_errored else set()
    record["retry_errored"] = sorted(retry)
    timings = Timings()

    # The restore opens the unfinished trials' checkpoints (torch.load) in the helper: its
    # torch loads beside Ray's start, as a new search's does for the dry run.
    work = TorchHelper()

    def prepare() -> tuple[DatasetBundle, TrialData]:
        work.prewarm()
        with timings("dataset"):
            return load_data(cfg, stream)

    try:
        (bundle, trial_data), we_started = while_ray_starts(cfg, stream, prepare, timings)
        record.setdefault("resumed", []).append(datetime.now(timezone.utc).isoformat())
        save_record(exp, record)
        say(stream, f"Resuming {exp}")
        if raised:
            if cfg.spends_savings:
                say(stream, f"Raising the search to {budget_text(cfg)}")
            else:
                say(stream, f"Raising the search to {raised} trials")
        space = cfg.search_space()
        if record.get("baseline_left_out"):  # --no-baseline, or over the budget (_search)
            space = replace(space, baseline=None)
        return _run(SearchRun(cfg, space, bundle, trial_data, record, stream,
                              timings, we_started, restore=True, retry=retry,
                              raise_samples=raised, torch=work))  # fmt: skip
    finally:
        work.close()


def _run(run: SearchRun) -> SearchResult:
    """Fit (or restore and fit), the tables, the confirm stage, then best.json, model.pt and
    the report. Ctrl-C: see tuner/driver/interrupt.py."""
    import time

    import ray

    from tuner.driver import confirm, live_report, progress
    from tuner.driver.interrupt import Interrupts, left_for_stage
    from tuner.stages.confirm_time import ConfirmShape

    cfg, record, timings = run.cfg, run.record, run.timings
    started = time.time()
    plan = functools.partial(interrupt_plan, cfg, run.space, run.bundle)
    shape = None if cfg.no_confirm else ConfirmShape(
        cfg.confirm_top, cfg.confirm_seeds, cfg.epochs, run.space.baseline is not None
    )  # fmt: skip
    val_images = len(run.bundle.val.y)
    test_per_val = len(run.bundle.test.y) / val_images if val_images else 0.0
    with Interrupts(run.stream, plan, cfg.time_budget, shape, test_per_val,
                    run.space.baseline is not None) as interrupts:  # fmt: skip
        reserved = False
        try:
            fit(run, interrupts)
            shown = progress.ACTIVE
            if shown is not None and shown.final_status:
                errors = {t for t, status in shown.final_status.items() if status == "ERROR"}
                record_errors(cfg.experiment_dir, errors)
            if shown is not None:  # how many trials really ran at once (--concurrency, ...)
                record.setdefault("peak_concurrent_trials", []).append(shown.peak_running)
            tables = write_tables(run)
            # Stopped to leave the rest of --time-budget to the confirm stage: the stage runs
            # on the trials so far (the unfinished ones stay for `tuner resume`).
            reserved = interrupts.stop_kind == "confirm-reserve"
            stopped = interrupts.interrupted or (interrupts.stop_kind is not None and not reserved)
            stage = None if cfg.no_confirm or (tables.left and not reserved) or stopped else (
                confirm.plan(cfg, tables.trials)
            )  # fmt: skip
            if reserved:  # the stage's own fit may stop at the budget's end
                interrupts.stop_reason = interrupts.stop_kind = None
            slots = max(1, shown.peak_running if shown is not None else 1)
            stage, line = confirm.budgeted(stage, cast(dict, record), run.restore,
                                           left_for_stage(interrupts), slots)  # fmt: skip
            if line:
                say(run.stream, line)
            if stage is not None:
                with timings("confirm"):
                    confirm.run_stage(cfg, run.trial_data, stage, cast(dict, record),
                                      run.stream, interrupts)  # fmt: skip
        except OSError as e:
            if is_disk_full(e):
                raise disk_full_error(cfg.experiment_dir) from None
            raise
        finally:
            run.torch.prewarm()  # its torch loads beside the waits below, for the scoring
            # every live copy of the report written before the final one replaces it
            record.setdefault("live_report", []).append(live_report.wait_all())
            if run.we_started_ray:
                with timings("ray_shutdown"):
                    ray.shutdown()
        stopped_by = interrupts.stop_kind or ("confirm-reserve" if reserved else None)
        try:
            result = write_results(run, tables, started, stopped_by)
        except OSError as e:
            if is_disk_full(e):
                raise disk_full_error(cfg.experiment_dir) from None
            raise
        if interrupts.stop_kind == "disk":
            result.stop_reason = interrupts.stop_reason
        elif stopped_by in ("time-budget", "confirm-reserve"):
            result.stopped_by_clock = True
        return result
