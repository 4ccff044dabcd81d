"""Recognising a full disk through the wrappers around it, and a resume that forgets the
checkpoints a full disk kept from reaching it (tuner/stages/disk.py, recovery.py)."""

from __future__ import annotations

import errno

import pytest

from tuner.stages.disk import estimate_bytes, is_disk_full


def test_disk_full_is_recognised_through_the_wrappers_ray_and_sqlite_put_around_it():
    import sqlite3

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("StorageInternalError: an error occurred") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    wrapped = RuntimeError("Trial task failed: OSError: [Errno 28] No space left on device")
    assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("nan loss"))
    # A checkpoint per trial (~16 bytes a parameter), the report and the tables.
    assert estimate_bytes(10, 5, 100_000) > 10 * 16 * 100_000


def _experiment_state(exp, trial_dir, checkpoints, status="RUNNING"):
    """A Tune experiment_state file as Ray 2.60 writes it, with its real checkpoint bookkeeping
    (_CheckpointManager, cloudpickled into the JSON by Tune's own encoder)."""
    import json

    from ray.train import Checkpoint, CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult
    from ray.tune.utils.serialization import TuneFunctionEncoder

    manager = _CheckpointManager(CheckpointConfig(num_to_keep=2))
    for name in checkpoints:
        where = f"/somewhere/else/{exp.name}/{trial_dir}/{name}"  # a moved experiment's paths
        manager.register_checkpoint(_TrainingResult(checkpoint=Checkpoint(where), metrics={}))
    trial = json.dumps({"trial_id": trial_dir.rsplit("_", 1)[-1], "status": status})
    metadata = json.dumps({"checkpoint_manager": manager}, cls=TuneFunctionEncoder)
    (exp / "experiment_state-2026-12-01_00-00-00.json").write_text(
        json.dumps({"trial_data": [[trial, metadata]]})
    )


def _latest(exp):
    import json

    from ray.tune.utils.serialization import _loads_with_cloudpickle

    state = json.loads(next(exp.glob("experiment_state-*.json")).read_text())
    manager = _loads_with_cloudpickle(state["trial_data"][0][1])["checkpoint_manager"]
    latest = manager.latest_checkpoint_result
    return None if latest is None else latest.checkpoint.path.rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    "on_disk, expected",
    [(["checkpoint_000000"], "checkpoint_000000"), ([], None),
     (["checkpoint_000000", "checkpoint_000001"], "checkpoint_000001")],
)  # fmt: skip
def test_a_checkpoint_that_never_reached_the_disk_is_forgotten_before_a_resume(
    tmp_path, on_disk, expected
):
    # A full disk stopped Tune's copy of checkpoint_000001: Ray's restore then failed the trial
    # ("does not exist on storage anymore") on every retry, and `tuner resume` ended in error.
    from tuner.driver.fence.recovery import forget_missing_checkpoints

    exp = tmp_path / "exp"
    trial_dir = "trial_0001_6c888bc4"
    for name in on_disk:
        (exp / trial_dir / name).mkdir(parents=True)
    exp.mkdir(exist_ok=True)
    _experiment_state(exp, trial_dir, ["checkpoint_000000", "checkpoint_000001"])
    notes = forget_missing_checkpoints(exp)
    assert _latest(exp) == expected
    if expected == "checkpoint_000001":
        assert notes == []
    else:
        then = f"continues from {expected}" if expected else "starts again from epoch 1"
        assert notes == [f"{trial_dir}: checkpoint checkpoint_000001 never reached the disk; "
                         f"it {then}"]  # fmt: skip


def test_a_finished_trials_missing_checkpoint_is_left_alone(tmp_path):
    from tuner.driver.fence.recovery import forget_missing_checkpoints

    exp = tmp_path / "exp"
    exp.mkdir()
    _experiment_state(exp, "trial_0000_aaaa0000", ["checkpoint_000000"], status="TERMINATED")
    assert forget_missing_checkpoints(exp) == []
    assert _latest(exp) == "checkpoint_000000"
