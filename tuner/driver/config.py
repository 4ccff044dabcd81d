"""SearchConfig: everything one search needs, typed and checked before Ray is even imported.

The CLI builds one from its flags and the Python API takes one directly; `validate()` turns
every bad value into a one-line ConfigError (the CLI prints it and exits 2), so nothing is
started, downloaded or written for a request that cannot run.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tuner.data import DATASETS
from tuner.driver.objectives import parse_objectives
from tuner.train.config import ConfigError

SCHEDULERS = ("asha", "fifo")
SEARCHERS = ("tpe", "random")
ASHA_RULES = ("paper", "ray")  # see tuner/driver/asha.py
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, what: str = "time budget") -> float:
    """'90', '90s', '15m', '2h', '1d' -> seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"{what} {text!r} is not a duration like 600, 90s, 15m or 2h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def space_slug(space: str) -> str:
    """A space name fit for a directory name: `dir/my.toml` -> `my`, `f.py:fn` -> `f-fn`."""
    if ".py:" in space:
        path, _, func = space.rpartition(":")
        return f"{Path(path).stem}-{func}"
    return Path(space).stem if "/" in space or "." in space else space


@dataclass
class SearchConfig:
    space: str = "seed_cnn"  # a name from `tuner spaces`
    dataset: str = "digits"  # digits (ships with scikit-learn, offline) | cifar10 | imagefolder
    data_dir: str | None = None  # dataset root and cache; default $TUNER_DATA_DIR or ~/.cache
    val_count: int | None = None  # validation images; default the lab's 2 % (1,000 of CIFAR-10)
    image_size: int | None = None  # imagefolder only: resize + center-crop to this side
    samples: int = 20  # trials, the lab's baseline included
    epochs: int = 10  # per-trial budget and ASHA's max_t
    scheduler: str = "asha"  # asha (early stopping on val_loss) | fifo (every trial runs out)
    searcher: str = "tpe"  # tpe (Optuna's TPESampler) | random
    grace_period: int = 1  # ASHA: epochs before a trial can be stopped
    reduction_factor: int = 3  # ASHA: keep the best 1/rf at each rung
    asha_rule: str = "paper"  # paper: best floor(n/rf) of n at a rung | ray: Ray's own rule
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions share a GPU: 0.25 puts 4 trials on each
    concurrency: int | None = None  # max trials at once; default what the resources allow
    address: str | None = None  # existing Ray cluster (or $RAY_ADDRESS); default in-process Ray
    out: str = "experiments"  # experiments are written to <out>/<name>/
    name: str | None = None  # default <space>-<dataset>-<timestamp>
    seed: int = 0  # seeds the sampler; trials train with the config's own seed (lab: 42)
    time_budget: float | None = None  # seconds for the whole search; None = no limit
    max_failures: int = 2  # retries of a crashed trial, each from its last checkpoint
    # Seconds between a trial's checkpoints; 0 (the default): every epoch, so a resume after
    # Ctrl-C repeats no epoch. A trial also checkpoints at its last epoch and wherever ASHA may
    # stop it, so a crash loses at most this much training. Quick epochs (GPUs, small nets)
    # spend less time writing state with e.g. 10 s (bench/report_cost.py, bench/overhead.py).
    checkpoint_interval: float = 0.0
    max_params: int | None = None  # configurations with more parameters are never trained
    max_macs: int | None = None  # ... or with more multiply-accumulates per image
    objectives: str | None = None  # multi-objective, e.g. "val_acc:max,params:min"
    verbose: bool = False  # show Ray's own logs

    def __post_init__(self) -> None:
        if self.name is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            self.name = f"{space_slug(self.space)}-{self.dataset}-{stamp}"
        if self.address is None and os.environ.get("RAY_ADDRESS"):
            self.address = os.environ["RAY_ADDRESS"]

    @property
    def experiment_dir(self) -> Path:
        return Path(self.out).expanduser().resolve() / str(self.name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Raise ConfigError (one line) for anything that cannot run. Starts nothing."""
        from search_spaces import SpaceError, get_space

        if self.dataset not in DATASETS:
            raise ConfigError(
                f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)}"
            )
        try:
            get_space(self.space)
        except SpaceError as e:
            raise ConfigError(str(e)) from e
        for field, value in (("samples", self.samples), ("epochs", self.epochs),
                             ("grace-period", self.grace_period)):  # fmt: skip
            _positive_int(field, value)
        for field, value in (("concurrency", self.concurrency), ("val-count", self.val_count),
                             ("image-size", self.image_size), ("max-params", self.max_params),
                             ("max-macs", self.max_macs)):  # fmt: skip
            if value is not None:
                _positive_int(field, value)
        if not isinstance(self.max_failures, int) or self.max_failures < 0:
            raise ConfigError(
                f"--max-failures must be a whole number >= 0, got {self.max_failures}"
            )
        if not isinstance(self.reduction_factor, int) or self.reduction_factor < 2:
            raise ConfigError(
                f"--reduction-factor must be an integer >= 2, got {self.reduction_factor}"
            )
        if self.grace_period > self.epochs:
            raise ConfigError(
                f"--grace-period {self.grace_period} is longer than --epochs {self.epochs}"
            )
        if self.asha_rule not in ASHA_RULES:
            raise ConfigError(f"--asha-rule must be one of {', '.join(ASHA_RULES)}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"--scheduler must be one of {', '.join(SCHEDULERS)}")
        if self.searcher not in SEARCHERS:
            raise ConfigError(f"--searcher must be one of {', '.join(SEARCHERS)}")
        if not self.cpus_per_trial > 0:
            raise ConfigError(f"--cpus-per-trial must be > 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial < 0:
            raise ConfigError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial}")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise ConfigError("--gpus-per-trial above 1 must be a whole number of GPUs")
        if not (isinstance(self.checkpoint_interval, (int, float))
                and self.checkpoint_interval >= 0):  # fmt: skip
            raise ConfigError(
                f"--checkpoint-interval must be >= 0 seconds, got {self.checkpoint_interval!r}"
            )
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError(f"--time-budget must be > 0, got {self.time_budget}")
        if not NAME_PATTERN.match(str(self.name)):
            raise ConfigError(
                f"--name {self.name!r} must be letters, digits, '.', '_' or '-' (no slashes)"
            )
        if self.objectives is not None:
            parse_objectives(self.objectives)
        self._check_data_dir()
        self._check_out_dir()

    def _check_data_dir(self) -> None:
        if self.data_dir is None:
            if self.dataset == "imagefolder":
                raise ConfigError("--dataset imagefolder needs --data-dir pointing at the tree")
            return
        path = Path(self.data_dir).expanduser()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--data-dir {path} is not a directory")
        if self.dataset == "imagefolder" and not path.is_dir():
            raise ConfigError(f"--data-dir {path} does not exist")
        if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
            raise ConfigError(f"--data-dir {path} is not readable")

    def _check_out_dir(self) -> None:
        out = Path(self.out).expanduser()
        existing = out
        while not existing.exists():  # the nearest existing ancestor must be writable
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"--out {out}: {existing} is not a directory")
        try:  # really try: os.access says yes to root even on read-only filesystems
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError:
            raise ConfigError(f"--out {out} is not writable") from None
        if self.experiment_dir.exists():
            raise ConfigError(
                f"experiment {self.experiment_dir} already exists; choose another --name"
            )


def _positive_int(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--{field} must be a whole number >= 1, got {value!r}")
