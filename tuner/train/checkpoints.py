"""A trial's checkpoints on disk: when one is written, what it holds, and which is the newest
that can really be read. Every checkpoint is saved and loaded here.

A checkpoint is a directory holding state.pt (the whole training state, `save_checkpoint`) and
history.json (every epoch's reported metrics up to it, plain JSON: tuner.experiment reads them
without torch). Ray writes checkpoint_000000, checkpoint_000001, ... in the trial's directory
(the search keeps the newest, see build_tuner). A crash or a full disk can leave the newest one
truncated, or a user may delete it; a resume then continues from the newest readable one before
it, or from scratch, and says which, instead of failing the trial on torch.load's traceback.

No torch at import and no Ray; the file names are tuner.experiment's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

from tuner.experiment import CHECKPOINT_FILE, HISTORY_FILE, checkpoint_dirs


@dataclass(frozen=True)
class CheckpointPolicy:
    """When a trial writes a checkpoint (its model, optimizer, RNG and kept weights).

    Every epoch is the safe choice, and cheap for slow epochs; but epochs of a fraction of a
    second (small nets, GPUs) would spend a good share of their time writing state that the
    next epoch replaces. So a trial checkpoints at most every `interval_s` seconds, and always
    at its last epoch and at the epochs where the scheduler may stop it (ASHA's rungs): a trial
    that ends always leaves its kept weights, and a crash costs at most `interval_s` of
    training. interval_s = 0 (the default) checkpoints every epoch.
    """

    interval_s: float = 0.0
    stop_epochs: frozenset[int] = frozenset()

    def due(self, epoch: int, last_epoch: int, seconds_since_last: float) -> bool:
        return (
            self.interval_s <= 0
            or epoch >= last_epoch
            or epoch in self.stop_epochs
            or seconds_since_last >= self.interval_s
        )


EVERY_EPOCH = CheckpointPolicy()  # the default: a checkpoint after every epoch


def save_checkpoint(checkpoint_dir: str | Path, state: dict[str, Any]) -> None:
    """Write `state` (see tuner.train.trial.training_state) into `checkpoint_dir`: state.pt,
    and its epochs' metrics as history.json."""
    import torch

    checkpoint_dir = Path(checkpoint_dir)
    torch.save(state, checkpoint_dir / CHECKPOINT_FILE)
    # The epochs' metrics as plain JSON too: tuner.experiment reads them without torch.
    (checkpoint_dir / HISTORY_FILE).write_text(json.dumps(state.get("history", [])))


def read_state(checkpoint_dir: str | Path) -> dict[str, Any] | None:
    """The training state in a checkpoint, or None when it is missing or cannot be read
    (cut short, corrupt). Loaded with weights_only=True: tensors and plain types only."""
    import torch

    path = Path(checkpoint_dir) / CHECKPOINT_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  truncated zip, bad pickle, missing file: all "unreadable"
        return None
    return state if isinstance(state, dict) and "best_state" in state else None


def _number(checkpoint_dir: Path) -> int:
    tail = checkpoint_dir.name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def newest_readable(
    trial_dir: str | Path, preferred: str | Path | None = None
) -> tuple[Path | None, dict[str, Any] | None, list[Path]]:
    """(checkpoint dir, its state, the unreadable ones skipped on the way). `preferred` (the
    checkpoint Tune hands over) is tried first, after any of the trial's newer ones, then the
    trial's older ones, newest first.

    Newer than Tune's record: a trial stopped by Ctrl-C can write the checkpoint of the epoch it
    was finishing after Tune's last save (that epoch is in result.json). Continuing from Tune's
    older one trained that epoch twice (CI: a trial's epochs read 1, 2, 3, 3, 4). A newer one's
    epochs that Tune never took in are filled in from its history.json (tuner.experiment)."""
    candidates = checkpoint_dirs(trial_dir)
    if preferred is not None:
        preferred = Path(preferred)
        rest = [c for c in candidates if c.resolve() != preferred.resolve()]
        newer = [c for c in rest if _number(c) > _number(preferred)]
        older = [c for c in rest if _number(c) <= _number(preferred)]
        candidates = newer + [preferred] + older
    skipped: list[Path] = []
    for candidate in candidates:
        state = read_state(candidate)
        if state is not None:
            return candidate, state, skipped
        skipped.append(candidate)
    return None, None, skipped


def describe_fallback(trial: str, chosen: Path | None, skipped: list[Path]) -> str | None:
    """One line for the user when the newest checkpoint could not be used, else None."""
    if not skipped:
        return None
    bad = ", ".join(p.name for p in skipped)
    then = f"it continues from {chosen.name}" if chosen else "it starts again from epoch 1"
    return f"{trial}: checkpoint {bad} is missing or cut short; {then}"


def load_best_weights(checkpoint_dir: str | Path) -> tuple[dict[str, Any], dict]:
    """The lowest-validation-loss weights and their metrics from a trial checkpoint."""
    import torch

    state = torch.load(
        Path(checkpoint_dir) / CHECKPOINT_FILE, map_location="cpu", weights_only=True
    )
    return state["best_state"], dict(state["best"])
