"""Atomic file writes: a crash never leaves half a CSV, JSON or report behind.

Each writer writes a temp file in the target's directory, fsyncs it, then renames it over the
target (rename is atomic on POSIX within one filesystem). The temp file is given the mode a
plain open() would have given the file (0666 less the umask: 0644 under the usual 022), since
mkstemp makes it 0600 and on a shared volume nobody else could read the report.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import pandas as pd

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (/proc, 4.7+)."""
    try:  # "Umask:" is the second line; one read of the head, not the whole file parsed
        # (that was 0.5 ms of the driver's ~45 ms a trial in bench/scale.py, 2026-12-07)
        fd = os.open("/proc/self/status", os.O_RDONLY)
        try:
            head = os.read(fd, 512)
        finally:
            os.close(fd)
        at = head.find(b"\nUmask:")
        if at >= 0:
            return int(head[at + 7 : head.index(b"\n", at + 1)].strip(), 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode open() gives a new file: 0666 less the umask."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode mkdir() gives a new directory: 0777 less the umask."""
    return 0o777 & ~current_umask()


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """`data` in `path`, whole or not at all: written beside it and renamed over it, with the
    user's umask. durable=False skips the fsync before the rename (0.6 ms here): the file is
    still never seen cut short after a killed process, but a power cut may leave it empty, so
    only for files that a resume can write again (a trial's params.json)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), durable)


def _jsonable(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every JSON reader can load the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def atomic_write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    return atomic_write_text(path, frame.to_csv(index=False))
