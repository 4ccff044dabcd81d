"""Choosing the search's best trial on validation, and only then scoring it (and the lab
baseline) on the test split: best.json."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO, cast

import pandas as pd

from tuner.data import DatasetBundle
from tuner.driver.config import SearchConfig
from tuner.driver.console import say
from tuner.driver.objectives import (
    SEARCHER_METRIC,
    knee_point,
    pareto_front,
    parse_objectives,
    values_of,
)
from tuner.experiment import BEST_JSON, pick_best, trial_config
from tuner.experiment.records import BestRecord, TestScore, TrialRecord
from tuner.io import atomic_write_json
from tuner.train.trial_data import TrialData

MAX_FRONT_EVALUATIONS = 25  # Pareto points scored on the test split (nearest the knee first)


def _score(
    exp: Path,
    row: pd.Series,
    bundle: DatasetBundle,
    trial_data: TrialData,
    stream: TextIO | None,
) -> TestScore | None:
    """evaluate_on_test, saying first what it scores (on a CPU a big net takes a minute)."""
    from tuner.train.scoring import evaluate_on_test

    if stream is not None:
        say(
            stream, f"Scoring trial {int(row['trial_index'])} on {len(bundle.test.y):,} test images"
        )
    return evaluate_on_test(trial_config(exp, row), exp / row["trial_dir"], bundle, trial_data)


def _trial_record(
    exp: Path,
    row: pd.Series,
    bundle: DatasetBundle,
    trial_data: TrialData,
    stream: TextIO | None = None,
) -> BestRecord:
    """One trial as best.json describes it, scored on the test split."""
    config = trial_config(exp, row)
    record: BestRecord = {
        "trial_id": row["trial_id"],
        "trial_index": int(row["trial_index"]),
        "is_baseline": bool(row["is_baseline"]),
        "status": row["status"],
        "config": config,
        "val_acc": row["best_val_acc"],
        "val_loss": row["best_val_loss"],
        "best_epoch": int(row["best_epoch"]),
        "epochs_run": int(row["epochs_run"]),
        "params": int(row["params"]),
    }
    scored = _score(exp, row, bundle, trial_data, stream) or {}
    if scored and scored["kept_epoch"] != record["best_epoch"]:
        # Stopped from outside (--time-budget) after its best epoch but before that epoch's
        # checkpoint (see --checkpoint-interval): the weights scored are the checkpoint's, so
        # the validation figures given are theirs too.
        record["reported_best_epoch"] = record["best_epoch"]
        record["val_acc"], record["val_loss"] = scored["kept_val_acc"], scored["kept_val_loss"]
        record["best_epoch"] = int(scored["kept_epoch"])
    record.update(cast(BestRecord, scored))  # a TestScore's keys are a BestRecord's
    return record


def _pick(
    cfg: SearchConfig,
    trials: pd.DataFrame,
    bundle: DatasetBundle,
    trial_data: TrialData,
    stream: TextIO | None = None,
) -> BestRecord | None:
    """Single objective: the highest validation accuracy. Several: the Pareto front of the
    completed trials, each point scored on the test split, and its knee as `the` best."""
    exp = cfg.experiment_dir
    if not cfg.objectives:
        row = pick_best(trials) if not trials.empty else None
        if row is None:
            return None
        best = _trial_record(exp, row, bundle, trial_data, stream)
        best["selected_by"] = (
            f"highest {SEARCHER_METRIC} (val accuracy of the lowest-val-loss weights)"
        )
        return best
    objectives = parse_objectives(cfg.objectives)
    front = pareto_front(trials, objectives)
    knee = knee_point(front, objectives)
    if knee is None:
        return None
    by_index = front.set_index("trial_index", drop=False)
    # Score the points nearest the knee first, so a huge front cannot stall the search's end.
    positions = list(by_index.index)
    at_knee = positions.index(knee)
    nearest = sorted(range(len(positions)), key=lambda p: abs(p - at_knee))
    scored = {positions[p] for p in nearest[:MAX_FRONT_EVALUATIONS]}
    points: list[TrialRecord] = []
    for index in by_index.index:
        row = by_index.loc[index]
        if index in scored:
            point = _trial_record(exp, row, bundle, trial_data, stream)
        else:
            point = {"trial_index": int(index), "params": int(row["params"])}
        point["objectives"] = values_of(row, objectives)
        points.append(point)
    best = cast(BestRecord, dict(next(p for p in points if p["trial_index"] == knee)))
    best["selected_by"] = (
        "knee of the Pareto front over "
        + ", ".join(f"{o.name} ({o.mode})" for o in objectives)
        + ": the point nearest the ideal once each objective is scaled to the front's range"
    )
    best["objectives"] = [o.to_dict() for o in objectives]
    best["pareto_front"] = points
    return best


def write_best(
    cfg: SearchConfig,
    trials: pd.DataFrame,
    bundle: DatasetBundle,
    trial_data: TrialData,
    stream: TextIO | None = None,
) -> BestRecord | None:
    """Pick the best trial on validation, then (only then) score it on the test split."""
    exp = cfg.experiment_dir
    best = _pick(cfg, trials, bundle, trial_data, stream)
    if best is None:
        return None
    best["classes"] = list(bundle.classes)
    best["val_images"] = len(bundle.val.y)
    baseline = trials[trials["is_baseline"]]
    if not baseline.empty and baseline.iloc[0]["best_epoch"] >= 1:
        base = baseline.iloc[0]
        scored = _score(exp, base, bundle, trial_data, stream)
        best["baseline"] = {
            "trial_index": int(base["trial_index"]),
            "val_acc": base["best_val_acc"],
            "test_acc": scored["test_acc"] if scored else None,
            "per_class_acc": scored["per_class_acc"] if scored else None,
            "params": int(base["params"]),
        }
    atomic_write_json(exp / BEST_JSON, best)
    return best
