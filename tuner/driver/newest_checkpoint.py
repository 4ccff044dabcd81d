"""Each search trial keeps its newest checkpoint only, deleted by the driver rather than by Tune.

Each checkpoint carries the kept (lowest-validation-loss) weights as well as the latest state,
so the newest one is all that a resume and the scoring need. Tune (2.60) would delete the older
ones itself under CheckpointConfig(num_to_keep=1), but with num_to_keep set it also forces a
save of its whole experiment state, and waits for the copy into the experiment directory, each
time a trial checkpoints: at 1,000 tiny trials that was 1,391 forced saves, 53 s of saving and
61 s of copying in a 450 s search (BENCHMARKS.md, [scale]), growing with trials x checkpoints.
A resume no longer needs Tune's state to be that fresh: the trainable continues from the newest
checkpoint in its own directory (tuner/driver/trainable.py), and the trials that Tune's state
lacks are added back from their own files (tuner.driver.fence.recovery.adopt_unrecorded_trials).
So Tune keeps no count, saves on its own clock (every 10 s or more), and this callback deletes
the older checkpoints once a newer one is registered.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ray.tune import Callback

from tuner.experiment import checkpoint_number


class NewestCheckpointOnly(Callback):
    """After Tune registers a trial's checkpoint, delete that trial's older ones, on whatever
    filesystem the experiment is stored (a local or shared directory, or cloud storage)."""

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **_: Any) -> None:  # fmt: skip
        import pyarrow.fs

        path, fs = getattr(checkpoint, "path", None), getattr(checkpoint, "filesystem", None)
        if not path or fs is None:
            return
        parent = posixpath.dirname(str(path))
        newest = checkpoint_number(str(path))
        if newest < 0:
            return
        try:
            found: list[Any] = fs.get_file_info(
                pyarrow.fs.FileSelector(parent, allow_not_found=True)
            )
        except OSError:  # the trial's directory is unreadable now: try again next time
            return
        for entry in found:
            older = 0 <= checkpoint_number(posixpath.basename(entry.path)) < newest
            if older and entry.type == pyarrow.fs.FileType.Directory:
                try:
                    fs.delete_dir(entry.path)
                except OSError:  # gone already, or not ours to delete: it only costs disk
                    continue
