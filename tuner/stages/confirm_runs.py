"""The confirm stage's runs read back (no Ray): each run's kept weights scored on the test
split (confirm.csv), the stage summed up for best.json (`summarize`), and the winner's run whose
weights model.pt carries. tuner/driver/confirm.py plans and trains the runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from tuner.data import DatasetBundle
from tuner.experiment import (
    CONFIRM_DIR,
    checkpoint_dirs,
    ray_trial_states,
    read_params,
    trial_dirs,
)
from tuner.experiment.stats import Interval, accuracy_interval, difference, verdict_clauses
from tuner.stages import torch_work
from tuner.stages.console import say
from tuner.stages.torch_work import TorchWork, with_data
from tuner.train.trial_data import TrialData

CONFIG_KEY = "confirm"  # param_space = {CONFIG_KEY: grid of runs}; each run's params.json


def runs_table(
    exp: Path,
    bundle: DatasetBundle,
    trial_data: TrialData,
    stream: TextIO | None = None,
    work: TorchWork | None = None,
) -> pd.DataFrame:
    """confirm.csv: one row per run of DIR/confirm/, its kept weights scored on the test split
    (finished runs only; an unfinished one has status running and no scores)."""
    work = with_data(work, bundle, trial_data)
    confirm_dir = exp / CONFIRM_DIR
    states = {}  # (trial index, seed) -> Tune's status
    for state in ray_trial_states(confirm_dir).values():
        run = (state.get("config") or {}).get(CONFIG_KEY)
        if isinstance(run, dict):
            states[(int(run["trial_index"]), int(run["seed"]))] = state["status"]
    rows = []
    dirs = trial_dirs(confirm_dir)
    if stream is not None and dirs:
        say(stream, f"Scoring {len(dirs)} confirm runs on {len(bundle.test.y):,} test images")
    for run_dir in dirs:
        params = read_params(run_dir) or {}
        run = params.get(CONFIG_KEY)
        if not isinstance(run, dict):
            continue
        status = states.get((int(run["trial_index"]), int(run["seed"])), "")
        row: dict[str, Any] = {
            "trial_index": int(run["trial_index"]), "seed": int(run["seed"]),
            "is_baseline": bool(run.get("is_baseline", False)),
            "status": {"TERMINATED": "done", "ERROR": "error"}.get(status, "running"),
            "val_acc": math.nan, "val_loss": math.nan, "test_acc": math.nan,
            "kept_epoch": 0, "run_dir": f"{CONFIRM_DIR}/{run_dir.name}", "checkpoint": "",
        }  # fmt: skip
        if row["status"] == "done" and checkpoint_dirs(run_dir):
            scored = work.run_on_data(torch_work.score, run["config"], run_dir)
            if scored:
                row.update(
                    val_acc=scored["kept_val_acc"], val_loss=scored["kept_val_loss"],
                    test_acc=scored["test_acc"], kept_epoch=int(scored["kept_epoch"]),
                    checkpoint=f"{CONFIRM_DIR}/{scored['checkpoint']}",
                )  # fmt: skip
        rows.append(row)
    columns = ["trial_index", "seed", "is_baseline", "status", "val_acc", "val_loss",
               "test_acc", "kept_epoch", "run_dir", "checkpoint"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["trial_index", "seed"]).reset_index(drop=True)


def unfinished_runs(exp: Path, stage_runs: int) -> int:
    """Runs of the stage not yet done (never started, running or cut off)."""
    states = ray_trial_states(exp / CONFIRM_DIR)
    done = sum(1 for s in states.values() if s["status"] in ("TERMINATED", "ERROR"))
    return max(0, stage_runs - done)


def summarize(
    stage_key: dict[str, Any], runs: pd.DataFrame, search_val: dict[int, float],
    knee: int | None = None, val_images: int | None = None, test_images: int | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """best.json's "confirm": per configuration the per-seed values, mean and 95 % interval of
    validation and test accuracy (accuracy_interval: inside [0, 1]; `val_images` and
    `test_images`, the splits' sizes, set its clipping off 0 and 1); the winner (best mean
    validation accuracy, or the knee of a multi-objective search); its differences to the
    runner-up and to the baseline (no verdict below 3 seeds a side); a verdict.
    None until at least one run is scored."""
    scored = runs[(runs["status"] == "done") & runs["val_acc"].notna()]
    if scored.empty:
        return None
    configs: list[dict[str, Any]] = []
    for index, group in scored.groupby("trial_index", sort=False):
        val: Interval = accuracy_interval(group["val_acc"].tolist(), val_images)
        tests = group["test_acc"].dropna().tolist()
        configs.append({
            "trial_index": int(index), "is_baseline": bool(group["is_baseline"].iloc[0]),
            "search_val_acc": search_val.get(int(index)), "val": val,
            "test": accuracy_interval(tests, test_images) if tests else None,
            "per_seed": [{"seed": int(r.seed), "val_acc": float(r.val_acc),
                          "test_acc": float(r.test_acc), "run": r.run_dir}
                         for r in group.itertuples()],
            "runs_failed": int(((runs["trial_index"] == index) & (runs["status"] != "done")).sum()
                               + group["val_acc"].isna().sum()),
        })  # fmt: skip
    configs.sort(key=lambda c: c["val"]["mean"], reverse=True)
    searched = [c for c in configs if not c["is_baseline"]] or configs
    by_index = {c["trial_index"]: c for c in configs}
    winner = by_index[knee] if knee in by_index else searched[0]
    others = [c for c in searched if c is not winner]
    baseline = next((c for c in configs if c["is_baseline"] and c is not winner), None)

    def versus(other: dict[str, Any] | None) -> dict[str, Any] | None:
        if other is None:
            return None
        a, b = winner["per_seed"], other["per_seed"]
        return {
            "trial_index": other["trial_index"],
            "val": difference([r["val_acc"] for r in a], [r["val_acc"] for r in b]),
            "test": difference([r["test_acc"] for r in a], [r["test_acc"] for r in b]),
        }

    vs_runner_up, vs_baseline = versus(others[0] if others else None), versus(baseline)
    seeds = len(stage_key.get("seeds", []))
    mean = winner["val"]
    sentence = (f"Over {seeds} fresh seeds, trial {winner['trial_index']} has the best mean "
                f"validation accuracy ({mean['mean']:.2%})" if knee is None else
                f"Over {seeds} fresh seeds, trial {winner['trial_index']} (the knee of the "
                f"Pareto front) has a mean validation accuracy of {mean['mean']:.2%}")  # fmt: skip
    sentence += verdict_clauses(vs_runner_up, vs_baseline)
    return {
        **stage_key,
        "runs": len(runs), "runs_done": int((runs["status"] == "done").sum()),
        "configs": configs, "winner": winner["trial_index"],
        "runner_up": vs_runner_up["trial_index"] if vs_runner_up else None,
        "vs_runner_up": vs_runner_up, "vs_baseline": vs_baseline,
        "verdict": sentence + ".",
    }  # fmt: skip


def winner_run(runs: pd.DataFrame, winner: int) -> pd.Series | None:
    """The winner's run whose kept weights have the best validation accuracy (chosen on
    validation, never on test): the weights model.pt carries."""
    mine = runs[(runs["trial_index"] == winner) & (runs["status"] == "done")]
    mine = mine[mine["val_acc"].notna() & (mine["checkpoint"] != "")]
    if mine.empty:
        return None
    return mine.sort_values(["val_acc", "val_loss"], ascending=[False, True]).iloc[0]
