"""A trial's checkpoints on disk: which is the newest that can really be read.

Ray writes checkpoint_000000, checkpoint_000001, ... in the trial's directory (the search keeps
the newest, see build_tuner). A crash or a full disk can leave the newest one truncated, or a
user may delete it; a resume then continues from the newest readable one before it, or from
scratch, and says which, instead of failing the trial on torch.load's traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuner.experiment import CHECKPOINT_FILE, checkpoint_dirs


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


def newest_readable(
    trial_dir: str | Path, preferred: str | Path | None = None
) -> tuple[Path | None, dict[str, Any] | None, list[Path]]:
    """(checkpoint dir, its state, the unreadable ones skipped on the way). `preferred` (the
    checkpoint Tune hands over) is tried first, then the trial's others, newest first."""
    candidates = checkpoint_dirs(trial_dir)
    if preferred is not None:
        preferred = Path(preferred)
        candidates = [preferred] + [c for c in candidates if c.resolve() != preferred.resolve()]
    skipped = []
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
