"""Disk space: what a search will write, and a clean stop before the disk is full.

A default search with --out on a 25 MB tmpfs ended with exit 1 and 16 tracebacks (Ray's
`OSError: [Errno 28]` first, Optuna's StorageInternalError last), and left result files cut
short. Here: a one-line warning before the search when the output's free space is below what
it will probably write; a Tune callback that stops the search gracefully (as Ctrl-C does) when
the free space falls below what the running trials' next checkpoints need, or a trial fails
with ENOSPC; and DiskFullError, a one-line stop, for whatever still hits a full disk.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

MB = 1 << 20
# A checkpoint holds the model, the kept (lowest-val-loss) weights and the optimizer state
# (momentum: one more copy; Adam: two), float32: ~16 bytes a parameter in all.
CHECKPOINT_BYTES_PER_PARAM = 16
REPORT_BYTES = 6 * MB  # report.html embeds plotly.js (~4.7 MB) and the figures
EPOCH_RECORD_BYTES = 4096  # result.json + progress.csv + epochs.csv per trial-epoch, generous
MARGIN_BYTES = 8 * MB  # tables, best.json, Optuna's journal and Tune's experiment state


class DiskFullError(OSError):
    """The disk under the experiment filled up; the message is one line for the user."""


def free_bytes(path: str | Path) -> int:
    """Free bytes on the filesystem of `path`, or of its nearest existing ancestor."""
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def estimate_bytes(samples: int, epochs: int, mean_params: float) -> int:
    """What a search probably writes: one checkpoint kept per trial, the per-epoch records,
    the tables and the report."""
    checkpoints = samples * mean_params * CHECKPOINT_BYTES_PER_PARAM
    return int(checkpoints + samples * epochs * EPOCH_RECORD_BYTES + REPORT_BYTES + MARGIN_BYTES)


def is_disk_full(error: BaseException | None) -> bool:
    """ENOSPC anywhere in the exception's chain, or its text (Ray and SQLite re-raise it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error)
        if "No space left on device" in text or "database or disk is full" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


def mb(n: float) -> str:
    return f"{max(1, round(n / MB)):,} MB"
