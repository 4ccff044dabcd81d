"""TensorBoard event files for every trial: `tensorboard --logdir EXPERIMENT_DIR`.

Ray's own TBXLoggerCallback is off in this service: it logs every reported key, warns for every
NaN a diverged trial reports, and flooded the log. This callback writes a fixed set of scalars
per epoch into each trial's directory (events.out.tfevents.*), through tensorboardX, which Ray
Tune already depends on:

    loss/train, loss/val, accuracy/train, accuracy/val, lr, images_per_s, epoch_time_s

A non-finite value is not written (TensorBoard draws it as a spike to infinity, or drops the
whole run's axis); a diverged trial is tagged instead: a `status` text ("diverged at epoch 3")
and status=diverged among its hyperparameters. When a trial ends, its hyperparameters and
final metrics go to the HParams plugin, so the HParams tab compares trials side by side.

Runs in the driver, on Tune's result callbacks: a few scalars per epoch, written in Tune's own
thread and flushed when a trial ends, and while it runs at its first epoch FLUSH_SECS after the
last flush.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ray.tune import Callback

from tuner.experiment import finite

# tag -> the reported metric it shows
SCALARS = {
    "loss/train": "train_loss",
    "loss/val": "val_loss",
    "accuracy/train": "train_acc",
    "accuracy/val": "val_acc",
    "lr": "lr",
    "images_per_s": "images_per_s",
    "epoch_time_s": "epoch_time_s",
}
# The HParams plugin's metrics: each trial's final figures (tags of their own, written once).
FINAL_METRICS = {
    "final/best_val_acc": "best_val_acc",
    "final/best_val_loss": "best_val_loss",
    "final/epochs": "epoch",
}
# A trial's events reach its file when it ends, and while it runs at its first epoch after
# FLUSH_SECS: `tensorboard` shows a long trial's curve within that.
FLUSH_SECS = 30
HPARAM_TYPES = (bool, int, float, str)


def _hparam(value: Any) -> bool | int | float | str | None:
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, HPARAM_TYPES):
        return value
    return None if value is None else str(value)


@functools.cache
def _tbx() -> SimpleNamespace:
    """tensorboardX's event file writer, summaries and Event proto, imported without torch.

    Its synchronous EventsWriter, not its SummaryWriter: a SummaryWriter starts a thread of
    its own for every trial, and one trial's writer cost the driver 3.8 ms of CPU against 0.7
    ms here (2 epochs of 7 scalars and the hparams, 200 trials; 2026-12-07), a tenth of the
    driver's whole cost a trial in a search of tiny trials (bench/scale.py).

    tensorboardX's package imports torch when it can, only to accept tensors as values; this
    callback hands it floats, and the driver never imports torch (506 MB of its memory,
    tuner/stages/torch_work.py). A None in sys.modules makes that `import torch` fail the way
    tensorboardX expects of a machine without torch, for the span of its import only.
    """
    guard = "torch" not in sys.modules and "tensorboardX" not in sys.modules
    if guard:
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from tensorboardX import summary
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event
    finally:
        if guard:
            del sys.modules["torch"]
    return SimpleNamespace(
        EventsWriter=EventsWriter, Event=Event, scalar=summary.scalar, text=summary.text,
        hparams=summary.hparams,
    )  # fmt: skip


class _TrialEvents:
    """One trial's event file (events.out.tfevents.*, in its directory), written in the
    calling thread and flushed when it closes or FLUSH_SECS after its last flush."""

    def __init__(self, directory: Path) -> None:
        self._tbx = _tbx()
        self._file = self._tbx.EventsWriter(str(directory / "events"))
        self._flushed = time.monotonic()

    def add(self, summary: Any, step: int) -> None:
        self._file.write_event(
            self._tbx.Event(summary=summary, wall_time=time.time(), step=int(step))
        )

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.add(self._tbx.scalar(tag, value), step)

    def add_text(self, tag: str, text: str, step: int) -> None:
        self.add(self._tbx.text(tag, text), step)

    def flush_if_due(self) -> None:
        if time.monotonic() - self._flushed >= FLUSH_SECS:
            self._file.flush()
            self._flushed = time.monotonic()

    def close(self) -> None:
        self._file.close()


class TensorBoardLogger(Callback):
    """One event file per trial, in the trial's directory. wrapped: the key under which a
    trial's config holds the configuration it trains (the confirm stage's runs:
    {key: {"config": ..., "seed": ...}})."""

    def __init__(self, wrapped: str | None = None) -> None:
        self._wrapped = wrapped
        self._writers: dict[str, _TrialEvents] = {}
        self._last: dict[str, dict[str, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks into tuner.pkl
        return {"_wrapped": self._wrapped, "_writers": {}, "_last": {}}

    def _writer(self, trial: Any) -> _TrialEvents:
        writer = self._writers.get(trial.trial_id)
        if writer is None:
            trial.init_local_path()
            writer = _TrialEvents(Path(trial.local_path))
            self._writers[trial.trial_id] = writer
        return writer

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        if "epoch" not in result:
            return
        writer = self._writer(trial)
        step = int(result["epoch"])
        for tag, key in SCALARS.items():
            value = finite(result.get(key))
            if value is not None:  # NaN and inf are left out, without a warning
                writer.add_scalar(tag, value, step)
        if result.get("diverged"):
            writer.add_text("status", f"diverged at epoch {step}", step)
        writer.flush_if_due()
        self._last[trial.trial_id] = result

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        self._close(trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        self._close(trial, failed=True)

    def on_experiment_end(self, trials: list, **info):
        for trial in trials:
            if trial.trial_id in self._writers:
                self._close(trial, failed=False)

    def _close(self, trial: Any, failed: bool) -> None:
        writer = self._writers.pop(trial.trial_id, None)
        last = self._last.pop(trial.trial_id, None)
        if writer is None:
            return
        try:
            if last is not None:
                self._write_hparams(writer, trial, last, failed)
        finally:
            writer.close()

    def _write_hparams(
        self, writer: _TrialEvents, trial: Any, last: dict[str, Any], failed: bool
    ) -> None:
        config = trial.config or {}
        if self._wrapped and self._wrapped in config:  # a confirm run: its config and seed
            run = config[self._wrapped]
            config = {**run["config"], "seed": run["seed"]}
        params = {k: _hparam(v) for k, v in config.items()}
        status = "error" if failed else "diverged" if last.get("diverged") else "finished"
        params = {k: v for k, v in params.items() if v is not None}
        params["status"] = status
        finals = {tag: finite(last.get(key)) for tag, key in FINAL_METRICS.items()}
        metrics = {tag: value for tag, value in finals.items() if value is not None}
        for summary in _tbx().hparams(hparam_dict=params, metric_dict=metrics):
            writer.add(summary, 0)  # experiment, session start, session end
        step = int(last.get("epoch", 0))
        for tag, value in metrics.items():  # the HParams tab reads these tags' scalars
            writer.add_scalar(tag, value, step)
