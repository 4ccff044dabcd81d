"""NewestCheckpointOnly: once Tune registers a trial's checkpoint, the trial's older ones are
deleted from the disk (Tune keeps no count, so it never forces a save of its state for them)."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow.fs

from tuner.driver.newest_checkpoint import NewestCheckpointOnly


def test_older_checkpoints_of_the_trial_are_deleted_and_nothing_else(tmp_path):
    trial = tmp_path / "trial_0003_abc"
    for name in ("checkpoint_000000", "checkpoint_000001", "checkpoint_000002",
                 "checkpoint_000009", "checkpoint_notes", "events"):  # fmt: skip
        (trial / name).mkdir(parents=True)
        (trial / name / "state.pt").write_bytes(b"x")
    (trial / "result.json").write_text("{}\n")
    other = tmp_path / "trial_0004_def" / "checkpoint_000000"
    other.mkdir(parents=True)
    registered = SimpleNamespace(path=str(trial / "checkpoint_000002"),
                                 filesystem=pyarrow.fs.LocalFileSystem())  # fmt: skip
    NewestCheckpointOnly().on_checkpoint(0, [], None, registered)
    # The newer one (a later epoch already copied in) and anything not a checkpoint stay.
    assert sorted(p.name for p in trial.iterdir()) == [
        "checkpoint_000002", "checkpoint_000009", "checkpoint_notes", "events", "result.json",
    ]  # fmt: skip
    assert other.is_dir()  # another trial's
    # A checkpoint on no filesystem (Tune's in-memory kind) is left alone.
    NewestCheckpointOnly().on_checkpoint(0, [], None, SimpleNamespace(path=None, filesystem=None))
