"""Experiment directory -> tidy DataFrames (trials, epochs, per-class) and the JSON records.

Reads only files: trials.csv / epochs.csv when the search finished, otherwise Ray's per-trial
files through `tuner.experiment.collect_tables`, so an interrupted, still-running or copied
experiment loads too. The directory's file names, columns and rules are tuner.experiment's;
nothing here imports Ray or torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from analysis._lab import lab_per_class
from tuner.experiment import (
    BEST_JSON,
    CONFIG_PREFIX,
    EPOCHS_CSV,
    IMPORTED_ATTR,
    PROVENANCE_JSON,
    REJECTED_ATTR,
    REJECTED_CSV,
    TRIALS_CSV,
    Damage,
    collect_tables,
    finite,
    has_study,
    has_trial_dirs,
    journal_path,
    pick_best,
    read_json,
    read_params,
    read_table,
    recorded_storage,
    study_engine_kwargs,
    study_url,
    trial_dirs,
)
from tuner.experiment.records import BestRecord
from tuner.experiment.stats import accuracy_interval, difference, verdict_clauses

# Config keys that are constants of the search, not choices of the searcher.
FIXED_KEYS = ("epochs",)
# Hyperparameters in the order a reader thinks about them (seed_cnn's names); others follow.
PARAM_ORDER = (
    "lr", "batch_size", "optimizer", "momentum", "weight_decay", "n_blocks", "convs_per_block",
    "channels_b0", "channels_b1", "channels_b2", "channels_b3", "kernel_size", "stride",
    "padding", "dilation", "pool", "batch_norm", "fc_layers", "fc_width_0", "fc_width_1",
    "dropout", "dropout_rate", "dropout_layers",
)  # fmt: skip


class ExperimentError(ValueError):
    """The path is not an experiment directory (one-line message)."""


@dataclass(frozen=True)
class Experiment:
    path: Path
    name: str
    trials: pd.DataFrame  # trials.csv + `outcome` (e.g. "stopped by ASHA at epoch 2")
    epochs: pd.DataFrame  # epochs.csv: one row per trial per epoch
    best: BestRecord | None  # best.json; None before the search scored a best trial
    provenance: dict[str, Any]  # provenance.json; {} when missing
    epoch_budget: int  # every trial's epoch budget (ASHA's max_t)
    partial: bool  # True when the tables were rebuilt from trial dirs (no trials.csv)
    per_class: pd.DataFrame = field(repr=False)  # class, model, test_acc (tidy; may be empty)
    # Configurations refused for --max-params / --max-macs: params, macs, reason, config/...
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    # What reading skipped, one line each (result files cut short by a crash or a full disk)
    warnings: tuple[str, ...] = ()

    @property
    def config(self) -> dict[str, Any]:
        """The search's own settings (provenance `config`)."""
        return dict(self.provenance.get("config") or {})

    @property
    def classes(self) -> list[str]:
        found = (self.provenance.get("dataset") or {}).get("classes") or (self.best or {}).get(
            "classes"
        )
        return [str(c) for c in found or []]

    @property
    def hyperparameters(self) -> list[str]:
        return hyperparameters(self.trials)


def hyperparameters(trials: pd.DataFrame) -> list[str]:
    """The searched parameters: `config/` columns that take more than one value (or are missing
    for some trials, i.e. conditional), in PARAM_ORDER first."""
    names = []
    for col in trials.columns:
        if not col.startswith(CONFIG_PREFIX):
            continue
        name = col[len(CONFIG_PREFIX) :]
        values = trials[col]
        if name in FIXED_KEYS or (values.notna().all() and values.nunique(dropna=True) <= 1):
            continue
        names.append(name)
    rank = {n: i for i, n in enumerate(PARAM_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def outcome_label(status: str, epochs_run: int, scheduler: str = "asha") -> str:
    """How a trial ended, in words: completed, stopped by ASHA at epoch e, diverged, ..."""
    if status == "stopped":
        who = "ASHA" if scheduler == "asha" else "the search"
        return f"stopped by {who} at epoch {int(epochs_run)}"
    return str(status)


def _epoch_budget(provenance: dict[str, Any], trials: pd.DataFrame, epochs: pd.DataFrame) -> int:
    budget = (provenance.get("config") or {}).get("epochs")
    if budget is None and f"{CONFIG_PREFIX}epochs" in trials:
        budget = trials[f"{CONFIG_PREFIX}epochs"].max()
    if (budget is None or pd.isna(budget)) and not epochs.empty:
        budget = epochs["epoch"].max()
    return int(budget) if budget is not None and not pd.isna(budget) else 1


def _budget_from_trial_dirs(path: Path) -> int | None:
    for trial_dir in trial_dirs(path):
        config = read_params(trial_dir) or {}
        if isinstance(config.get("epochs"), int):
            return config["epochs"]
    return None


def _tidy_trials(trials: pd.DataFrame, scheduler: str) -> pd.DataFrame:
    trials = trials.copy()
    if trials.empty:
        return trials
    trials["is_baseline"] = trials["is_baseline"].astype(str).str.lower() == "true"
    trials["error"] = trials["error"].fillna("").astype(str) if "error" in trials else ""
    trials["status"] = trials["status"].astype(str)
    trials["epochs_run"] = trials["epochs_run"].fillna(0).astype(int)
    for col in ("best_val_acc", "best_val_loss", "val_acc", "val_loss", "train_loss", "params",
                "train_seconds", "best_epoch"):  # fmt: skip
        if col in trials:
            trials[col] = pd.to_numeric(trials[col], errors="coerce")
    trials["outcome"] = [
        outcome_label(s, e, scheduler)
        for s, e in zip(trials["status"], trials["epochs_run"], strict=True)
    ]
    return trials.sort_values("trial_index").reset_index(drop=True)


def _tidy_epochs(epochs: pd.DataFrame) -> pd.DataFrame:
    epochs = epochs.copy()
    for col in ("train_loss", "val_loss", "train_acc", "val_acc", "epoch_time_s"):
        if col in epochs:
            epochs[col] = pd.to_numeric(epochs[col], errors="coerce")
    if "diverged" in epochs:
        epochs["diverged"] = epochs["diverged"].astype(str).str.lower() == "true"
    if not epochs.empty:
        epochs = epochs.sort_values(["trial_index", "epoch"]).reset_index(drop=True)
    return epochs


def per_class_table(best: BestRecord | None) -> pd.DataFrame:
    """Tidy per-class test accuracy: the best trial, the baseline trial, the lab's report."""
    rows: list[dict[str, Any]] = []
    if best and best.get("per_class_acc"):
        classes = [str(c) for c in best.get("classes") or list(best["per_class_acc"])]
        sources: list[tuple[str, Mapping[str, Any]]] = [
            (f"best (trial {best.get('trial_index')})", best["per_class_acc"])
        ]
        base: Mapping[str, Any] = best.get("baseline") or {}
        if base.get("per_class_acc"):
            sources.append((f"baseline (trial {base.get('trial_index')})", base["per_class_acc"]))
        lab = lab_per_class(classes)
        if lab is not None:
            sources.append(("lab report (CIFAR-10)", dict(zip(classes, lab, strict=True))))
        for model, accs in sources:
            for c in classes:
                rows.append({"class": c, "model": model, "test_acc": finite(accs.get(c))})
    return pd.DataFrame(rows, columns=["class", "model", "test_acc"])


def load_experiment(path: str | Path) -> Experiment:
    """Load an experiment directory: finished, interrupted or copied from another machine."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ExperimentError(f"{path} does not exist")
    if not path.is_dir():
        raise ExperimentError(f"{path} is not a directory")
    provenance = read_json(path / PROVENANCE_JSON) or {}
    if not (path / TRIALS_CSV).is_file() and not has_trial_dirs(path) and not provenance:
        raise ExperimentError(
            f"{path} is not an experiment directory (no {TRIALS_CSV}, {PROVENANCE_JSON} "
            "or trial directories)"
        )
    scheduler = str((provenance.get("config") or {}).get("scheduler", "asha"))
    partial = not (path / TRIALS_CSV).is_file()
    warnings: list[str] = []
    if partial:
        budget = (provenance.get("config") or {}).get("epochs") or _budget_from_trial_dirs(path)
        damage = Damage()
        trials, epochs = collect_tables(path, int(budget or 1), damage=damage)
        if damage.summary():
            warnings.append(str(damage.summary()))
    else:
        trials = read_table(path / TRIALS_CSV)
        epochs = read_table(path / EPOCHS_CSV)
    trials, epochs = _tidy_trials(trials, scheduler), _tidy_epochs(epochs)
    best = _sound_confirm(cast("BestRecord | None", read_json(path / BEST_JSON)), provenance)
    name = str((provenance.get("config") or {}).get("name") or path.name)
    return Experiment(
        path=path,
        name=name,
        trials=trials,
        epochs=epochs,
        best=best,
        provenance=provenance,
        epoch_budget=_epoch_budget(provenance, trials, epochs),
        partial=partial,
        per_class=per_class_table(best),
        rejected=read_table(path / REJECTED_CSV),
        warnings=tuple(warnings),
    )


def _sound_confirm(best: BestRecord | None, provenance: Mapping[str, Any]) -> BestRecord | None:
    """best.json as tuner.experiment.stats scores it now. A confirm record written before its
    accuracy intervals were t intervals on the logit (plain t ones could pass 100 %) and before
    its differences said "too few seeds" has them recomputed from its per-seed values, and its
    verdict's clauses rewritten; a current record is left as it is."""
    confirm = (best or {}).get("confirm")
    if not best or not isinstance(confirm, dict) or not confirm.get("configs"):
        return best
    configs = confirm["configs"]
    diffs = [confirm[k] for k in ("vs_runner_up", "vs_baseline") if confirm.get(k)]
    if all((c.get("val") or {}).get("method") for c in configs) and all(
        "call" in (d.get("val") or {}) for d in diffs
    ):
        return best
    dataset = provenance.get("dataset") or {}
    images = {"val": best.get("val_images") or dataset.get("val"),
              "test": best.get("test_images") or dataset.get("test")}  # fmt: skip
    seeds: dict[int, dict[str, list[float]]] = {}
    fresh = []
    for c in configs:
        c = dict(c)
        per_seed = c.get("per_seed") or []
        mine = seeds[int(c["trial_index"])] = {}
        for split in ("val", "test"):
            values = [r.get(f"{split}_acc") for r in per_seed]
            mine[split] = [float(v) for v in values if v is not None and math.isfinite(v)]
            if mine[split]:
                c[split] = accuracy_interval(mine[split], images[split])
        fresh.append(c)
    confirm = {**confirm, "configs": fresh}
    winner = seeds.get(int(confirm.get("winner", -1)))
    for key in ("vs_runner_up", "vs_baseline"):
        versus = confirm.get(key)
        other = seeds.get(int(versus["trial_index"])) if versus else None
        if versus and winner and other:
            versus = {**versus}
            for split in ("val", "test"):
                if winner[split] and other[split]:
                    versus[split] = difference(winner[split], other[split])
            confirm[key] = versus
    verdict = str(confirm.get("verdict") or "")
    if verdict:
        first = verdict.split("; it ")[0].removesuffix(".")
        clauses = verdict_clauses(confirm.get("vs_runner_up"), confirm.get("vs_baseline"))
        confirm["verdict"] = first + clauses + "."
    return cast(BestRecord, {**best, "confirm": confirm})


def best_trial_index(exp: Experiment) -> int | None:
    """The best trial: best.json's, or (before it exists) the one tuner.experiment.pick_best
    chooses, as the search will when it ends."""
    if exp.best and exp.best.get("trial_index") is not None:
        return int(exp.best["trial_index"])
    row = pick_best(exp.trials)
    return None if row is None else int(row["trial_index"])


def baseline_index(trials: pd.DataFrame) -> int | None:
    if trials.empty or "is_baseline" not in trials:
        return None
    rows = trials[trials["is_baseline"]]
    return int(rows.iloc[0]["trial_index"]) if not rows.empty else None


def display_value(value: Any) -> str:
    """A config value as a reader wants it: 128 not 128.0, 0.00123 not 0.0012345678."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.3g}"
    return str(value)


def load_study(exp: Experiment, imported: bool = False) -> Any | None:
    """The experiment's Optuna study (optuna.journal, an older experiment's optuna.db, or its
    --storage server), or None when there
    is none: its
    trials that trained here, or with `imported` only those told to it by --warm-start."""
    if not has_study(exp.path):
        return None
    import optuna  # only here: loading tables and drawing most figures needs no Optuna

    server = recorded_storage(exp.path)
    url = study_url(exp.path)  # a server's with a connect timeout: down, it is said in 10 s
    journal = journal_path(url)
    if journal is not None:  # read only: Optuna's reader takes no lock and skips a torn tail
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage: Any = JournalStorage(JournalFileBackend(str(journal)))
    else:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=study_engine_kwargs(url) or None)
    names = optuna.get_all_study_names(storage=storage)
    name = exp.config.get("name")
    if name not in names and (server is not None or not names):
        return None  # a server holds other experiments' studies: only this one's will do
    study = optuna.load_study(study_name=name if name in names else names[0], storage=storage)
    if not imported:
        trained = [
            t for t in study.trials if not {REJECTED_ATTR, IMPORTED_ATTR} & set(t.user_attrs)
        ]
    else:
        trained = [t for t in study.trials if IMPORTED_ATTR in t.user_attrs]
    if len(trained) == len(study.trials):
        return study
    # Configurations refused for the size budget never trained, and those of another experiment
    # (--warm-start) did not train here: each kind is left out of the other (in memory).
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    clean = optuna.create_study(study_name=study.study_name, directions=study.directions)
    clean.add_trials(trained)
    return clean
