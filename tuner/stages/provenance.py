"""What ran, with what, where: recorded next to every experiment's results."""

from __future__ import annotations

import contextlib
import getpass
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuner.experiment import PROVENANCE_JSON
from tuner.experiment.records import ProvenanceRecord
from tuner.io import atomic_write_json

LIBRARIES = (
    "cnn-tuner", "torch", "torchvision", "ray", "optuna", "pandas", "plotly", "numpy",
    "scikit-learn", "pillow",
)  # fmt: skip


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(where: Path | None = None) -> dict[str, Any]:
    """The project's git commit and whether the tree had uncommitted changes.

    Looks at the checkout the `tuner` package was imported from; an installed (non-editable)
    copy has none, which is recorded as such rather than guessed.
    """
    where = where or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10,
            check=True,
        ).stdout.strip()  # fmt: skip

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def hardware(gpus: dict[str, Any] | None = None) -> dict[str, Any]:
    """This machine; `gpus`: CUDA's version and the GPUs, as torch sees them
    (tuner.stages.torch_work.gpus, asked in the helper process the driver has; without it,
    asked here)."""
    info: dict[str, Any] = {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    if gpus is None:
        from tuner.stages.torch_work import gpus as ask

        gpus = ask()
    return {**info, **gpus}


def collect(
    config: dict[str, Any], seed: int, gpus: dict[str, Any] | None = None
) -> ProvenanceRecord:
    try:
        user = getpass.getuser()
    except Exception:
        user = None
    from tuner.train.user_model import source_digest

    record: ProvenanceRecord = {
        "config": config,
        "seed": seed,
        "command": sys.argv,
        "user": user,
        "libraries": library_versions(),
        "git": git_revision(),
        "hardware": hardware(gpus),
    }
    if config.get("model"):  # which code built the network: its file and its hash
        record["model_source"] = source_digest(config["model"]) or {"import": config["model"]}
    return record


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


def save_record(exp: Path, record: ProvenanceRecord | dict[str, Any]) -> None:
    """The one writer of provenance.json (atomic, with the user's umask): the search's first
    record, each resume's, the end of the fit, the confirm and retrain stages."""
    atomic_write_json(exp / PROVENANCE_JSON, record)
