"""The two JSON records of an experiment, typed: best.json and provenance.json.

TypedDicts, not dataclasses: the files stay plain JSON that any tool reads, older files (with
fewer keys) still load, and the type checker holds every writer and reader to the same keys.
`total=False` where a key is only there in some runs (a multi-objective search, a resume).
"""

from __future__ import annotations

from typing import Any, TypedDict


class TestScore(TypedDict, total=False):
    """A trial's kept weights scored once on the test split (tuner.train.scoring)."""

    test_acc: float
    test_loss: float
    test_images: int
    kept_epoch: int  # the epoch of the weights scored (the lowest validation loss)
    kept_val_acc: float
    kept_val_loss: float
    per_class_acc: dict[str, float]
    confusion_matrix: list[list[int]]
    confusion_normalized: list[list[float]]
    checkpoint: str  # relative to the experiment directory


class TrialRecord(TestScore, total=False):
    """One trial as best.json describes it: the best, or a point of the Pareto front (a point
    beyond the scored ones has only trial_index, params and objectives)."""

    trial_id: str
    trial_index: int
    is_baseline: bool
    status: str
    config: dict[str, Any]
    val_acc: float
    val_loss: float
    best_epoch: int
    reported_best_epoch: int  # when the scored checkpoint is older than the best epoch
    epochs_run: int
    params: int
    objectives: Any  # a Pareto point: {name: value}; the best of several: the objectives' list


class _BaselineNotScored(TypedDict, total=False):
    # Why test_acc is None although the baseline trained: "left out to fit --time-budget"
    not_scored: str


class BaselineRecord(_BaselineNotScored):
    trial_index: int
    val_acc: float
    test_acc: float | None
    per_class_acc: dict[str, float] | None
    params: int


class BestRecord(TrialRecord, total=False):
    """best.json: the trial chosen on validation, scored on the test split."""

    selected_by: str
    classes: list[str]
    val_images: int
    baseline: BaselineRecord
    pareto_front: list[TrialRecord]
    # The confirm stage (tuner/driver/confirm.py summarize): per configuration the per-seed
    # values with mean and 95 % interval, the winner, its differences, a verdict sentence.
    confirm: dict[str, Any]
    # model.pt: which run's weights it holds (file, trial_index, seed, from, checkpoint,
    # val_acc, test_acc)
    model: dict[str, Any]


class DatasetRecord(TypedDict):
    name: str
    source: str
    classes: list[str]
    input_shape: list[int]
    train: int
    val: int
    test: int


class ProvenanceRecord(TypedDict, total=False):
    """provenance.json: what ran, with what, where, and how it went; each resume adds to it."""

    config: dict[str, Any]  # SearchConfig.to_dict()
    seed: int
    command: list[str]
    user: str | None
    libraries: dict[str, str | None]
    git: dict[str, Any]  # commit, dirty
    hardware: dict[str, Any]
    warm_start: dict[str, Any]  # --warm-start: the source and the trials told to Optuna
    model_source: dict[str, Any]  # --model: {path, sha256} of its file, or {import: spec}
    dataset: DatasetRecord
    started: str  # ISO 8601, UTC
    finished: str | None  # None while trials are left to run
    seconds: float
    outcomes: dict[str, int]
    timings: list[dict[str, float]]  # one entry per run: seconds per phase
    resumed: list[str]
    retry_errored: list[str]
    peak_concurrent_trials: list[int]
    memory_monitor_restarts: list[int]
    confirm: dict[str, Any]  # the confirm stage's plan: trials, seeds, epochs
    confirm_cut: str  # the line that said how the stage was cut to fit --time-budget
    live_report: list[dict[str, float]]  # per run: copies of report.html written, seconds
    samples_raised: list[dict[str, Any]]  # `tuner resume --samples N`: from, to, at
    # why the lab's baseline was left out (over the size budget): the search has no baseline
    baseline_left_out: str
