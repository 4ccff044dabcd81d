"""Tune's fit for a new or a resumed search: the saved state repaired and brought into line
with the study before a restore, and a fit that Ray's memory monitor ends restored in place."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from tuner.config.objectives import TUNE_SUMMARY_METRICS
from tuner.config.search_config import SearchConfig
from tuner.driver.fence.internals import killed_by_memory_monitor, lean_tune_state
from tuner.driver.fence.recovery import (
    adopt_unrecorded_trials,
    continue_checkpoint_numbers,
    forget_missing_checkpoints,
    forget_pending_decisions,
    prepare_search_state,
    refuse_without_tune_state,
    reopen_trials,
    repair_state,
    set_aside_unrecorded_trials,
    settle_finished_trials,
    study_name,
)
from tuner.driver.ray_runtime import check_schedulable
from tuner.driver.study_storage import server_lost, server_lost_error
from tuner.driver.tuner_setup import build_tuner, make_trainable, restoring_searcher
from tuner.experiment import (
    ASHA_STATE_JSON,
    checkpoint_dirs,
    dirs_of_trial,
    last_result,
    ray_trial_states,
)
from tuner.experiment.records import ProvenanceRecord
from tuner.stages.console import say
from tuner.stages.disk import DiskFullError, is_disk_full
from tuner.stages.search_run import SearchRun
from tuner.stages.torch_work import TorchWork
from tuner.train.trial_data import TrialData


@contextlib.contextmanager
def _unfrozen_after() -> Iterator[None]:
    """What gc.freeze() set aside is collected again once the fit is over, however it ends."""
    try:
        yield
    finally:
        gc.unfreeze()


def fit(run: SearchRun, interrupts: Any) -> None:
    """Build (or restore) the Tuner and fit it (Ray stays up: the confirm stage follows; the
    caller shuts it down). A full disk ends in DiskFullError, a --storage server gone in
    StudyServerLost; what stopped the search is in `interrupts`."""
    cfg, trial_data, record, stream, timings = (
        run.cfg, run.trial_data, run.record, run.stream, run.timings,
    )  # fmt: skip
    retry = run.retry
    exp = cfg.experiment_dir
    try:
        if run.restore:  # a new search checked its request in search(), before any trial
            check_schedulable(cfg)
            tuner = restored_tuner(cfg, trial_data, record, retry, stream,
                                   raised=run.raise_samples is not None,
                                   work=run.torch)  # fmt: skip
            # It opened the checkpoints; a restored searcher prices in a helper of its own.
            run.torch.close()
        else:
            with timings("build_tuner"):
                tuner = build_tuner(cfg, run.space, run.bundle, trial_data, stream, run.storage,
                                    run.torch)  # fmt: skip
        if not cfg.verbose:  # a full disk: one line from us, not Ray's tracebacks
            from tuner.driver.guards import quiet_disk_full_logs

            quiet_disk_full_logs()
        interrupts.in_fit = True
        memory_kills = 0
        # Python's full collections walk every tracked object, most of them made before the
        # first trial (torch, Ray, the dataset's metadata), and stall every thread of the
        # driver while they run. Frozen, those are left out of every collection during the
        # fit: at 1,000 tiny trials the longest collection fell from 393-508 ms to 189-202 ms,
        # the driver's CPU from 81-88 to 75-76 ms a trial (BENCHMARKS.md [scale]).
        gc.freeze()
        with timings("fit"), _unfrozen_after():
            while True:
                try:
                    # Tune unpickles the searcher's saved state inside fit() as well.
                    with (
                        restoring_searcher(cfg, retry, raised=run.raise_samples is not None),
                        lean_tune_state(TUNE_SUMMARY_METRICS),
                    ):
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
                    say(stream, f"Ray's memory monitor killed a trial (node memory above its "
                        "threshold); the search continues from its last saved state "
                        f"({memory_kills}/{max(1, cfg.max_failures)})")  # fmt: skip
                    tuner = restored_tuner(cfg, trial_data, record, set(), None,
                                           raised=run.raise_samples is not None,
                                           work=run.torch)  # fmt: skip
                    run.torch.close()
        interrupts.in_fit = False
        # The fit leaves one asha_state.json: the log of its rung decisions is folded in.
        from tuner.driver.fence.asha import compact as compact_rungs  # Ray: not at import

        compact_rungs(exp / ASHA_STATE_JSON)
        if interrupts.stopping_since is not None:  # the wait was for each trial's epoch to end
            waited = time.monotonic() - interrupts.stopping_since
            say(stream, f"Trials stopped ({waited:.0f} s); writing what the search has")
        if memory_kills:
            record.setdefault("memory_monitor_restarts", []).append(memory_kills)
    except Exception as e:
        # Optuna's StorageInternalError on a full SQLite journal; or, once the disk guard has
        # stopped the search, Ray choking on the error files the full disk cut short.
        if is_disk_full(e) or interrupts.stop_kind == "disk":
            raise disk_full_error(exp) from None
        if cfg.storage and (lost := server_lost(e)) is not None:
            raise server_lost_error(cfg.storage, exp, lost) from None
        raise


def restored_tuner(
    cfg: SearchConfig,
    trial_data: TrialData,
    record: ProvenanceRecord,
    retry: set[str],
    stream: TextIO | None,
    raised: bool = False,
    work: TorchWork | None = None,
) -> Any:
    """Tune's saved experiment, repaired and brought into line with the study, restored.
    `retry`: errored trials to run again. `stream`: where to say what was repaired (None:
    quietly, for the in-place restore after a memory-monitor kill). `work`: where the
    checkpoints are opened (the run's torch helper)."""
    from ray import tune

    exp = cfg.experiment_dir
    notes = repair_state(exp)
    refuse_without_tune_state(exp)  # its only copy was cut short and set aside
    notes += adopt_unrecorded_trials(exp, study_name(record, cfg))
    continue_checkpoint_numbers(exp)  # after the newest on disk, which Tune's state may lag
    aside_notes, aside = set_aside_unrecorded_trials(exp)  # those that could not be adopted
    notes += aside_notes
    reopen_trials(exp, study_name(record, cfg), aside)  # those told after Tune's last save
    # Settled first: the searcher's state is brought into line with the trials left to run.
    settled = settle_finished_trials(exp, study_name(record, cfg))
    prepare_search_state(exp, retry)
    forget_pending_decisions(exp, retry)  # a STOP Tune set aside for a retried trial
    forgotten = forget_missing_checkpoints(exp)
    told = {note.split(":", 1)[0] for note in forgotten}
    notes += forgotten + [n for n in checkpoint_notes(exp, work) if n.split(":", 1)[0] not in told]
    if settled:
        notes.append(f"{settled} trial(s) had finished just before the interruption")
    if retry:
        reopen_trials(exp, study_name(record, cfg), retry)
        notes.append(f"Retrying {len(retry)} errored trial(s) from their last checkpoint")
    if stream is not None:
        for note in notes:
            say(stream, note)
    with restoring_searcher(cfg, retry, raised):
        return tune.Tuner.restore(
            str(exp), trainable=make_trainable(cfg, trial_data), resume_unfinished=True,
            resume_errored=bool(retry),
        )  # fmt: skip


def disk_full_error(exp: Path) -> DiskFullError:
    from tuner.stages.disk import MARGIN_BYTES, REPORT_BYTES, free_bytes, mb

    return DiskFullError(
        f"no space left under {exp} ({mb(free_bytes(exp))} free): the search stopped and "
        f"kept what it had; free at least {mb(REPORT_BYTES + MARGIN_BYTES)} more and run "
        f"`tuner resume {exp}`"
    )


def checkpoint_notes(exp: Path, work: TorchWork | None = None) -> list[str]:
    """One line for each unfinished trial whose newest checkpoint cannot be read (cut short by
    a crash or a full disk, or deleted): where the resume continues it from instead. The
    checkpoints are opened in `work`'s helper process (torch.load)."""
    from tuner.stages import torch_work
    from tuner.train.checkpoints import describe_fallback

    trial_dirs = []
    for trial_id, state in ray_trial_states(exp).items():
        if state["status"] in ("TERMINATED",):
            continue
        for trial_dir in dirs_of_trial(exp, trial_id):
            if not checkpoint_dirs(trial_dir) and last_result(trial_dir) is None:
                continue  # never reported an epoch: nothing to continue from
            trial_dirs.append(trial_dir)
    if not trial_dirs:
        return []
    found = (work or torch_work.TorchWork()).run(torch_work.readable_checkpoints, trial_dirs)
    notes = []
    for trial_dir, (chosen, skipped) in zip(trial_dirs, found, strict=True):
        note = describe_fallback(trial_dir.name, chosen, skipped)
        if chosen is None and not skipped:
            note = f"{trial_dir.name}: no checkpoint left; it starts again from epoch 1"
        if note:
            notes.append(note)
    return notes
