"""Choosing the search's best trial on validation, and only then scoring it (and the lab
baseline) on the test split: best.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO, cast

import pandas as pd

from tuner.config.objectives import (
    MAX_FRONT_EVALUATIONS,
    SEARCHER_METRIC,
    knee_point,
    pareto_front,
    parse_objectives,
    values_of,
)
from tuner.config.search_config import SearchConfig
from tuner.data import DatasetBundle
from tuner.experiment import (
    BEST_JSON,
    CONFIRM_CSV,
    MODEL_FILE,
    pick_best,
    read_params,
    trial_config,
)
from tuner.experiment.records import BestRecord, ProvenanceRecord, TestScore, TrialRecord
from tuner.io import atomic_write_csv, atomic_write_json
from tuner.stages import torch_work
from tuner.stages.console import say
from tuner.stages.torch_work import TorchWork, with_data
from tuner.train.trial_data import TrialData


def _score(
    exp: Path,
    row: pd.Series,
    bundle: DatasetBundle,
    trial_data: TrialData,
    stream: TextIO | None,
    work: TorchWork,
) -> TestScore | None:
    """evaluate_on_test, saying first what it scores (on a CPU a big net takes a minute)."""
    if stream is not None:
        say(
            stream, f"Scoring trial {int(row['trial_index'])} on {len(bundle.test.y):,} test images"
        )
    return work.run_on_data(torch_work.score, trial_config(exp, row), exp / row["trial_dir"])


def _trial_record(
    exp: Path,
    row: pd.Series,
    bundle: DatasetBundle,
    trial_data: TrialData,
    stream: TextIO | None,
    work: TorchWork,
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
    scored = _score(exp, row, bundle, trial_data, stream, work) or {}
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
    stream: TextIO | None,
    work: TorchWork,
) -> BestRecord | None:
    """Single objective: the highest validation accuracy. Several: the Pareto front of the
    completed trials, each point scored on the test split, and its knee as `the` best."""
    exp = cfg.experiment_dir
    if not cfg.objectives:
        row = pick_best(trials) if not trials.empty else None
        if row is None:
            return None
        best = _trial_record(exp, row, bundle, trial_data, stream, work)
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
            point = _trial_record(exp, row, bundle, trial_data, stream, work)
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
    score_baseline: bool = True,
    work: TorchWork | None = None,
) -> BestRecord | None:
    """Pick the best trial on validation, then (only then) score it on the test split, and
    the lab's baseline unless `score_baseline` is False (--time-budget left the baseline out
    of the confirm stage: on 11,000 CIFAR-10 images its scoring alone took about 30 s on 2
    cores, which the budget had not kept; best.json then says why it has no test score)."""
    exp = cfg.experiment_dir
    work = with_data(work, bundle, trial_data)
    best = _pick(cfg, trials, bundle, trial_data, stream, work)
    if best is None:
        return None
    best["classes"] = list(bundle.classes)
    best["val_images"] = len(bundle.val.y)
    baseline = trials[trials["is_baseline"]]
    if not baseline.empty and baseline.iloc[0]["best_epoch"] >= 1:
        base = baseline.iloc[0]
        scored: TestScore | None
        if int(base["trial_index"]) == best["trial_index"] and "test_acc" in best:
            scored = cast(TestScore, best)  # the baseline won: scored once, not twice
        elif score_baseline:
            scored = _score(exp, base, bundle, trial_data, stream, work)
        else:
            scored = None
        best["baseline"] = {
            "trial_index": int(base["trial_index"]),
            "val_acc": base["best_val_acc"],
            "test_acc": scored["test_acc"] if scored else None,
            "per_class_acc": scored["per_class_acc"] if scored else None,
            "params": int(base["params"]),
        }
        if scored is None and not score_baseline:
            best["baseline"]["not_scored"] = "left out to fit --time-budget"
    save_best(exp, best)
    return best


def save_best(exp: Path, best: BestRecord) -> None:
    """The one writer of best.json: the search's pick, then again once model.pt is written."""
    atomic_write_json(exp / BEST_JSON, best)


def write_confirmed(
    cfg: SearchConfig,
    best: BestRecord,
    stage: dict[str, Any],
    trials: pd.DataFrame,
    bundle: DatasetBundle,
    trial_data: TrialData,
    stream: TextIO | None = None,
    work: TorchWork | None = None,
) -> tuple[int, pd.DataFrame]:
    """The confirm stage's runs scored on the test split (confirm.csv) and summed up in
    best["confirm"]; returns how many of its runs are still to train, and the runs' table
    (write_model picks the winner's weights from it). `trials`: the search's table."""
    from tuner.stages import confirm_runs as confirm

    exp = cfg.experiment_dir
    runs = confirm.runs_table(exp, bundle, trial_data, stream, work)
    atomic_write_csv(exp / CONFIRM_CSV, runs)
    planned = len(stage.get("trials", [])) * len(stage.get("seeds", []))
    left = confirm.unfinished_runs(exp, planned)
    search_val = (
        {int(r.trial_index): float(r.best_val_acc) for r in trials.itertuples()}
        if not trials.empty else {}
    )  # fmt: skip
    knee = best["trial_index"] if cfg.objectives else None
    summary = confirm.summarize(
        stage, runs, search_val, knee=knee,
        val_images=len(bundle.val.y), test_images=len(bundle.test.y),
    )  # fmt: skip
    if summary is not None:
        summary["complete"] = not left
        best["confirm"] = summary
    return left, runs


def write_model(
    cfg: SearchConfig,
    best: BestRecord,
    bundle: DatasetBundle,
    trial_data: TrialData,
    record: ProvenanceRecord,
    runs: pd.DataFrame | None = None,
    work: TorchWork | None = None,
) -> None:
    """model.pt: the winner's weights, standing alone (tuner.deploy.model_file). The confirm
    stage's winner, from its run with the best validation accuracy, when the stage is complete;
    else the search's best trial. best["model"] says which, with the file's own scores.
    `runs`: the confirm stage's table, as write_confirmed returned it."""
    from tuner.stages import confirm_runs as confirm
    from tuner.train.config import TrainConfig

    exp = cfg.experiment_dir
    confirmed = best.get("confirm")
    chosen: dict[str, Any] | None = None
    if confirmed and confirmed.get("complete") and runs is not None:
        row = confirm.winner_run(runs, int(confirmed["winner"]))
        if row is not None:
            params = read_params(exp / row["run_dir"]) or {}
            chosen = {
                "config": params["confirm"]["config"], "checkpoint": row["checkpoint"],
                "trial_index": int(row["trial_index"]), "seed": int(row["seed"]),
                "val_acc": float(row["val_acc"]), "test_acc": float(row["test_acc"]),
                "from": "confirm",
            }  # fmt: skip
    if chosen is None:
        if not best.get("checkpoint"):
            return  # no weights were kept: nothing to hand over
        chosen = {
            "config": best["config"], "checkpoint": best["checkpoint"],
            "trial_index": best["trial_index"],
            "seed": TrainConfig.from_dict(best["config"]).seed,  # the space's, or the lab's 42
            "val_acc": best["val_acc"], "test_acc": best.get("test_acc"), "from": "search",
        }  # fmt: skip
    source = {
        "experiment": exp.name, "trial_index": chosen["trial_index"], "seed": chosen["seed"],
        "from": chosen["from"], "checkpoint": chosen["checkpoint"], "dataset": bundle.name,
    }  # fmt: skip
    with_data(work, bundle, trial_data).run_on_data(
        torch_work.model_file, exp / MODEL_FILE, exp / chosen["checkpoint"], chosen, source,
        cast(dict, record),
    )  # fmt: skip
    best["model"] = {"file": MODEL_FILE, **{k: v for k, v in chosen.items() if k != "config"}}
