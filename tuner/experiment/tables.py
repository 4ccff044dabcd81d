"""The experiment's tables, trials.csv and epochs.csv, read from the trial directories on disk.

They are built from the files Ray Tune writes for each trial (`params.json`, `result.json`,
`error.txt`), not from the in-memory ResultGrid, so the same code works on a finished, an
interrupted or a copied experiment, and without Ray running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from tuner.experiment.files import (
    ERROR_TXT,
    PARAMS_JSON,
    RESULT_JSON,
    checkpoint_dirs,
    ray_trial_states,
    read_history,
    read_params,
    read_table,
    trial_dirs,
    trial_end,
    trial_id_of,
    trial_index,
)
from tuner.experiment.rules import finite
from tuner.io import atomic_write_csv

CONFIG_PREFIX = "config/"  # trials.csv and rejected.csv: one `config/<key>` column per key
# trials.csv: one row per trial, these columns first, then the config/ columns (sorted).
TRIAL_COLUMNS = [
    "trial_index", "trial_id", "is_baseline", "status", "epochs_run", "val_loss", "val_acc",
    "train_loss", "train_acc", "best_val_loss", "best_val_acc", "best_epoch", "params", "macs",
    "latency_ms", "train_seconds", "wall_seconds", "images_per_s", "node_id", "num_failures",
    "error", "trial_dir",
]  # fmt: skip
# epochs.csv: one row per trial per epoch; the trial's keys, then these reported metrics.
EPOCH_COLUMNS = [
    "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "best_val_loss", "best_val_acc",
    "best_epoch", "epoch_time_s", "val_time_s", "images_per_s", "lr", "params", "diverged",
    "time_total_s", "node_id",
    "gpu_share", "gpu_peak_mb",  # on a GPU only: the share a trial had, and what it allocated
]  # fmt: skip
EPOCH_KEYS = ["trial_index", "trial_id"]
# rejected.csv: one row per configuration refused for the size budget, then config/ columns.
REJECTED_COLUMNS = ["params", "macs", "reason"]
OUTCOMES = ("completed", "stopped", "diverged", "error", "running")  # trials.csv `status`


@dataclass
class Damage:
    """What the readers skipped in files cut short (a crash, a full disk)."""

    lines: int = 0  # result.json lines that did not parse
    files: set[str] = field(default_factory=set)  # the trial directories they were in
    trials: list[str] = field(default_factory=list)  # trial dirs skipped: params.json unreadable
    recovered: int = 0  # epochs missing from result.json, read from a checkpoint's history

    def summary(self) -> str | None:
        """One line for the user, or None when nothing was skipped."""
        parts = []
        if self.lines:
            parts.append(
                f"dropped {self.lines} result line(s) cut short in {len(self.files)} trial(s) "
                f"({', '.join(sorted(self.files)[:3])}{', ...' if len(self.files) > 3 else ''})"
            )
        if self.trials:
            parts.append(
                f"skipped {len(self.trials)} trial(s) whose {PARAMS_JSON} could not be read "
                f"({', '.join(self.trials[:3])}{', ...' if len(self.trials) > 3 else ''})"
            )
        if self.recovered:
            parts.append(
                f"took {self.recovered} epoch(s) missing from {RESULT_JSON} from the trials' "
                "checkpoints"
            )
        if not parts:
            return None
        return "; ".join(parts) + "; every line that parsed was kept"


def _read_results(trial_dir: Path, damage: Damage | None = None) -> list[dict[str, Any]]:
    path = trial_dir / RESULT_JSON
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut off by a crash; the rest is still good
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif damage is not None:
            damage.lines += 1
            damage.files.add(trial_dir.name)
    return rows


def _epochs_from_checkpoint(trial_dir: Path, have: set[int]) -> dict[int, dict[str, Any]]:
    """Epochs missing from result.json, from the history the newest checkpoint keeps (a
    driver killed before it synced result.json; the trial, restored, never reports them
    again). history.json is plain JSON beside state.pt, so no torch is needed. (Checkpoints
    written before history.json existed, during its own development, are not read: no
    released experiment has them.)"""
    history: Any = None
    for checkpoint in checkpoint_dirs(trial_dir):
        history = read_history(checkpoint)
        if history is not None:
            break
    return {
        int(m["epoch"]): dict(m)
        for m in history or []
        if isinstance(m, dict) and "epoch" in m and int(m["epoch"]) not in have
    }


def _error_message(trial_dir: Path) -> str:
    path = trial_dir / ERROR_TXT
    if not path.exists():
        return ""
    lines = [ln for ln in path.read_text(errors="replace").strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "error"


def classify(
    epochs_run: int, budget: int, diverged: bool, error: bool, running: bool = False
) -> str:
    """A trial's outcome: error > diverged > completed (ran its whole budget) > running/stopped."""
    if error:
        return "error"
    if diverged:
        return "diverged"
    if epochs_run >= budget:
        return "completed"
    return "running" if running else "stopped"


def collect_tables(
    experiment_dir: str | Path,
    epoch_budget: int,
    baseline_index: int | None = 0,
    running: set[str] | None = None,
    damage: Damage | None = None,
    failures: dict[str, int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, epochs) DataFrames for every trial directory of an experiment. Files cut
    short are read as far as they parse; `damage` counts what was skipped. `failures`: what
    the driver counted itself (trial id -> failures), when Tune's saved count is lower."""
    trial_rows, epoch_rows = [], []
    states = ray_trial_states(experiment_dir)
    for trial_dir in trial_dirs(experiment_dir):
        # params.json cut short (Ray writes it in place): Tune's own record of the config.
        config = read_params(trial_dir) or states.get(trial_id_of(trial_dir), {}).get("config")
        if config is None:
            if damage is not None:
                damage.trials.append(trial_dir.name)
            continue
        results = _read_results(trial_dir, damage)
        trial_id = results[-1]["trial_id"] if results else trial_id_of(trial_dir)
        index = trial_index(trial_dir)
        # A retried trial reports the epochs after its checkpoint again: keep the last report.
        by_epoch: dict[int, dict[str, Any]] = {}
        for r in results:
            if "epoch" in r:
                by_epoch[int(r["epoch"])] = r
        if len(by_epoch) < epoch_budget:  # gaps, or a tail a killed driver never synced
            recovered = _epochs_from_checkpoint(trial_dir, set(by_epoch))
            by_epoch.update(recovered)
            if damage is not None and recovered:
                damage.recovered += len(recovered)
        for epoch in sorted(by_epoch):
            r = by_epoch[epoch]
            epoch_rows.append(
                {"trial_index": index, "trial_id": trial_id, **{c: r.get(c) for c in EPOCH_COLUMNS}}
            )
        last = by_epoch[max(by_epoch)] if by_epoch else {}
        state = states.get(trial_id, {})
        # error.txt stays behind after a failure that a retry recovered from: how the trial
        # ended says whether it failed.
        error = _error_message(trial_dir)
        epochs_run = len(by_epoch)
        ended = trial_end(trial_dir)
        if ended is not None:  # the driver's record, written the moment Tune ended the trial
            failed, going = ended == "ERROR", False
        elif state:  # not ended, or ended in a search older than TRIAL_END_JSON: Tune's record
            failed = state["status"] == "ERROR"
            going = state["status"] in ("RUNNING", "PENDING")
        else:  # started after Tune last saved its state (every 10 s or more) and not ended
            failed = bool(error) and epochs_run < epoch_budget
            going = running is None and not failed
        status = classify(
            epochs_run, epoch_budget, bool(last.get("diverged")), failed,
            running=going or trial_id in (running or set()),
        )  # fmt: skip
        train_seconds = sum(float(r.get("epoch_time_s") or 0.0) for r in by_epoch.values())
        values = {
            "trial_index": index,
            "trial_id": trial_id,
            "is_baseline": index == baseline_index,
            "status": status,
            "epochs_run": epochs_run,
            "val_loss": last.get("val_loss"),
            "val_acc": last.get("val_acc"),
            "train_loss": last.get("train_loss"),
            "train_acc": last.get("train_acc"),
            "best_val_loss": last.get("best_val_loss"),
            "best_val_acc": last.get("best_val_acc"),
            "best_epoch": last.get("best_epoch"),
            "params": last.get("params"),
            "macs": last.get("macs"),
            "latency_ms": last.get("latency_ms"),
            "train_seconds": train_seconds,
            "wall_seconds": last.get("time_total_s"),
            "images_per_s": _mean([r.get("images_per_s") for r in by_epoch.values()]),
            "node_id": last.get("node_id"),
            "num_failures": max(
                state.get("num_failures", 1 if error else 0), (failures or {}).get(trial_id, 0)
            ),
            "error": error if failed else "",
            "trial_dir": trial_dir.name,
        }
        row = {c: values[c] for c in TRIAL_COLUMNS}  # the order trials.csv keeps
        row.update({f"{CONFIG_PREFIX}{k}": _cell(v) for k, v in sorted(config.items())})
        trial_rows.append(row)
    trials = pd.DataFrame(trial_rows)
    epochs = pd.DataFrame(epoch_rows, columns=[*EPOCH_KEYS, *EPOCH_COLUMNS])
    if not trials.empty:
        trials = trials.sort_values("trial_index").reset_index(drop=True)
        epochs = epochs.sort_values(["trial_index", "epoch"]).reset_index(drop=True)
    return trials, epochs


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def _mean(values: list[Any]) -> float | None:
    nums = [n for n in map(finite, values) if n is not None]
    return sum(nums) / len(nums) if nums else None


class Priced(Protocol):
    """What record_rejection needs of a model's cost (tuner.train.cost.Cost)."""

    @property
    def params(self) -> int: ...

    @property
    def macs(self) -> int: ...


def record_rejection(path: Path, config: dict[str, Any], cost: Priced, reason: str) -> None:
    """Add one over-budget configuration to rejected.csv (rewritten atomically)."""
    row = dict(zip(REJECTED_COLUMNS, (cost.params, cost.macs, reason), strict=True))
    row.update({f"{CONFIG_PREFIX}{k}": v for k, v in sorted(config.items())})
    table = read_table(path)
    atomic_write_csv(path, pd.concat([table, pd.DataFrame([row])], ignore_index=True))
