"""`tuner train`: retrain one configuration from scratch over fresh seeds, in this process
(no Ray), and write a small experiment directory of its own with a model file. Reads top to
bottom:

    the source (an experiment's winner, one of its trials with --trial, or a config file) and
    the options, all checked -> the dataset (an experiment's own split, from its provenance)
    -> <out>/<name>/ -> per seed: run_trial (tuner.train.trial; trainval: on train +
    validation images, without validation) -> its final state as a checkpoint -> its kept
    weights scored on the test split -> epochs.csv, retrain.json (the mean test accuracy with
    its 95 % interval), model.pt (the best seed's weights) and provenance.json

A search's best validation figure is the best of many noisy runs; retraining the winner under
seeds it never saw says what the configuration itself is worth, and --train-on trainval then
gives the final model the validation images too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pandas as pd

from tuner.config.search_config import (
    NAME_PATTERN,
    SearchConfig,
    check_path_lengths,
    claim_experiment_dir,
    nearest_existing,
)
from tuner.data import DATASETS, MIRROR_SENSITIVE
from tuner.errors import ConfigError
from tuner.experiment import (
    BEST_JSON,
    EPOCHS_CSV,
    MODEL_FILE,
    PARAMS_JSON,
    PROVENANCE_JSON,
    RETRAIN_JSON,
    fresh_seeds,
    read_json,
    read_params,
    trial_dirs,
    trial_index,
)
from tuner.experiment.stats import Interval, accuracy_interval, describe
from tuner.io import atomic_write_csv, atomic_write_json
from tuner.stages.console import say
from tuner.stages.provenance import save_record

if TYPE_CHECKING:
    from tuner.data import DatasetBundle
    from tuner.train.trial_data import TrialData

__all__ = ["RetrainResult", "SeedRun", "add_train_arguments", "retrain", "retrain_from_args"]

# Apart from the lab's 42 (every search's trials) and the confirm stage's 1000s: a retrain
# never repeats a seed the configuration was chosen under.
RETRAIN_SEED_START = 2000
TRAIN_ON = ("train", "trainval")
SEED_DIR_PREFIX = "seed_"  # <out>/<name>/seed_2000/checkpoint_000000/
CHECKPOINT_NAME = "checkpoint_000000"  # the one checkpoint of a seed: its final state
EPOCH_COLUMNS = ["seed", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                 "epoch_time_s"]  # fmt: skip
DATASET_KEYS = ("dataset", "data_dir", "val_count", "image_size")  # a SearchConfig's data


@dataclass(frozen=True)
class SeedRun:
    """One seed's retrain: its kept weights' validation accuracy (None for trainval, which has
    no validation) and test accuracy (None when it diverged before it had any)."""

    seed: int
    val_acc: float | None
    test_acc: float | None
    test_loss: float | None
    kept_epoch: int | None
    checkpoint: str | None  # relative to the retrain's directory
    diverged: bool


@dataclass(frozen=True)
class RetrainResult:
    directory: Path
    runs: list[SeedRun]
    test: Interval | None  # mean test accuracy over the seeds, 95 % interval (n >= 2)
    val: Interval | None  # the kept weights' validation accuracy; None for trainval
    model_path: Path | None  # None when every seed diverged
    chosen_seed: int | None  # the seed whose weights model.pt holds


@dataclass(frozen=True)
class _Source:
    """What to retrain: the flat config, where it came from, and its dataset's options."""

    config: dict[str, Any]
    name: str  # for the default output name
    trial_index: int | None
    record: dict[str, Any]  # provenance's "source"
    data: SearchConfig  # only its dataset fields are used


# --- the source --------------------------------------------------------------------------------


def _read_config_file(path: Path) -> dict[str, Any]:
    """A flat config from a JSON file (a trial's params.json is one) or a TOML file."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # Python 3.10
                import tomli as tomllib
            data: Any = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as e:  # json's and tomllib's decode errors are both ValueErrors
        raise ConfigError(f"{path}: cannot parse: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an object of flat config keys (lr, n_blocks, ...)")
    return data


def _winner(exp: Path) -> int:
    """The experiment's winner: the confirm stage's, when it ran, else the search's best."""
    best = read_json(exp / BEST_JSON)
    if best is None:
        raise ConfigError(
            f"{exp} has no readable {BEST_JSON} (the search has not finished); "
            "name a trial with --trial N"
        )
    confirm = best.get("confirm")
    chosen: Any = best.get("trial_index")
    if isinstance(confirm, dict) and confirm.get("winner") is not None:
        chosen = confirm["winner"]
        if isinstance(chosen, dict):  # a winner recorded with its details
            chosen = chosen.get("trial_index")
    if isinstance(chosen, bool) or not isinstance(chosen, int):
        raise ConfigError(f"{exp / BEST_JSON} names no winning trial; name one with --trial N")
    return chosen


def _experiment_source(exp: Path, given: str, trial: int | None, data_dir: str | None) -> _Source:
    record = read_json(exp / PROVENANCE_JSON)
    if record is None:
        raise ConfigError(f"{given} is not an experiment directory (no readable {PROVENANCE_JSON})")
    index = _winner(exp) if trial is None else trial
    found = [d for d in trial_dirs(exp) if trial_index(d) == index]
    if not found:
        known = sorted({trial_index(d) for d in trial_dirs(exp)} - {-1})
        listed = f"{known[0]}-{known[-1]}" if known else "none"
        raise ConfigError(f"{given} has no trial {index} (its trials: {listed})")
    config = read_params(found[0])
    if config is None:
        raise ConfigError(f"{found[0] / PARAMS_JSON} is missing or cut short")
    searched = record.get("config")
    options: dict[str, Any] = {}
    if isinstance(searched, dict):
        options = {k: searched[k] for k in DATASET_KEYS if k in searched}
    if data_dir is not None:  # the same dataset, where it lives on this machine
        options["data_dir"] = data_dir
    return _Source(
        config=config,
        name=exp.name + (f"-trial{index}" if trial is not None else ""),
        trial_index=index,
        record={"experiment": given, "path": str(exp), "trial_index": index,
                "winner": trial is None},
        data=SearchConfig(**options),
    )  # fmt: skip


def _resolve(
    source: str | Path,
    trial: int | None,
    dataset: str | None,
    data_dir: str | None,
    val_count: int | None,
    image_size: int | None,
) -> _Source:
    given = str(source)
    path = Path(source).expanduser()
    if path.is_dir():
        split = [f"--{k.replace('_', '-')}" for k, v in
                 (("dataset", dataset), ("val_count", val_count), ("image_size", image_size))
                 if v is not None]  # fmt: skip
        if split:
            raise ConfigError(
                f"{', '.join(split)} apply to a config file: an experiment directory retrains "
                "on its own dataset and split (from its provenance)"
            )
        return _experiment_source(path.resolve(), given, trial, data_dir)
    if not path.is_file():
        raise ConfigError(
            f"{given} is neither an experiment directory nor a config file (.json or .toml)"
        )
    if trial is not None:
        raise ConfigError("--trial applies to an experiment directory, not to a config file")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).lstrip("._-") or "config"
    data = SearchConfig(
        dataset=dataset or "digits", data_dir=data_dir, val_count=val_count, image_size=image_size
    )
    return _Source(
        config=_read_config_file(path), name=stem, trial_index=None,
        record={"config_file": given, "path": str(path.resolve())}, data=data,
    )  # fmt: skip


# --- checks ------------------------------------------------------------------------------------


def _check_options(
    trial: int | None, seeds: int, epochs: int | None, train_on: str, threads: int | None
) -> None:
    if trial is not None and (isinstance(trial, bool) or not isinstance(trial, int) or trial < 0):
        raise ConfigError(f"--trial must be a trial number >= 0, got {trial!r}")
    for flag, value in (("--seeds", seeds), ("--epochs", epochs), ("--threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):  # fmt: skip
            raise ConfigError(f"{flag} must be a whole number >= 1, got {value!r}")
    if train_on not in TRAIN_ON:
        raise ConfigError(f"--train-on must be one of {', '.join(TRAIN_ON)}, got {train_on!r}")


def _output_dir(out: str | Path, name: str) -> Path:
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"--name {name!r} must be letters, digits, '.', '_' or '-' (no slashes)")
    given = Path(out).expanduser()
    parent = nearest_existing(given, "--out")  # it must be a writable directory
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: cannot write in {parent}")
    check_path_lengths(given, name, parent)  # not 36 "File name too long" at mkdir
    exp = given.resolve() / name
    if exp.exists():
        raise ConfigError(f"{exp} already exists; choose another --name or --out")
    return exp


def _check_buildable(config: dict[str, Any], data: TrialData, given: str) -> None:
    """A network that cannot take this dataset's images fails here, before anything is
    written (e.g. a 32x32 architecture asked to retrain on 8x8 digits)."""
    import torch

    from tuner.train.arch import ArchError
    from tuner.train.config import TrainConfig
    from tuner.train.cost import model_cost
    from tuner.train.model import build_network

    try:
        cfg = TrainConfig.from_dict(config)
        if cfg.model:  # run once: on the meta device, or on the CPU where a build needs values
            model_cost(cfg, data.input_shape, data.num_classes)
        else:  # the built-in network checks its shapes as it is built
            with torch.device("meta"):
                build_network(cfg, data.input_shape, data.num_classes)
    except (ArchError, ConfigError) as e:
        raise ConfigError(f"{given}: {e}") from None


def _cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# --- progress ----------------------------------------------------------------------------------


def _seconds(s: float) -> str:
    s = max(0, round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _interval_text(interval: Interval, what: str) -> str:
    if interval["low"] is None or interval["high"] is None:
        return f"{what}: {interval['mean']:.4f} (1 seed: no interval)"
    return (
        f"{what}: {interval['mean']:.4f} ({describe(interval)}: "
        f"[{interval['low']:.4f}, {interval['high']:.4f}])"
    )


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


# --- the retrain -------------------------------------------------------------------------------


def retrain(
    source: str | Path,
    *,
    trial: int | None = None,
    epochs: int | None = None,
    seeds: int = 1,
    train_on: str = "train",
    out: str | Path = "experiments",
    name: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    val_count: int | None = None,
    image_size: int | None = None,
    threads: int | None = None,
    stream: TextIO | None = None,
) -> RetrainResult:
    """Retrain one configuration from scratch under `seeds` fresh seeds (2000, 2001, ...) and
    score each seed's kept weights on the test split.

    source: an experiment directory (its winner: the confirm stage's if it ran, else best.json's;
    or `trial`), or a JSON/TOML file of flat config keys, trained on `dataset` (default digits).
    An experiment directory brings its own dataset and split; `data_dir` may say where that
    dataset is on this machine. epochs: default the config's own. train_on "trainval": train
    on the training and validation images together, without validation (the kept weights are
    the last epoch's). Writes <out>/<name>/ (see the module docstring); raises ConfigError or
    DataError (one line) before writing anything for bad input.
    """
    stream = stream or sys.stdout
    _check_options(trial, seeds, epochs, train_on, threads)
    src = _resolve(source, trial, dataset, data_dir, val_count, image_size)

    from tuner.train.config import TrainConfig

    base = TrainConfig.from_dict(src.config)  # a config TrainConfig rejects fails here
    epochs = base.epochs if epochs is None else epochs
    config = {**src.config, "epochs": epochs}
    if src.data.dataset in MIRROR_SENSITIVE:  # as a search sets it (tuner_setup.fixed_params)
        config.setdefault("hflip", False)
    started = datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    exp = _output_dir(out, name if name is not None else f"{src.name}-retrain-{stamp}")
    threads = threads or _cpu_threads()
    # SearchConfig reads $RAY_ADDRESS, and with an address load_data hands trials the cache's
    # location instead of the arrays: this process trains them itself.
    data_cfg = replace(src.data, address=None)

    from tuner.stages.preflight import load_data

    bundle, trial_data = load_data(data_cfg, stream)
    _check_buildable(config, trial_data, str(source))
    train_data = _training_data(trial_data, train_on)

    import torch

    from tuner.stages import provenance

    gpu = torch.cuda.is_available()  # set_up trains on the GPU only when given a share of it
    run_seeds = fresh_seeds(seeds, start=RETRAIN_SEED_START)
    settings = {
        "source": str(source), "trial": src.trial_index, "epochs": epochs, "seeds": seeds,
        "train_on": train_on, "out": str(out), "name": exp.name, "threads": threads,
        **{k: getattr(data_cfg, k) for k in DATASET_KEYS},
    }  # fmt: skip
    claim_experiment_dir(exp, "run")  # a run given this --name since _output_dir(): refused
    record: dict[str, Any] = dict(provenance.collect(settings, run_seeds[0]))
    assert train_data.train is not None  # _training_data: the arrays are here
    record["dataset"] = {
        "name": bundle.name, "source": bundle.source, "classes": list(bundle.classes),
        "input_shape": list(bundle.input_shape), "train": len(bundle.train.y),
        "val": len(bundle.val.y), "test": len(bundle.test.y),
        "trained_on": len(train_data.train.y),
    }  # fmt: skip
    record["source"] = src.record
    record["started"] = started.astimezone(timezone.utc).isoformat()
    save_record(exp, record)
    trained_on = "train + validation" if train_on == "trainval" else "train"
    say(
        stream,
        f"Retraining {src.name} on {bundle.name} {bundle.input_shape} "
        f"({len(train_data.train.y)} {trained_on} / {len(bundle.test.y)} test images): "
        f"{len(run_seeds)} seed(s) x {epochs} epochs on "
        f"{'the GPU' if gpu else f'{threads} CPU thread(s)'}; results in {exp}",
    )
    try:
        runs, rows = _train_seeds(
            exp, config, run_seeds, epochs, train_on, bundle, trial_data, train_data, threads,
            gpu, stream,
        )  # fmt: skip
    except KeyboardInterrupt:
        say(stream, f"\nStopped: {exp} is incomplete (no {RETRAIN_JSON}); retrain again")
        raise
    return _write_results(exp, src, config, record, runs, rows, epochs, train_on, bundle,
                          trial_data, stream)  # fmt: skip


def _training_data(trial_data: TrialData, train_on: str) -> TrialData:
    """What the seeds train on: the training split, or (trainval) the training and validation
    images together. The validation split stays in place; a trainval run never evaluates it."""
    if train_on == "train":
        return trial_data
    import dataclasses

    import numpy as np

    from tuner.data import Split

    train, val = trial_data.splits()
    both = Split(np.concatenate([train.x, val.x]), np.concatenate([train.y, val.y]))
    return dataclasses.replace(trial_data, train=both)


class _Shown:
    """The `report` each seed's run_trial calls once per epoch: the epoch's epochs.csv row,
    its progress line (time left: the mean epoch so far times the epochs left over all seeds),
    and the newest training state, which becomes the seed's checkpoint when it ends."""

    def __init__(self, epochs: int, seeds: int, validate: bool, stream: TextIO) -> None:
        self.epochs, self.seeds, self.validate, self.stream = epochs, seeds, validate, stream
        self.total, self.done, self.t0 = epochs * seeds, 0, time.monotonic()
        self.rows: list[dict[str, Any]] = []
        self.seed, self.index = 0, 0
        self.final: dict[str, Any] | None = None
        self.last: dict[str, Any] = {}

    def start(self, seed: int, index: int) -> None:
        self.seed, self.index, self.final, self.last = seed, index, None, {}

    def __call__(
        self, metrics: dict[str, Any], state: dict[str, Any] | None, wait: bool = False
    ) -> None:
        self.done += 1
        self.last = metrics
        if state is not None:  # every epoch's (the default CheckpointPolicy): keep the newest
            self.final = state
        self.rows.append({"seed": self.seed, **{k: metrics.get(k) for k in EPOCH_COLUMNS[1:]}})
        elapsed = time.monotonic() - self.t0
        left = elapsed / self.done * (self.total - self.done)
        figure = (f"val acc {metrics['val_acc']:.3f}" if self.validate
                  else f"train acc {metrics['train_acc']:.3f}")  # fmt: skip
        say(
            self.stream,
            f"seed {self.seed} ({self.index}/{self.seeds}) epoch {metrics['epoch']}/"
            f"{self.epochs}: train loss {metrics['train_loss']:.3g}, {figure} | "
            f"{_seconds(elapsed)} elapsed"
            + (f", about {_seconds(left)} left" if self.total > self.done else ""),
        )


def _train_seeds(
    exp: Path,
    config: dict[str, Any],
    run_seeds: list[int],
    epochs: int,
    train_on: str,
    bundle: DatasetBundle,
    trial_data: TrialData,
    train_data: TrialData,
    threads: int,
    gpu: bool,
    stream: TextIO,
) -> tuple[list[SeedRun], list[dict[str, Any]]]:
    """Each seed in turn, in this thread: its epochs, its final state saved, its test score."""
    import torch

    from tuner.train.checkpoints import save_checkpoint
    from tuner.train.scoring import evaluate_on_test
    from tuner.train.trial import run_trial

    validate = train_on == "train"
    gpu_share = 1.0 if gpu else 0.0  # the whole GPU: one seed at a time
    shown = _Shown(epochs, len(run_seeds), validate, stream)
    runs: list[SeedRun] = []
    torch_threads = torch.get_num_threads()  # set_up pins them; the caller gets theirs back
    try:
        for i, seed in enumerate(run_seeds, start=1):
            seed_config = {**config, "seed": seed}
            shown.start(seed, i)
            run_trial(seed_config, train_data, shown, threads=threads, gpu_share=gpu_share,
                      validate=validate)  # fmt: skip
            final, diverged = shown.final, bool(shown.last.get("diverged"))
            shown.final = None  # the next seed's training needs the memory more
            shown.done = i * epochs  # a diverged seed's epochs are left out of the estimate
            if final is None:  # diverged in its first epoch: no weights worth keeping
                say(stream, f"seed {seed}: diverged in epoch 1; no model")
                runs.append(SeedRun(seed, None, None, None, None, None, diverged=True))
                continue
            seed_dir = exp / f"{SEED_DIR_PREFIX}{seed}"
            checkpoint = seed_dir / CHECKPOINT_NAME
            checkpoint.mkdir(parents=True)
            save_checkpoint(checkpoint, final)
            del final
            score = evaluate_on_test(seed_config, seed_dir, bundle, trial_data)
            assert score is not None  # its checkpoint was just written
            run = SeedRun(
                seed=seed, val_acc=_finite(score["kept_val_acc"]) if validate else None,
                test_acc=_finite(score["test_acc"]), test_loss=_finite(score["test_loss"]),
                kept_epoch=int(score["kept_epoch"]), checkpoint=score["checkpoint"],
                diverged=diverged,
            )  # fmt: skip
            runs.append(run)
            val_text = f", val acc {run.val_acc:.4f}" if run.val_acc is not None else ""
            say(
                stream,
                f"seed {seed}: test acc {score['test_acc']:.4f} (weights of epoch "
                f"{run.kept_epoch}{val_text})" + (", diverged after it" if diverged else ""),
            )
    finally:
        torch.set_num_threads(torch_threads)
    return runs, shown.rows


def _write_results(
    exp: Path,
    src: _Source,
    config: dict[str, Any],
    record: dict[str, Any],
    runs: list[SeedRun],
    rows: list[dict[str, Any]],
    epochs: int,
    train_on: str,
    bundle: DatasetBundle,
    trial_data: TrialData,
    stream: TextIO,
) -> RetrainResult:
    """epochs.csv, provenance.json (finished), retrain.json and model.pt; the summary."""
    atomic_write_csv(exp / EPOCHS_CSV, pd.DataFrame(rows, columns=EPOCH_COLUMNS))
    finished = datetime.now(timezone.utc)
    record["finished"] = finished.isoformat()
    record["seconds"] = round(
        (finished - datetime.fromisoformat(record["started"])).total_seconds(), 3
    )
    save_record(exp, record)

    scored = [r for r in runs if r.test_acc is not None]
    tests = [r.test_acc for r in scored if r.test_acc is not None]
    test = accuracy_interval(tests, len(bundle.test.y)) if tests else None
    vals = [r.val_acc for r in scored if r.val_acc is not None]
    val = accuracy_interval(vals, len(bundle.val.y)) if train_on == "train" and vals else None
    if train_on == "train":  # the seed the validation split prefers (the first of equals)
        ranked = [r for r in scored if r.val_acc is not None]
        chosen = max(ranked, key=lambda r: r.val_acc or 0.0) if ranked else None
    else:  # no validation to choose by: the first seed, so that the choice ignores the test split
        chosen = scored[0] if scored else None

    model_path = None
    if chosen is not None:
        model_path = _write_model(exp, src, config, record, chosen, train_on, bundle, trial_data)
    summary = {
        "source": src.record,
        "config": {k: v for k, v in config.items() if k != "seed"},  # each run's seed: "runs"
        "epochs": epochs,
        "seeds": [r.seed for r in runs],
        "train_on": train_on,
        "runs": [asdict(r) for r in runs],
        "test": test,
        "val": val,
        "chosen_seed": chosen.seed if chosen is not None else None,
        "model": MODEL_FILE if model_path is not None else None,
    }
    atomic_write_json(exp / RETRAIN_JSON, summary)

    say(stream, "")
    if test is None:
        say(stream, "Every seed diverged: no test accuracy and no model")
    else:
        say(stream, _interval_text(test, "Test accuracy"))
    if val is not None:
        say(stream, _interval_text(val, "Validation accuracy (kept weights)"))
    say(stream, f"Results: {exp}")
    if model_path is not None and chosen is not None:
        say(stream, f"Model:   {model_path} (seed {chosen.seed})")
    return RetrainResult(exp, runs, test, val, model_path, chosen.seed if chosen else None)


def _write_model(
    exp: Path,
    src: _Source,
    config: dict[str, Any],
    record: dict[str, Any],
    chosen: SeedRun,
    train_on: str,
    bundle: DatasetBundle,
    trial_data: TrialData,
) -> Path:
    from tuner.deploy.model_file import model_record, write_model_file
    from tuner.train.checkpoints import load_best_weights
    from tuner.train.config import TrainConfig
    from tuner.train.trial import normalization

    assert chosen.checkpoint is not None  # scored seeds have one
    seed_config = {**config, "seed": chosen.seed}
    weights, _ = load_best_weights(exp / chosen.checkpoint)
    mean, std = normalization(TrainConfig.from_dict(seed_config), trial_data)
    origin = src.record["path"]  # absolute: the model file is read far from where it was made
    model = model_record(
        config=seed_config, state_dict=weights, input_shape=bundle.input_shape,
        classes=bundle.classes, mean=mean, std=std, val_acc=chosen.val_acc,
        test_acc=chosen.test_acc,
        source={"retrained_from": origin, "trial_index": src.trial_index, "seed": chosen.seed,
                "train_on": train_on, "retrain_dir": str(exp)},
        provenance=record,
    )  # fmt: skip
    return write_model_file(exp / MODEL_FILE, model)


# --- the command -------------------------------------------------------------------------------


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """`tuner train`'s arguments (tuner/cli.py builds its subparser with these)."""
    from tuner.config.options import positive_int

    parser.add_argument(
        "source", metavar="DIR|CONFIG",
        help="an experiment directory (retrains its winner, or --trial N) or a config file "
        f"of flat keys (.json, e.g. a trial's {PARAMS_JSON}, or .toml)",
    )  # fmt: skip
    parser.add_argument("--trial", type=int, default=None, metavar="N",
                        help="with DIR: retrain this trial instead of the winner")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="epochs per seed (default: the config's own)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=1, metavar="S",
                        help=f"retrain under S fresh seeds ({RETRAIN_SEED_START}, "
                        f"{RETRAIN_SEED_START + 1}, ...); default %(default)s")  # fmt: skip
    parser.add_argument(
        "--train-on", choices=TRAIN_ON, default="train",
        help="train: keep the lowest-validation-loss weights as the search did; trainval: train "
        "on the validation images too, without validation (the last epoch's weights are "
        "kept; only test accuracy is reported); default %(default)s",
    )  # fmt: skip
    parser.add_argument("--out", default="experiments",
                        help="parent directory of the output; default ./%(default)s")  # fmt: skip
    parser.add_argument("--name", default=None,
                        help="output directory name (default <source>-retrain-<timestamp>; "
                        "<source>: the experiment's name, with -trial<N>, or the file's "
                        "stem)")  # fmt: skip
    data = parser.add_argument_group("dataset (a config file; DIR brings its own)")
    data.add_argument("--dataset", choices=DATASETS, default=None,
                      help="the dataset to train a config file on; default digits")  # fmt: skip
    data.add_argument("--data-dir", default=None, metavar="DIR",
                      help="dataset root (default $TUNER_DATA_DIR or ~/.cache/cnn-tuner); with "
                      "DIR, where the experiment's dataset is on this machine")  # fmt: skip
    data.add_argument("--val-count", type=positive_int, default=None, metavar="N",
                      help="validation images held out of the training split")  # fmt: skip
    data.add_argument(
        "--image-size", type=positive_int, default=None, metavar="PIXELS",
        help="imagefolder: resize and center-crop every image to this side",
    )  # fmt: skip
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch CPU threads (default: all cores)")  # fmt: skip


def retrain_from_args(args: argparse.Namespace) -> RetrainResult:
    """`tuner train`'s command line (add_train_arguments) as a retrain. The CLI turns its
    ConfigError / DataError into one line and exit 2."""
    return retrain(
        args.source, trial=args.trial, epochs=args.epochs, seeds=args.seeds,
        train_on=args.train_on, out=args.out, name=args.name, dataset=args.dataset,
        data_dir=args.data_dir, val_count=args.val_count, image_size=args.image_size,
        threads=args.threads,
    )  # fmt: skip
