"""SearchConfig: everything one search needs, typed and checked before Ray is even imported.

Each field is also a `tuner search` option, declared once with its help (options.py); the CLI
builds its parser and then one config from those fields, and the Python API takes one directly.
`validate()` turns
every bad value into a one-line ConfigError (the CLI prints it and exits 2), so nothing is
started, downloaded or written for a request that cannot run.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from dataclasses import Field, asdict, dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.config.objectives import parse_objectives
from tuner.config.options import (
    count,
    duration,
    gpus_or_auto,
    interval,
    is_option,
    non_negative_int,
    number,
    option,
    positive_int,
)
from tuner.config.options import parse_duration as parse_duration  # its home before options.py
from tuner.data import DATASETS
from tuner.experiment import DEFAULT_GRACE_PERIOD, MODEL_FILE, REPORT_HTML, grace_period_for
from tuner.train.config import ConfigError
from tuner.train.user_model import absolute_spec, import_callable

if TYPE_CHECKING:
    from search_spaces import SearchSpace

SCHEDULERS = ("asha", "fifo")
SEARCHERS = ("tpe", "random")
ASHA_RULES = ("paper", "ray")  # see tuner/driver/fence/asha.py
COMPILE_BACKENDS = ("off", "inductor", "reduce-overhead", "aot_eager")  # tuner.train.trial
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Bytes of path kept free under <out>/<name>/ for what Ray and the search write there
# (trial_0003_<id>/checkpoint_000000/state.pt, confirm/run_0002_seed1000/..., Tune's
# .tuner-state-backup/experiment_state-<date>.json): about 70 today.
PATH_ROOM = 128

# The sections of `tuner search --help`, in the order their first options appear below.
WHAT, BUDGET, HOW, CONFIRM, RESOURCES, OUTPUT = (
    "what to search", "budget", "how to search", "confirm the winner", "resources", "output"
)  # fmt: skip


def space_slug(space: str) -> str:
    """A space name fit for a directory name: `dir/my.toml` -> `my`, `f.py:fn` -> `f-fn`."""
    if ".py:" in space:
        path, _, func = space.rpartition(":")
        return f"{Path(path).stem}-{func}"
    return Path(space).stem if "/" in space or "." in space else space


@dataclass(frozen=True)
class SearchConfig:
    """One search's options. Each field is also a `tuner search` flag: its help, group and
    argument type are written once, here, and the CLI's parser is built from them.

    Frozen: derive another with `dataclasses.replace(cfg, samples=40)`. A config made without a
    name gets one when its search starts (`named()`), so its defaults never read the clock.
    """

    space: str = option(
        "seed_cnn", group=WHAT,
        help="a built-in space (see `tuner spaces`), your own define-by-run function "
        "(path/to/file.py:function) or a declarative file (space.toml, space.yaml); "
        "default %(default)s",
    )  # fmt: skip
    model: str | None = option(
        None, group=WHAT, metavar="FILE.py:FUNC",
        help="train your own network: build(params, input_shape, num_classes) -> nn.Module in "
        "path/to/file.py:build or package.module:build; it gets every sampled key that is not "
        "a training setting (lr, batch_size, optimizer, ...). Default: the built-in CNN",
    )  # fmt: skip
    dataset: str = option(
        "digits", group=WHAT, choices=DATASETS,
        help="digits: 8x8 digits shipped with scikit-learn (offline); cifar10, cifar100, "
        "mnist, fashion_mnist, svhn: torchvision's, in --data-dir, downloaded if missing; "
        "imagefolder: a class-per-folder tree in --data-dir (with train/ and "
        "test/ or val/ inside, those are the splits). Default %(default)s",
    )  # fmt: skip
    data_dir: str | None = option(
        None, group=WHAT,
        help="dataset root; the decoded dataset is cached here too "
        "(default $TUNER_DATA_DIR or ~/.cache/cnn-tuner)",
    )  # fmt: skip
    val_count: int | None = option(
        None, group=WHAT, type=positive_int,
        help="validation images held out of the training split "
        "(default: 2%% like the lab's 1,000 of 50,000, at least 20 per class)",
    )  # fmt: skip
    image_size: int | None = option(
        None, group=WHAT, type=positive_int,
        help="imagefolder: resize and center-crop every image to this side",
    )  # fmt: skip
    decode_workers: int | None = option(
        None, group=WHAT, type=positive_int, metavar="N",
        help="imagefolder: processes that decode the images the first time (later runs read "
        "the cache); default: every core",
    )  # fmt: skip
    warm_start: str | None = option(
        None, group=HOW, metavar="DIR",
        help="start from an earlier experiment: its completed trials are told to this search's "
        "Optuna study first (marked imported, never retrained), so TPE starts informed. Its "
        "space and --objectives must match this search's",
    )  # fmt: skip
    samples: int = option(
        20, group=BUDGET, type=positive_int,
        help="the search's budget, in trials of --epochs epochs: this many trials run, the "
        "lab's baseline first, and it trains at most samples x epochs epochs in all (ASHA stops "
        "weak trials sooner; --max-trials lets their unused epochs start more trials); "
        "default %(default)s",
    )  # fmt: skip
    max_trials: int | None = option(
        None, group=BUDGET, type=positive_int, metavar="N",
        help="ASHA: spend the epochs that stopped trials leave on new trials, up to N trials "
        "in all, until samples x epochs epochs are trained (default: --samples, each stopped "
        "trial's epochs left unspent). Helped on digits resnet_cnn (replayed) and hurt on real "
        "CIFAR-10 resnet_cnn (BENCHMARKS.md)",
    )  # fmt: skip
    epochs: int = option(
        10, group=BUDGET, type=positive_int,
        help="epochs per trial (ASHA's max_t); default %(default)s",
    )  # fmt: skip
    scheduler: str = option(
        "asha", group=HOW, choices=SCHEDULERS,
        help="asha: stop weak trials early on val_loss; fifo: run every trial to "
        "the end; default %(default)s",
    )  # fmt: skip
    searcher: str = option(
        "tpe", group=HOW, choices=SEARCHERS,
        help="tpe: Optuna's TPE sampler; random: random search; default %(default)s",
    )  # fmt: skip
    grace_period: int | None = option(
        None, group=HOW, type=positive_int,
        help="ASHA: epochs every trial gets before it can be stopped; default "
        f"{DEFAULT_GRACE_PERIOD} (at most --epochs - 1), which replayed above a grace of 1 on "
        "every recorded task: epoch 1 says little about the last (BENCHMARKS.md)",
    )  # fmt: skip
    reduction_factor: int = option(
        3, group=HOW, type=positive_int,
        help="ASHA: keep the best 1/N of trials at each rung; default %(default)s",
    )  # fmt: skip
    asha_rule: str = option(
        "paper", group=HOW, choices=ASHA_RULES,
        help="ASHA: who passes a rung. paper: only the best floor(n/rf) of the n trials that "
        "reached it (as in the ASHA paper; used where enough trials are expected to arrive); "
        "ray: Ray's rule, under which the first trials at a rung pass unopposed and use "
        "more compute; default %(default)s",
    )  # fmt: skip
    no_baseline: bool = option(
        False, group=HOW,
        help="leave the lab's network out (otherwise trial 0, the reference the report "
        "compares with): on a large dataset it holds a trial slot for minutes, which a short "
        "--time-budget may not afford; a baseline over --max-params / --max-macs is left out "
        "anyway",
    )  # fmt: skip
    cpus_per_trial: float = option(
        1.0, group=RESOURCES, type=number,
        help="CPU cores per trial (also its torch thread count); default %(default)s",
    )  # fmt: skip
    gpus_per_trial: float | str = option(
        0.0, group=RESOURCES, type=gpus_or_auto,
        help="GPUs per trial; fractions share a GPU, 0.25 = 4 trials per GPU; auto: each trial "
        "the share its configuration's estimated peak memory needs (at most 4 trials a GPU); "
        "default %(default)s",
    )  # fmt: skip
    gpu_memory: float | None = option(
        None, group=RESOURCES, type=number, metavar="GIB",
        help="with --gpus-per-trial auto: the memory of one GPU, in GiB (default: the first "
        "GPU this process sees; needed when the GPUs are on other nodes)",
    )  # fmt: skip
    compile: str = option(
        "off", group=RESOURCES, choices=COMPILE_BACKENDS,
        help="torch.compile each trial's network: inductor (torch's default: fused, generated "
        "kernels; on the CPU it needs a C++ compiler), reduce-overhead (inductor and CUDA "
        "graphs: for small batches, where launching kernels is the cost), aot_eager (traces "
        "only: checks that a network compiles); the first epoch pays the compile time; "
        "default %(default)s",
    )  # fmt: skip
    concurrency: int | None = option(
        None, group=RESOURCES, type=positive_int,
        help="at most this many trials at once (default: as many as fit)",
    )  # fmt: skip
    address: str | None = option(  # None: $RAY_ADDRESS if set (__post_init__)
        None, group=RESOURCES,
        help="join this Ray cluster (host:port) instead of starting Ray in-process; "
        "RAY_ADDRESS works too",
    )  # fmt: skip
    out: str = option(
        "experiments", group=OUTPUT,
        help="parent directory of experiments, each written to <out>/<name>/; "
        "default ./%(default)s",
    )  # fmt: skip
    name: str | None = option(
        None, group=OUTPUT,
        help="experiment name (default <space>-<dataset>-<timestamp>, the time the search "
        "starts)",
    )  # fmt: skip
    seed: int = option(
        0, group=HOW, type=int,
        help="sampler seed (same seed, same suggestions; each trial trains with its "
        "configuration's own seed, the lab's 42); default %(default)s",
    )  # fmt: skip
    time_budget: float | None = option(  # seconds
        None, group=BUDGET, type=duration,
        help="stop the whole search after this long: 600, 90s, 15m, 2h (default: no limit); "
        "the end of it is kept for the confirm stage and the test scoring, so that the winner is "
        "confirmed and scored in time",
    )  # fmt: skip
    max_failures: int = option(
        2, group=RESOURCES, type=non_negative_int,
        help="retries of a crashed trial, from its last checkpoint; default %(default)s",
    )  # fmt: skip
    # Quick epochs spend less time writing state with e.g. 10 s: bench/report_cost.py and
    # bench/overhead.py measure it.
    checkpoint_interval: float = option(  # seconds
        0.0, group=RESOURCES, type=interval, metavar="DURATION",
        help="time between a trial's checkpoints (e.g. 10s, 2m); 0 = every epoch, so a resume "
        "repeats no epoch. Trials also checkpoint at their last epoch and wherever ASHA may "
        "stop them, so a crash costs at most this much training. Worth setting when epochs "
        "take well under a second (checkpoints of big nets cost tens of ms); default %(default)g",
    )  # fmt: skip
    max_params: int | None = option(
        None, group=BUDGET, type=count,
        help="never train a configuration with more parameters (e.g. 250k, 1.5M); the searcher "
        "learns the limit, and the report lists what it refused",
    )  # fmt: skip
    max_macs: int | None = option(
        None, group=BUDGET, type=count,
        help="never train a configuration with more multiply-accumulates per image (e.g. 50M)",
    )  # fmt: skip
    objectives: str | None = option(
        None, group=HOW,
        help="search several objectives at once and report their Pareto front, e.g. "
        "val_acc:max,params:min; choose from val_acc, val_loss, params, macs, latency, "
        "train_time (ASHA still stops trials on validation loss)",
    )  # fmt: skip
    # The confirm stage (tuner/driver/confirm.py). On digits' default search it adds 12 runs of
    # 10 epochs: BENCHMARKS.md has its measured share of the demo's wall time.
    confirm_top: int = option(
        3, group=CONFIRM, type=positive_int, metavar="K",
        help="after the search, train the top K configurations by validation (and the lab's "
        "baseline) again from scratch over fresh seeds, and name the winner by its mean; "
        "default %(default)s",
    )  # fmt: skip
    confirm_seeds: int = option(
        3, group=CONFIRM, type=positive_int, metavar="S",
        help="fresh seeds per confirmed configuration (at least 2: the 95%% intervals need "
        "two); default %(default)s",
    )  # fmt: skip
    no_confirm: bool = option(
        False, group=CONFIRM,
        help="skip the confirm stage: the winner is the search's best single run "
        f"({MODEL_FILE} is still written); `tuner confirm DIR` runs the stage later",
    )  # fmt: skip
    mlflow: str | None = option(
        None, group=OUTPUT, metavar="URI",
        help="also log every trial (its config and each epoch's metrics) to MLflow at this "
        "tracking URI (file:///path/mlruns, http://host:5000), through Ray Tune's MLflow "
        "callback; needs mlflow: pip install \"cnn-tuner[mlflow]\"",
    )  # fmt: skip
    storage: str | None = option(
        None, group=OUTPUT, metavar="URL",
        help="keep the Optuna study on this database server instead of in the experiment "
        "directory (postgresql://user@host:5432/db, or any URL Optuna's RDBStorage takes), so "
        "that one database and one optuna-dashboard hold a team's searches. No password in the "
        "URL: set PGPASSWORD or use ~/.pgpass. PostgreSQL needs "
        "pip install \"cnn-tuner[postgres]\"",
    )  # fmt: skip
    # A copy costs about a second at 200 trials (bench/live_report.py, BENCHMARKS.md): once a
    # minute is under 2 % of the driver's time.
    report_every: float = option(  # seconds
        60.0, group=OUTPUT, type=interval, metavar="DURATION",
        help=f"while the search runs, rewrite {REPORT_HTML} this often (e.g. 30s, 5m), with a "
        "banner, reloading itself in the browser; 0 = only at the end; default %(default)g",
    )  # fmt: skip
    verbose: bool = option(False, group=OUTPUT, flags=("-v", "--verbose"),
                           help="show Ray's own logs")  # fmt: skip

    def __post_init__(self) -> None:
        if self.address is None and os.environ.get("RAY_ADDRESS"):
            object.__setattr__(self, "address", os.environ["RAY_ADDRESS"])  # frozen
        if self.model:  # trials run in directories of their own: a relative path breaks there
            object.__setattr__(self, "model", absolute_spec(self.model))
        if self.warm_start:  # search.toml runs the same search again from anywhere
            object.__setattr__(
                self, "warm_start", str(Path(self.warm_start).expanduser().absolute())
            )

    def search_space(self) -> SearchSpace:
        """The space this search samples: --space, training --model's network when given."""
        from search_spaces import get_space

        return get_space(self.space).with_model(self.model)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> SearchConfig:
        """The config an experiment file (TOML or YAML, see tuner/config/config_file.py)
        describes, with `overrides` on top (as command-line flags are)."""
        from tuner.config.config_file import read_config_file

        return cls(**{**read_config_file(path, cls.options()), **overrides})

    def to_toml(self) -> str:
        """These options as an experiment file (`tuner search --config`): search.toml."""
        from tuner.config.config_file import to_toml

        return to_toml(self.to_dict(), self.options())

    @classmethod
    def options(cls) -> list[Field]:
        """The fields that are `tuner search` options (all of them), in field order."""
        return [f for f in fields(cls) if is_option(f)]

    def named(self, now: datetime | None = None) -> SearchConfig:
        """This config with its run's name: the --name it was given, else
        <space>-<dataset>-<timestamp> of `now` (default: this moment). search() calls it first."""
        if self.name is not None:
            return self
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        return replace(self, name=f"{space_slug(self.space)}-{self.dataset}-{stamp}")

    @property
    def grace(self) -> int:
        """ASHA's grace period in force: --grace-period, else the default cut to the epochs."""
        return grace_period_for(self.grace_period, self.epochs)

    @property
    def total_epochs(self) -> int:
        """The search's budget in epochs: --samples trials of --epochs epochs."""
        return self.samples * self.epochs

    @property
    def trial_cap(self) -> int:
        """The most trials the search starts (Tune's num_samples): --samples, or with ASHA
        --max-trials where it says more.

        Why not, by default, as many as the epoch budget pays for (samples x epochs /
        grace-period, the savings spent): replayed on recorded curves that won 14 points over a
        sweep on digits resnet_cnn, but on real CIFAR-10 resnet_cnn (11,000 JPEGs, --max-macs
        20M, --samples 16 --epochs 5) it lost 7 points on both seeds run (37.3 and 38.6 % against
        44.6 and 44.5 %) with twice the epochs: TPE spent the extra trials on one 10,698-
        parameter network, which the replay cannot show (it never proposes a configuration
        twice). BENCHMARKS.md, "[search] the default"."""
        if self.scheduler == "asha" and self.max_trials is not None:
            return self.max_trials
        return self.samples

    @property
    def spends_savings(self) -> bool:
        """Whether trials stopped early leave their epochs to new trials (more trials than
        --samples may run): ASHA with a --max-trials above --samples."""
        return self.trial_cap > self.samples

    @property
    def study_url(self) -> str:
        """Where this search's Optuna study is: --storage, or its file in its directory."""
        from tuner.experiment import study_url

        return study_url(self.experiment_dir, self.storage)

    @property
    def experiment_dir(self) -> Path:
        """<out>/<name>, absolute. A config without a name has none yet: see `named()`."""
        if self.name is None:
            raise ValueError("this SearchConfig has no name yet; cfg.named() gives it its run's")
        return Path(self.out).expanduser().resolve() / self.name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Raise ConfigError (one line) for anything that cannot run. Starts nothing. The name
        (and whether its experiment exists) is checked only when there is one: search() names
        the config before it validates it."""
        from search_spaces import SpaceError, get_space

        if self.dataset not in DATASETS:
            raise ConfigError(
                f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)}"
            )
        try:
            get_space(self.space)
        except SpaceError as e:
            raise ConfigError(str(e)) from e
        if self.model:
            import_callable(self.model)  # ConfigError: no such file, no such function
        if self.mlflow:
            import importlib.util

            if importlib.util.find_spec("mlflow") is None:
                raise ConfigError(
                    "--mlflow needs MLflow, which is not installed: "
                    'pip install "cnn-tuner[mlflow]" (or mlflow)'
                )
        for field, value in (("samples", self.samples), ("epochs", self.epochs)):
            _positive_int(field, value)
        self.validate_confirm()
        for field, maybe in (("concurrency", self.concurrency), ("val-count", self.val_count),
                             ("image-size", self.image_size), ("max-params", self.max_params),
                             ("decode-workers", self.decode_workers),
                             ("max-macs", self.max_macs)):  # fmt: skip
            if maybe is not None:
                _positive_int(field, maybe)
        if not isinstance(self.max_failures, int) or self.max_failures < 0:
            raise ConfigError(
                f"--max-failures must be a whole number >= 0, got {self.max_failures}"
            )
        if not isinstance(self.reduction_factor, int) or self.reduction_factor < 2:
            raise ConfigError(
                f"--reduction-factor must be an integer >= 2, got {self.reduction_factor}"
            )
        if self.storage:
            from tuner.config.storage_url import parse_storage

            parse_storage(self.storage)
        if self.max_trials is not None:
            _positive_int("max-trials", self.max_trials)
            if self.scheduler != "asha":
                raise ConfigError(
                    "--max-trials applies only with --scheduler asha (FIFO runs exactly "
                    "--samples trials)"
                )
            if self.max_trials < self.samples:
                raise ConfigError(
                    f"--max-trials {self.max_trials} is below --samples {self.samples}: the "
                    "budget could never be spent; lower --samples instead"
                )
        if self.grace_period is not None:  # None: the default, derived from --epochs
            _positive_int("grace-period", self.grace_period)
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
        if isinstance(self.gpus_per_trial, str):
            if self.gpus_per_trial != "auto":
                raise ConfigError(
                    f"--gpus-per-trial must be a number or 'auto', got {self.gpus_per_trial!r}"
                )
        elif self.gpus_per_trial < 0:
            raise ConfigError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial}")
        elif self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise ConfigError("--gpus-per-trial above 1 must be a whole number of GPUs")
        if self.gpus_per_trial == "auto" and self.gpu_memory is None:
            from tuner.train.memory import gpu_memory_bytes

            gpu_memory_bytes(None)  # ConfigError where no GPU is in sight
        if self.gpu_memory is not None:
            if self.gpus_per_trial != "auto":
                raise ConfigError("--gpu-memory applies only with --gpus-per-trial auto")
            if not self.gpu_memory > 0:
                raise ConfigError(f"--gpu-memory must be > 0 GiB, got {self.gpu_memory}")
        if self.compile not in COMPILE_BACKENDS:
            raise ConfigError(
                f"--compile must be one of {', '.join(COMPILE_BACKENDS)}, got {self.compile!r}"
            )
        if not (isinstance(self.checkpoint_interval, (int, float))
                and self.checkpoint_interval >= 0):  # fmt: skip
            raise ConfigError(
                f"--checkpoint-interval must be >= 0 seconds, got {self.checkpoint_interval!r}"
            )
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError(f"--time-budget must be > 0, got {self.time_budget}")
        if self.name is not None and not NAME_PATTERN.match(str(self.name)):
            raise ConfigError(
                f"--name {self.name!r} must be letters, digits, '.', '_' or '-' (no slashes)"
            )
        if self.objectives is not None:
            parse_objectives(self.objectives)
        self._check_data_dir()
        self._check_out_dir()
        if self.dataset == "imagefolder":  # fewer than two classes: before Ray and decoding
            from tuner.data import DataError, check_image_folder

            try:
                check_image_folder(str(self.data_dir))
            except DataError as e:
                raise ConfigError(str(e)) from None

    def validate_confirm(self) -> None:
        """The confirm stage's options (also checked by `tuner confirm` and resume)."""
        for field, value in (("confirm-top", self.confirm_top),
                             ("confirm-seeds", self.confirm_seeds)):  # fmt: skip
            _positive_int(field, value)
        if self.confirm_seeds < 2:
            raise ConfigError(
                f"--confirm-seeds must be at least 2 (an interval needs two seeds), got "
                f"{self.confirm_seeds}; --no-confirm skips the stage"
            )

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
        existing = nearest_existing(out, "--out")  # it must be a writable directory
        if not existing.is_dir():
            raise ConfigError(f"--out {out}: {existing} is not a directory")
        try:  # really try: os.access says yes to root even on read-only filesystems
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError:
            raise ConfigError(f"--out {out} is not writable") from None
        if self.name is None:  # unnamed: see named()
            check_path_lengths(out, None, existing)
            return
        check_path_lengths(out, str(self.name), existing)
        if _exists(self.experiment_dir, "--out"):
            raise ConfigError(
                f"experiment {self.experiment_dir} already exists; choose another --name"
            )


def _exists(path: Path, flag: str) -> bool:
    """Path.exists(), False for a name too long to exist (check_path_lengths names it), and a
    ConfigError for a path that cannot be looked at (a folder on the way is not searchable)."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            return False
        raise ConfigError(f"{flag}: cannot look at {path}: {e.strerror}") from None
    return True


def nearest_existing(path: Path, flag: str) -> Path:
    """`path`, or its nearest ancestor that exists."""
    while not _exists(path, flag) and path != path.parent:
        path = path.parent
    return path


def _limit(directory: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(directory, name)
    except (OSError, ValueError):  # unknown here: the usual Linux limit
        return default
    return value if value > 0 else default  # -1: no limit known


def check_path_lengths(out: Path, name: str | None, existing: Path) -> None:
    """ConfigError (one line) unless --out's new folders and --name fit the filesystem of
    `existing` (out's nearest existing ancestor): each at most PC_NAME_MAX bytes (255 where
    unknown), and <out>/<name> short enough for the trial directories inside it to stay under
    PC_PATH_MAX."""
    name_max = _limit(existing, "PC_NAME_MAX", 255)
    path_max = _limit(existing, "PC_PATH_MAX", 4096)
    absolute = out.absolute()
    new_parts = absolute.parts[len(existing.absolute().parts) :]
    for flag, part in [*(("--out", p) for p in new_parts), *([("--name", name)] if name else [])]:
        size = len(os.fsencode(part))
        if size > name_max:
            raise ConfigError(
                f"{flag}: the name {_shortened(part)!r} is {size} bytes long and the filesystem of "
                f"{existing} allows at most {name_max} bytes in a file name; choose a shorter one"
            )
    exp = absolute / name if name else absolute / ("x" * 24)  # an unnamed one gets ~24 bytes
    size = len(os.fsencode(str(exp)))
    if size + PATH_ROOM > path_max:
        raise ConfigError(
            f"--out {_shortened(str(out))}: the experiment path is {size} bytes long and "
            f"the trial files inside it need {PATH_ROOM} more, over the filesystem's limit of "
            f"{path_max}; choose a shorter --out or --name"
        )


def _shortened(text: str, keep: int = 40) -> str:
    """`text`, or its start and end around '...' when it is longer than `keep` characters."""
    return text if len(text) <= keep else f"{text[: keep - 8]}...{text[-5:]}"


def claim_experiment_dir(exp: Path, user: str = "search") -> None:
    """Make the experiment directory, atomically: one os.mkdir that fails when it exists. Of
    two runs given the same --name at once exactly one makes it; the other gets a ConfigError
    (one line) and must leave the directory alone. Nothing may be written into it before."""
    exp.parent.mkdir(parents=True, exist_ok=True)
    try:
        exp.mkdir()
    except FileExistsError:
        raise ConfigError(
            f"experiment {exp} already exists (another {user} is using this name); choose "
            "another --name"
        ) from None


def _positive_int(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--{field} must be a whole number >= 1, got {value!r}")


if __name__ == "__main__":  # python -m tuner.config.search_config > docs/options.md
    from tuner.config.options import options_markdown

    print(options_markdown(SearchConfig.options()), end="")
