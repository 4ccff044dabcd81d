"""Tune's result.json and progress.csv loggers: result.json written in place, and each file
carried on after a resume.

Tune's loggers write into its staging dir, which Tune copies into the experiment directory when
it saves its state (on its own clock, every 10 s or more: tuner/driver/newest_checkpoint.py).
When a trial starts, Tune's LoggerCallback._restore_from_remote copies the file back from the
experiment directory only if Tune's record of the trial holds a checkpoint, and then over the
staging copy even when that is newer:

- a resumed trial whose record held none (Tune's last save predates its first checkpoint, or the
  checkpoint it recorded was deleted for a newer one, or the trial was added back from its own
  files by tuner.driver.fence.recovery) started a file of its own, which Tune's next save copied
  over the experiment's: the epochs reported before the kill were gone from result.json;
- a trial retried in the same process had its newer staging copy replaced by the experiment's
  older one.

Here the experiment's copy is carried on whenever the staging dir has none, and the staging
copy, this process's own and the newest, is never replaced. Where the experiment is on this
machine's filesystem, result.json and params.json skip the staging dir altogether
(ResultJsonLogger).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from tuner.experiment import PARAMS_JSON, RESULT_JSON, TRIAL_END_JSON
from tuner.io import atomic_write_text


def _carry_on(file_name: str, trial: Any) -> None:
    import pyarrow.fs

    local = Path(trial.local_path, file_name)
    if local.exists():  # written by this process: newer than the experiment's copy
        return
    remote = Path(trial.path, file_name).as_posix()
    fs = trial.storage.storage_filesystem
    if fs.get_file_info(remote).type != pyarrow.fs.FileType.File:
        return  # a trial that never reported
    local.parent.mkdir(parents=True, exist_ok=True)
    pyarrow.fs.copy_files(remote, local.as_posix(), source_filesystem=fs)


def _in_place(trial: Any) -> Path | None:
    """The trial's directory in the experiment when it is on this machine's filesystem (a local
    or shared directory); None for cloud storage."""
    storage = getattr(trial, "storage", None)
    if storage is None or getattr(storage, "custom_fs_provided", False):
        return None
    if getattr(storage.storage_filesystem, "type_name", "") != "local":
        return None
    return Path(trial.path)


def _forget_end(trial: Any, here: Path | None) -> None:
    """A trial that starts again (resumed, retried) has not ended: its TRIAL_END_JSON goes."""
    import pyarrow.fs

    if here is not None:
        (here / TRIAL_END_JSON).unlink(missing_ok=True)
        return
    Path(trial.local_path, TRIAL_END_JSON).unlink(missing_ok=True)
    remote = Path(trial.path, TRIAL_END_JSON).as_posix()
    fs = trial.storage.storage_filesystem
    if fs.get_file_info(remote).type == pyarrow.fs.FileType.File:
        fs.delete_file(remote)


class ResultJsonLogger(JsonLoggerCallback):
    """result.json (what tuner.experiment reads), params.json, and trial_end.json.

    trial_end.json says that, and how, the trial ended, the moment Tune ends it: `tuner status`
    and the live report cannot take that from Tune's saved state, which trails by Tune's save
    interval (a trial started since its last save is not in it at all).

    Where the experiment is on this machine's filesystem, both are written straight into the
    trial's directory there, not into Tune's staging dir: `tuner status`, the live report and a
    resume see each result as it comes (Tune copies its staging dir into the experiment only
    when it saves its state, every 10 s or more, and not while the driver waits in the
    searcher), and Tune's copy can never put an older file back over them. params.json is
    written atomically. On cloud storage, Tune's way, the file carried on across resumes and
    retries."""

    def update_config(self, trial: Any, config: dict) -> None:
        from ray.tune.utils.util import SafeFallbackEncoder

        here = _in_place(trial)
        if here is None:
            super().update_config(trial, config)
            return
        self._trial_configs[trial] = config
        here.mkdir(parents=True, exist_ok=True)
        text = json.dumps(config, indent=2, sort_keys=True, cls=SafeFallbackEncoder)
        # Not fsynced: a resume writes a cut-short params.json again from Tune's record
        # (fence/recovery.py). And no params.pkl beside it, as Tune's logger writes: nothing
        # reads it. The two fsynced writes were 2.7 ms of the driver's ~30 ms a trial in a
        # search of tiny trials (bench/scale.py, py-spy; 2026-12-07).
        atomic_write_text(here / PARAMS_JSON, text, durable=False)

    def log_trial_start(self, trial: Any) -> None:
        here = _in_place(trial)
        _forget_end(trial, here)
        if here is None:
            super().log_trial_start(trial)
            return
        if trial in self._trial_files:
            self._trial_files[trial].close()
        self.update_config(trial, trial.config)
        trial.init_local_path()  # the staging dir the other loggers write into
        self._trial_files[trial] = (here / RESULT_JSON).open("at")

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        super().log_trial_end(trial, failed)  # closes result.json: every report is in it
        here = _in_place(trial) or Path(trial.local_path)  # cloud: copied with Tune's next save
        here.mkdir(parents=True, exist_ok=True)
        status = "ERROR" if failed else "TERMINATED"
        atomic_write_text(here / TRIAL_END_JSON, json.dumps({"status": status}) + "\n")

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        _carry_on(file_name, trial)


class ProgressCsvLogger(CSVLoggerCallback):
    """progress.csv, carried on across resumes and retries."""

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        _carry_on(file_name, trial)
