"""Synthetic but realistic experiment directories for the analysis tests (no Ray, no training).

`write_experiment` lays out what `tuner search` leaves behind (trials.csv, epochs.csv,
best.json, provenance.json and, asked for, optuna.journal) for any number of trials: seed_cnn-like
configs drawn by a seeded numpy generator, loss curves that learn, overfit, plateau or blow up
depending on the config, and outcomes as ASHA would give them (stopped at rungs 1, 3, 9 of a
10-epoch budget) or as the test says (`reached`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")  # fmt: skip
RUNGS = (1, 3, 9)
# seed_cnn-like Optuna distributions of the configs _config draws (for optuna.journal)
_CHANNELS, _WIDTHS = [16, 32, 64, 128, 256], [32, 64, 128, 256, 512]
# --objectives names -> trials.csv column, for a multi-objective optuna.journal
_OBJECTIVE_COLUMNS = {"val_acc": "best_val_acc", "val_loss": "best_val_loss", "params": "params"}


def _distributions() -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    Cat = CategoricalDistribution

    return {
        "kernel_size": Cat([3, 5]), "dilation": Cat([1, 2]), "stride": Cat([1, 2]),
        "padding": Cat(["same", "valid"]), "pool": Cat(["max", "avg"]),
        "convs_per_block": IntDistribution(1, 3), "n_blocks": IntDistribution(1, 3),
        **{f"channels_b{b}": Cat(_CHANNELS) for b in range(3)},
        "batch_norm": Cat([False, True]), "fc_layers": IntDistribution(0, 2),
        **{f"fc_width_{j}": Cat(_WIDTHS) for j in range(2)},
        "dropout": Cat([False, True]), "dropout_rate": FloatDistribution(0.1, 0.6),
        "dropout_layers": IntDistribution(1, 2), "batch_size": Cat([32, 64, 128, 256, 512]),
        "optimizer": Cat(["sgd", "adam", "adamw"]), "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "momentum": FloatDistribution(0.0, 0.99),
        "weight_decay": Cat([0.0, 1e-5, 1e-4, 5e-4, 1e-3]),
    }  # fmt: skip


def _write_study(
    path: Path,
    name: str,
    runs: list[tuple[dict[str, Any], dict[str, Any]]],
    objectives: str | None,
) -> None:
    """optuna.journal as TruthfulOptunaSearch leaves it: one trial per Tune trial (user attribute
    tune_trial_id), COMPLETE when it ran its budget, PRUNED when stopped, FAIL when diverged;
    single-objective best_val_acc (maximize) with each epoch as an intermediate value, or the
    --objectives values."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from optuna.trial import TrialState

    from tuner.experiment import TUNE_TRIAL_ID

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parts = [p.strip().split(":") for p in objectives.split(",")] if objectives else []
    study = optuna.create_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(path / "optuna.journal"))),
        directions=[f"{m}imize" for _, m in parts] if parts else ["maximize"],
    )  # fmt: skip
    space = _distributions()
    states = {"completed": TrialState.COMPLETE, "stopped": TrialState.PRUNED,
              "diverged": TrialState.FAIL}  # fmt: skip
    for cfg, row in runs:
        params = {k: _plain({k: v})[k] for k, v in cfg.items() if k in space}
        state = states[row["status"]]
        values = None
        if state == TrialState.COMPLETE:
            values = [float(row[_OBJECTIVE_COLUMNS[n]]) for n, _ in parts] or [
                float(row["best_val_acc"])
            ]
        study.add_trial(optuna.trial.create_trial(
            state=state, params=params, distributions={k: space[k] for k in params},
            values=values, user_attrs={TUNE_TRIAL_ID: row["trial_id"]},
            intermediate_values={} if parts else row["curve"],
        ))  # fmt: skip


def _config(rng: np.random.Generator, index: int) -> dict[str, Any]:
    if index == 0:  # the lab's network, as seed_cnn's BASELINE
        return {
            "kernel_size": 3, "dilation": 1, "stride": 1, "padding": "same", "pool": "max",
            "convs_per_block": 2, "n_blocks": 3, "channels_b0": 64, "channels_b1": 128,
            "channels_b2": 256, "batch_norm": False, "fc_layers": 2, "fc_width_0": 256,
            "fc_width_1": 64, "dropout": True, "dropout_rate": 0.2, "dropout_layers": 1,
            "batch_size": 64, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9,
            "weight_decay": 0.0,
        }  # fmt: skip
    cfg: dict[str, Any] = {
        "kernel_size": int(rng.choice([3, 5])),
        "dilation": int(rng.choice([1, 2])),
        "stride": int(rng.choice([1, 2])),
        "padding": str(rng.choice(["same", "valid"])),
        "pool": str(rng.choice(["max", "avg"])),
        "convs_per_block": int(rng.integers(1, 4)),
        "n_blocks": int(rng.integers(1, 4)),
    }
    for b in range(cfg["n_blocks"]):
        cfg[f"channels_b{b}"] = int(rng.choice([16, 32, 64, 128, 256]))
    cfg["batch_norm"] = bool(rng.random() < 0.5)
    cfg["fc_layers"] = int(rng.integers(0, 3))
    for j in range(cfg["fc_layers"]):
        cfg[f"fc_width_{j}"] = int(rng.choice([32, 64, 128, 256, 512]))
    if cfg["fc_layers"]:
        cfg["dropout"] = bool(rng.random() < 0.5)
        if cfg["dropout"]:
            cfg["dropout_rate"] = float(rng.uniform(0.1, 0.6))
            cfg["dropout_layers"] = int(rng.integers(1, cfg["fc_layers"] + 1))
    cfg["batch_size"] = int(rng.choice([32, 64, 128, 256, 512]))
    cfg["optimizer"] = str(rng.choice(["sgd", "adam", "adamw"]))
    cfg["lr"] = float(10 ** rng.uniform(-4, -1))
    if cfg["optimizer"] == "sgd":
        cfg["momentum"] = float(rng.uniform(0.0, 0.99))
    cfg["weight_decay"] = float(rng.choice([0.0, 1e-5, 1e-4, 5e-4, 1e-3]))
    return cfg


def _params(cfg: dict[str, Any]) -> int:
    chans = [cfg[f"channels_b{b}"] for b in range(cfg["n_blocks"])]
    conv = sum(c * c * cfg["kernel_size"] ** 2 * cfg["convs_per_block"] for c in chans)
    fc = sum(cfg.get(f"fc_width_{j}", 0) * chans[-1] for j in range(cfg["fc_layers"]))
    return int(conv + fc + 10 * chans[-1] + 1000)


def _curves(rng: np.random.Generator, cfg: dict[str, Any], epochs: int) -> list[dict]:
    """Per-epoch losses: lr too high blows up, no batch norm and tiny lr plateaus, big nets
    without dropout overfit, the rest learn."""
    chance = math.log(10)
    blows_up = cfg["lr"] > 0.05 and not cfg["batch_norm"] and cfg["optimizer"] != "sgd"
    speed = 0.15 + 3.0 * min(cfg["lr"], 0.02) / 0.02 * (1.5 if cfg["batch_norm"] else 0.7)
    floor = 0.25 + 0.4 * rng.random()
    overfit = 0.06 if not cfg.get("dropout") and _params(cfg) > 200_000 else 0.0
    rows, best_loss, best_acc, best_epoch = [], math.inf, 0.0, 0
    for e in range(1, epochs + 1):
        train = floor * 0.6 + (chance - floor * 0.6) * math.exp(-speed * e)
        val = floor + (chance - floor) * math.exp(-speed * e) + overfit * max(0, e - 3) ** 1.3
        val *= 1 + 0.02 * rng.standard_normal()
        diverged = False
        if blows_up and e >= 2:
            train, val, diverged = 50.0 * e, float("nan"), True
        acc = max(0.1, min(0.99, 1.0 - val / chance * 0.9)) if math.isfinite(val) else 0.1
        if math.isfinite(val) and val < best_loss:
            best_loss, best_acc, best_epoch = val, acc, e
        rows.append({
            "epoch": e, "train_loss": train, "train_acc": min(0.999, 1 - train / chance * 0.9),
            "val_loss": val, "val_acc": acc, "best_val_loss": best_loss, "best_val_acc": best_acc,
            "best_epoch": best_epoch, "epoch_time_s": 0.5 + _params(cfg) / 2e5,
            "images_per_s": 1000.0, "lr": cfg["lr"], "params": _params(cfg),
            "diverged": diverged, "time_total_s": 0.0, "node_id": "node",
        })  # fmt: skip
        if diverged:
            break
    return rows


def write_experiment(
    path: str | Path,
    trials: int = 40,
    epochs: int = 10,
    seed: int = 0,
    name: str | None = None,
    classes: tuple[str, ...] = CIFAR_CLASSES,
    overrides: dict[int, dict[str, Any]] | None = None,
    reached: list[int] | None = None,
    study: bool = False,
    objectives: str | None = None,
    scheduler: str = "asha",
) -> Path:
    """Write a finished experiment to `path` (created) and return it.

    overrides: trial index -> config values to force (e.g. a malicious categorical value).
    reached: each trial's epochs, instead of the ASHA-like draw (fewer than `epochs`: stopped;
    a diverging config may still end sooner). study: write optuna.journal too; objectives: make it
    multi-objective, e.g. "val_acc:max,params:min" (recorded in provenance). scheduler:
    provenance's.
    """
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    trial_rows, epoch_rows, runs = [], [], []
    alive_at = {}  # ASHA-like: at each rung keep roughly the better third by val loss
    for index in range(trials):
        cfg = {**_config(rng, index), "epochs": epochs, **(overrides or {}).get(index, {})}
        rows = _curves(rng, cfg, epochs)
        stop = None
        if reached is not None:
            stop = reached[index] if reached[index] < epochs else None
        for rung in RUNGS if reached is None else ():
            if rung < epochs and len(rows) > rung:
                seen = alive_at.setdefault(rung, [])
                loss = rows[rung - 1]["val_loss"]
                seen.append(loss)
                if index and loss > np.quantile(seen, 1 / 3) and rng.random() < 0.8:
                    stop = rung
                    break
        rows = rows[:stop] if stop else rows
        diverged = bool(rows[-1]["diverged"])
        status = "diverged" if diverged else ("stopped" if stop else "completed")
        trial_id = f"{index:08x}"
        clock = 0.0
        for r in rows:
            clock += r["epoch_time_s"] + 0.1
            r["time_total_s"] = clock
            epoch_rows.append({"trial_index": index, "trial_id": trial_id, **r})
        last = rows[-1]
        trial_rows.append({
            "trial_index": index, "trial_id": trial_id, "is_baseline": index == 0,
            "status": status, "epochs_run": len(rows), "val_loss": last["val_loss"],
            "val_acc": last["val_acc"], "train_loss": last["train_loss"],
            "train_acc": last["train_acc"], "best_val_loss": last["best_val_loss"],
            "best_val_acc": last["best_val_acc"], "best_epoch": last["best_epoch"],
            "params": last["params"], "train_seconds": sum(r["epoch_time_s"] for r in rows),
            "wall_seconds": clock, "images_per_s": 1000.0, "node_id": "node",
            "num_failures": 0, "error": "", "trial_dir": f"trial_{index:04d}_{trial_id}",
            **{f"config/{k}": v for k, v in sorted(cfg.items())},
        })  # fmt: skip
        curve = {int(r["epoch"]): float(r["best_val_acc"]) for r in rows}
        runs.append((cfg, {**trial_rows[-1], "curve": curve}))
    table = pd.DataFrame(trial_rows)
    table.to_csv(path / "trials.csv", index=False)
    pd.DataFrame(epoch_rows).to_csv(path / "epochs.csv", index=False)

    ok = table[table["best_epoch"] >= 1]
    best = ok.sort_values(["best_val_acc", "best_val_loss"], ascending=[False, True]).iloc[0]
    n = len(classes)
    confusion = (rng.integers(0, 5, size=(n, n)) + np.eye(n, dtype=int) * 80).tolist()
    normalized = [[v / sum(row) for v in row] for row in confusion]
    config = {k[len("config/"):]: v for k, v in best.items()
              if k.startswith("config/") and not pd.isna(v)}  # fmt: skip
    record = {
        "trial_index": int(best["trial_index"]), "config": _plain(config),
        "val_acc": float(best["best_val_acc"]), "val_loss": float(best["best_val_loss"]),
        "best_epoch": int(best["best_epoch"]), "params": int(best["params"]),
        "classes": list(classes), "test_acc": 0.81, "test_loss": 0.6,
        "per_class_acc": {c: normalized[i][i] for i, c in enumerate(classes)},
        "confusion_matrix": confusion, "confusion_normalized": normalized,
        "baseline": {"trial_index": 0, "val_acc": float(table.iloc[0]["best_val_acc"]),
                     "test_acc": 0.5, "per_class_acc": {c: 0.5 for c in classes},
                     "params": int(table.iloc[0]["params"])},
    }  # fmt: skip
    (path / "best.json").write_text(json.dumps(record))
    provenance = {
        "config": {"space": "seed_cnn", "dataset": "cifar10", "samples": trials,
                   "epochs": epochs, "scheduler": scheduler, "searcher": "tpe",
                   "grace_period": 1, "reduction_factor": 3, "name": name or path.name,
                   "seed": seed, "data_dir": None,
                   **({"objectives": objectives} if objectives else {})},
        "libraries": {"python": "3.11", "plotly": "7"}, "git": {"commit": "abc", "dirty": False},
        "hardware": {"cpu_count": 2}, "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T01:00:00+00:00", "seconds": 3600.0,
        "dataset": {"name": "cifar10", "classes": list(classes), "input_shape": [3, 32, 32],
                    "train": 49000, "val": 1000, "test": 10000},
    }  # fmt: skip
    (path / "provenance.json").write_text(json.dumps(provenance))
    if study:
        _write_study(path, name or path.name, runs, objectives)
    return path


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v.item() if hasattr(v, "item") else v for k, v in config.items()}


def write_partial_experiment(path: str | Path, epochs: int = 4) -> Path:
    """An interrupted search: provenance and Ray's per-trial files, no trials.csv or best.json.

    Trial 0 ran its budget, ASHA stopped trial 1 after two epochs (its trial_end.json says it
    ended).
    """
    path = Path(path)
    path.mkdir(parents=True)
    (path / "provenance.json").write_text(
        json.dumps({"config": {"epochs": epochs, "name": path.name, "scheduler": "asha"}})
    )
    for index, losses in enumerate([[2.0, 1.5, 1.2, 1.0][:epochs], [2.2, 2.1]]):
        trial = path / f"trial_{index:04d}_id{index}"
        trial.mkdir()
        config = {"lr": 0.01 * (index + 1), "batch_size": 32 * (index + 1), "epochs": epochs}
        (trial / "params.json").write_text(json.dumps(config))
        lines = [
            json.dumps({"trial_id": f"id{index}", "epoch": e, "val_loss": v, "train_loss": v,
                        "val_acc": 0.5, "best_val_acc": 0.5 + 0.01 * e, "best_val_loss": v,
                        "best_epoch": e, "epoch_time_s": 1.0, "params": 100 * (index + 1)})
            for e, v in enumerate(losses, 1)
        ]  # fmt: skip
        (trial / "result.json").write_text("\n".join(lines) + "\n")
        (trial / "trial_end.json").write_text('{"status": "TERMINATED"}\n')
    return path


def add_confirm(
    exp: Path, verdict: str, winner: int | None = None,
    values: dict[int, list[float]] | None = None, images: int = 1000,
) -> Path:  # fmt: skip
    """best.json as a confirm stage leaves it: by default three configurations over three
    seeds (`values`: per trial index, its seeds' validation accuracies; trial 0 is the lab's
    baseline, 99 the runner-up; test: each 0.02 lower, at least 0)."""
    import json

    from tuner.experiment.stats import accuracy_interval, difference

    best = json.loads((exp / "best.json").read_text())
    win = best["trial_index"] if winner is None else winner
    if values is None:
        values = {0: [0.30, 0.35, 0.33], win: [0.90, 0.93, 0.91], 99: [0.89, 0.94, 0.9]}
    configs = []
    for index, vals in values.items():
        tests = [max(0.0, v - 0.02) for v in vals]
        configs.append({
            "trial_index": index, "is_baseline": index == 0, "search_val_acc": max(vals),
            "val": accuracy_interval(vals, images), "test": accuracy_interval(tests, images),
            "per_seed": [{"seed": 1000 + i, "val_acc": v, "test_acc": t, "run": "r"}
                         for i, (v, t) in enumerate(zip(vals, tests, strict=True))],
        })  # fmt: skip

    def versus(other: int) -> dict[str, Any] | None:
        if other not in values:
            return None
        return {"trial_index": other, "val": difference(values[win], values[other]),
                "test": difference(values[win], values[other])}  # fmt: skip

    runner_up = next((i for i in values if i not in (0, win)), -1)
    best["confirm"] = {
        "trials": list(values), "seeds": [1000 + i for i in range(max(map(len, values.values())))],
        "epochs": 4, "complete": True, "configs": configs, "winner": win,
        "runner_up": runner_up if runner_up in values else None,
        "vs_runner_up": versus(runner_up), "vs_baseline": versus(0), "verdict": verdict,
    }  # fmt: skip
    (exp / "best.json").write_text(json.dumps(best))
    return exp
