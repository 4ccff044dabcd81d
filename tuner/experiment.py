"""Experiment tables: trials.csv and epochs.csv, read from the trial directories on disk.

They are built from the files Ray Tune writes for each trial (`params.json`, `result.json`,
`error.txt`), not from the in-memory ResultGrid, so the same code works on a finished, an
interrupted or a copied experiment, and without Ray running.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tuner.io import atomic_write_csv

if TYPE_CHECKING:
    from tuner.train.cost import Cost

# One row per trial per epoch; these are the reported metrics kept in epochs.csv.
EPOCH_COLUMNS = [
    "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "best_val_loss", "best_val_acc",
    "best_epoch", "epoch_time_s", "val_time_s", "images_per_s", "lr", "params", "diverged",
    "time_total_s", "node_id",
]  # fmt: skip
OUTCOMES = ("completed", "stopped", "diverged", "error", "running")


def trial_dir_name(trial: Any) -> str:
    """Short trial directory names, `trial_0003_<id>`, numbered from 0 in creation order.

    Ray's experiment tag starts with a 1-based counter; trial 0 is the first suggestion (the
    lab's baseline) and matches the Optuna trial number.
    """
    counter = int(str(trial.experiment_tag).split("_", 1)[0])
    return f"trial_{counter - 1:04d}_{trial.trial_id}"


def trial_index(trial_dir: str | Path) -> int:
    """The number in a `trial_0003_<id>` directory name, -1 for any other name."""
    parts = Path(trial_dir).name.split("_")
    if len(parts) >= 3 and parts[0] == "trial" and parts[1].isdigit():
        return int(parts[1])
    return -1


def trial_dirs(experiment_dir: str | Path) -> list[Path]:
    return sorted(p.parent for p in Path(experiment_dir).glob("*/params.json"))


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
                f"skipped {len(self.trials)} trial(s) whose params.json could not be read "
                f"({', '.join(self.trials[:3])}{', ...' if len(self.trials) > 3 else ''})"
            )
        if self.recovered:
            parts.append(
                f"took {self.recovered} epoch(s) missing from result.json from the trials' "
                "checkpoints"
            )
        if not parts:
            return None
        return "; ".join(parts) + "; every line that parsed was kept"


def _read_results(trial_dir: Path, damage: Damage | None = None) -> list[dict[str, Any]]:
    path = trial_dir / "result.json"
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
    again). history.json is plain JSON beside state.pt; older checkpoints have only state.pt,
    read then (that imports torch)."""
    from tuner.train.checkpoints import checkpoint_dirs, newest_readable, read_history

    history: Any = None
    for checkpoint in checkpoint_dirs(trial_dir):
        history = read_history(checkpoint)
        if history is not None:
            break
    if history is None and have and len(have) < max(have):  # a gap, and no history.json
        _, state, _ = newest_readable(trial_dir)
        history = (state or {}).get("history")
    return {
        int(m["epoch"]): dict(m)
        for m in history or []
        if isinstance(m, dict) and "epoch" in m and int(m["epoch"]) not in have
    }


def read_params(trial_dir: Path) -> dict[str, Any] | None:
    """A trial's params.json, or None when it is missing or was cut short."""
    try:
        config = json.loads((trial_dir / "params.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _error_message(trial_dir: Path) -> str:
    path = trial_dir / "error.txt"
    if not path.exists():
        return ""
    lines = [ln for ln in path.read_text(errors="replace").strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "error"


def ray_trial_states(experiment_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Tune's own record of each trial: status (TERMINATED, ERROR, RUNNING, ...) and failures.

    Read from the newest experiment_state-*.json (plain JSON; no unpickling). Empty if there is
    none, e.g. for a directory copied without it.
    """
    files = sorted(Path(experiment_dir).glob("experiment_state-*.json"))
    if not files:
        return {}
    try:
        data = json.loads(files[-1].read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    states = {}
    for item in data.get("trial_data", []):
        try:
            trial, runtime = (json.loads(x) if isinstance(x, str) else x for x in item[:2])
        except (ValueError, TypeError):
            continue
        states[str(trial.get("trial_id"))] = {
            "status": trial.get("status"),
            "num_failures": int(runtime.get("num_failures") or 0),
            "config": trial.get("config") if isinstance(trial.get("config"), dict) else None,
        }
    return states


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
        config = read_params(trial_dir) or states.get(trial_dir.name.rsplit("_", 1)[-1], {}).get(
            "config"
        )
        if config is None:
            if damage is not None:
                damage.trials.append(trial_dir.name)
            continue
        results = _read_results(trial_dir, damage)
        trial_id = results[-1]["trial_id"] if results else trial_dir.name.rsplit("_", 1)[-1]
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
                {"trial_index": index, "trial_id": trial_id,
                 **{c: r.get(c) for c in EPOCH_COLUMNS}}
            )  # fmt: skip
        last = by_epoch[max(by_epoch)] if by_epoch else {}
        state = states.get(trial_id, {})
        # error.txt stays behind after a failure that a retry recovered from; Tune's status
        # says whether the trial ended in error. Without it, a trial that has not run its
        # budget after an error is taken to have failed.
        error = _error_message(trial_dir)
        epochs_run = len(by_epoch)
        failed = state["status"] == "ERROR" if state else bool(error) and epochs_run < epoch_budget
        status = classify(
            epochs_run, epoch_budget, bool(last.get("diverged")), failed,
            running=trial_id in (running or set()) or state.get("status") in ("RUNNING", "PENDING"),
        )  # fmt: skip
        train_seconds = sum(float(r.get("epoch_time_s") or 0.0) for r in by_epoch.values())
        row = {
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
        row.update({f"config/{k}": _cell(v) for k, v in sorted(config.items())})
        trial_rows.append(row)
    trials = pd.DataFrame(trial_rows)
    epochs = pd.DataFrame(epoch_rows, columns=["trial_index", "trial_id", *EPOCH_COLUMNS])
    if not trials.empty:
        trials = trials.sort_values("trial_index").reset_index(drop=True)
        epochs = epochs.sort_values(["trial_index", "epoch"]).reset_index(drop=True)
    return trials, epochs


def pick_best(trials: pd.DataFrame) -> pd.Series | None:
    """The trial whose kept weights (lowest validation loss) have the highest validation
    accuracy; ties go to the lower validation loss. Never looks at the test split."""
    ok = trials[trials["best_epoch"].fillna(0) >= 1]
    if ok.empty:
        return None
    ranked = ok.sort_values(["best_val_acc", "best_val_loss"], ascending=[False, True])
    return ranked.iloc[0]


def trial_config(experiment_dir: str | Path, row: pd.Series) -> dict[str, Any]:
    """The exact flat config a trial ran (from its params.json; CSV columns lose int types)."""
    return json.loads((Path(experiment_dir) / row["trial_dir"] / "params.json").read_text())


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def _mean(values: list[Any]) -> float | None:
    nums = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(nums) / len(nums) if nums else None


REJECTED_CSV = "rejected.csv"  # configurations over --max-params / --max-macs, never trained


def record_rejection(path: Path, config: dict[str, Any], cost: Cost, reason: str) -> None:
    """Add one over-budget configuration to rejected.csv (rewritten atomically)."""
    row = {"params": cost.params, "macs": cost.macs, "reason": reason}
    row.update({f"config/{k}": v for k, v in sorted(config.items())})
    table = pd.read_csv(path) if path.exists() else pd.DataFrame()
    atomic_write_csv(path, pd.concat([table, pd.DataFrame([row])], ignore_index=True))
