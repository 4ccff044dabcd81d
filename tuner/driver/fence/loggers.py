"""Tune's result.json and progress.csv loggers, carrying on a trial's file after a resume.

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
copy, this process's own and the newest, is never replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback


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


class ResultJsonLogger(JsonLoggerCallback):
    """result.json (what tuner.experiment reads), carried on across resumes and retries."""

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        _carry_on(file_name, trial)


class ProgressCsvLogger(CSVLoggerCallback):
    """progress.csv, carried on across resumes and retries."""

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        _carry_on(file_name, trial)
