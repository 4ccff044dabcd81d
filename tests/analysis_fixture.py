"""Synthetic but realistic experiment directories for the analysis tests (no Ray, no training).

`write_experiment` lays out what `tuner search` leaves behind (trials.csv, epochs.csv,
best.json, provenance.json) for any number of trials: seed_cnn-like configs drawn by a seeded
numpy generator, loss curves that learn, overfit, plateau or blow up depending on the config,
and outcomes as ASHA would give them (stopped at rungs 1, 3, 9 of a 10-epoch budget).
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
) -> Path:
    """Write a finished experiment to `path` (created) and return it.

    overrides: trial index -> config values to force (e.g. a malicious categorical value).
    """
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    trial_rows, epoch_rows = [], []
    alive_at = {}  # ASHA-like: at each rung keep roughly the better third by val loss
    for index in range(trials):
        cfg = {**_config(rng, index), "epochs": epochs, **(overrides or {}).get(index, {})}
        rows = _curves(rng, cfg, epochs)
        stop = None
        for rung in RUNGS:
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
                   "epochs": epochs, "scheduler": "asha", "searcher": "tpe", "grace_period": 1,
                   "reduction_factor": 3, "name": name or path.name, "seed": seed,
                   "data_dir": None},
        "libraries": {"python": "3.11", "plotly": "7"}, "git": {"commit": "abc", "dirty": False},
        "hardware": {"cpu_count": 2}, "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T01:00:00+00:00", "seconds": 3600.0,
        "dataset": {"name": "cifar10", "classes": list(classes), "input_shape": [3, 32, 32],
                    "train": 49000, "val": 1000, "test": 10000},
    }  # fmt: skip
    (path / "provenance.json").write_text(json.dumps(provenance))
    return path


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v.item() if hasattr(v, "item") else v for k, v in config.items()}


def write_partial_experiment(path: str | Path, epochs: int = 4) -> Path:
    """An interrupted search: provenance and Ray's per-trial files, no trials.csv or best.json.

    Trial 0 ran its budget, trial 1 was cut off after two epochs.
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
    return path


def add_confirm(exp: Path, verdict: str, winner: int | None = None) -> Path:
    """best.json as a confirm stage leaves it: three configurations over three seeds."""
    import json

    from tuner.experiment.stats import difference, mean_interval

    best = json.loads((exp / "best.json").read_text())
    win = best["trial_index"] if winner is None else winner
    values = {0: [0.30, 0.35, 0.33], win: [0.90, 0.93, 0.91], 99: [0.89, 0.94, 0.9]}
    configs = []
    for index, vals in values.items():
        configs.append({
            "trial_index": index, "is_baseline": index == 0, "search_val_acc": max(vals),
            "val": mean_interval(vals), "test": mean_interval([v - 0.02 for v in vals]),
            "per_seed": [{"seed": 1000 + i, "val_acc": v, "test_acc": v - 0.02, "run": "r"}
                         for i, v in enumerate(vals)],
        })  # fmt: skip
    best["confirm"] = {
        "trials": list(values), "seeds": [1000, 1001, 1002], "epochs": 4, "complete": True,
        "configs": configs, "winner": win, "runner_up": 99,
        "vs_runner_up": {"trial_index": 99, "val": difference(values[win], values[99]),
                         "test": difference(values[win], values[99])},
        "vs_baseline": {"trial_index": 0, "val": difference(values[win], values[0]),
                        "test": difference(values[win], values[0])},
        "verdict": verdict,
    }  # fmt: skip
    (exp / "best.json").write_text(json.dumps(best))
    return exp
