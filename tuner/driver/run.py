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
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from tuner.data import DatasetBundle
from tuner.driver import provenance
from tuner.driver.config import SearchConfig
from tuner.driver.console import say
from tuner.driver.disk import is_disk_full
from tuner.driver.finish import SearchResult, write_results
from tuner.driver.fit import disk_full_error, fit
from tuner.driver.interrupt import interrupt_plan
from tuner.driver.preflight import (
    check_budget,
    dry_run_space,
    load_data,
    refuse_writable_by_others,
    warn_if_short_of_space,
)
from tuner.driver.provenance import Timings
from tuner.driver.ray_runtime import while_ray_starts
from tuner.driver.recovery import errored_trials, record_errors
from tuner.driver.search_run import SearchRun
from tuner.driver.tuner_setup import open_study_storage
from tuner.errors import ConfigError
from tuner.experiment import PROVENANCE_JSON, TUNER_PKL
from tuner.experiment.records import ProvenanceRecord
from tuner.io import atomic_write_json
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
    timings = Timings()
    loaded: tuple[DatasetBundle, TrialData] | None = None
    if cfg.max_params is not None or cfg.max_macs is not None:
        # Priced before Ray starts, so that an impossible budget costs a second and exit 2,
        # not Ray's start and 200 refused proposals inside Tune. The dataset is loaded first
        # (for its shape) instead of beside Ray's start: ~0.1 s from the cache.
        with timings("dataset"):
            loaded = load_data(cfg, stream)
        with timings("budget_check"):
            check_budget(cfg, loaded[0], stream)

    def prepare() -> tuple[DatasetBundle, TrialData, ProvenanceRecord, Any]:
        if loaded is None:
            with timings("dataset"):
                bundle, trial_data = load_data(cfg, stream)
        else:
            bundle, trial_data = loaded
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
            atomic_write_json(exp / PROVENANCE_JSON, record)
        with timings("study_storage"):
            storage = open_study_storage(cfg)
        return bundle, trial_data, record, storage

    (bundle, trial_data, record, storage), we_started = while_ray_starts(
        cfg, stream, prepare, timings
    )
    say(
        stream,
        f"Searching {cfg.space} on {bundle.name} {bundle.input_shape} "
        f"({len(bundle.train.y)} train / {len(bundle.val.y)} val / {len(bundle.test.y)} test): "
        f"{cfg.samples} trials x {cfg.epochs} epochs, {cfg.searcher.upper()} + "
        f"{cfg.scheduler.upper()}, seed {cfg.seed}",
    )
    return _run(SearchRun(cfg, bundle, trial_data, record, stream, timings, we_started,
                          storage=storage))  # fmt: skip


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
    stream = stream or sys.stdout
    exp = Path(experiment_dir).expanduser().resolve()
    for needed in (PROVENANCE_JSON, TUNER_PKL):
        if not (exp / needed).is_file():
            raise ConfigError(f"{exp} is not a search experiment directory (no {needed})")
    refuse_writable_by_others(exp)
    record: ProvenanceRecord = json.loads((exp / PROVENANCE_JSON).read_text())
    fields = set(SearchConfig.__dataclass_fields__)
    cfg = SearchConfig(**{k: v for k, v in record["config"].items() if k in fields})
    cfg = replace(
        cfg,
        out=str(exp.parent), name=exp.name,  # the directory may have moved
        max_failures=cfg.max_failures if max_failures is None else max_failures,
        time_budget=time_budget,  # a --time-budget is for one run: the resume has its own, or none
    )  # fmt: skip
    retry = errored_trials(exp) if retry_errored else set()
    record["retry_errored"] = sorted(retry)
    timings = Timings()

    def prepare() -> tuple[DatasetBundle, TrialData]:
        with timings("dataset"):
            return load_data(cfg, stream)

    (bundle, trial_data), we_started = while_ray_starts(cfg, stream, prepare, timings)
    record.setdefault("resumed", []).append(datetime.now(timezone.utc).isoformat())
    atomic_write_json(exp / PROVENANCE_JSON, record)
    say(stream, f"Resuming {exp}")
    return _run(SearchRun(cfg, bundle, trial_data, record, stream, timings, we_started,
                          restore=True, retry=retry))  # fmt: skip


def _run(run: SearchRun) -> SearchResult:
    """Fit (or restore and fit), then the tables, best.json and the report.
    Ctrl-C: see tuner/driver/interrupt.py."""
    import time

    from tuner.driver import progress
    from tuner.driver.interrupt import Interrupts

    cfg, record = run.cfg, run.record
    started = time.time()
    plan = functools.partial(interrupt_plan, cfg, run.bundle)
    with Interrupts(run.stream, plan, cfg.time_budget) as interrupts:
        fit(run, interrupts)
        shown = progress.ACTIVE
        if shown is not None and shown.final_status:
            errors = {t for t, status in shown.final_status.items() if status == "ERROR"}
            record_errors(cfg.experiment_dir, errors)
        if shown is not None:  # how many trials really ran at once (--concurrency, resources)
            record.setdefault("peak_concurrent_trials", []).append(shown.peak_running)
        try:
            result = write_results(run, started, interrupts.stop_kind)
        except OSError as e:
            if is_disk_full(e):
                raise disk_full_error(cfg.experiment_dir) from None
            raise
        if interrupts.stop_kind == "disk":
            result.stop_reason = interrupts.stop_reason
        elif interrupts.stop_kind == "time-budget":
            result.stopped_by_clock = True
        return result
