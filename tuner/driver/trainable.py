"""The Ray Tune trainable: one trial (tuner/train/trial.py) under Tune.

It hands the trial Tune's checkpoint to restore from, and reports each epoch to Tune with
`tune.report`, with a checkpoint (tuner/train/checkpoints.py) when the epoch handed one over.
The epochs run in a thread of their own (tuner/train/pipeline.py), so the next epoch trains
while Tune's driver takes in the last one's report and checkpoint.

The dataset reaches it as a `TrialData` from Ray's object store (`tune.with_parameters` puts it
there once per search), so no trial decodes image files.
"""

from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tuner.experiment import confirm_run_dir_name, dirs_of_trial, last_result
from tuner.train.checkpoints import (
    EVERY_EPOCH,
    CheckpointPolicy,
    describe_fallback,
    newest_readable,
    save_checkpoint,
)
from tuner.train.pipeline import EpochPipeline
from tuner.train.trial_data import TrialData


def train_trial(
    config: dict[str, Any],
    data: TrialData,
    threads: int = 1,
    gpu_share: float | str = 0.0,
    checkpoints: CheckpointPolicy = EVERY_EPOCH,
    compile_backend: str = "off",
    experiment_dir: str | None = None,
    run_dir_name: str | None = None,
) -> None:
    """Tune function trainable. `config` is the flat dict a search space produced.

    `data` (see TrialData.from_bundle), `threads` (torch CPU threads), `gpu_share` (the trial's
    --gpus-per-trial; a fraction caps its CUDA memory at that share; "auto": the share Tune
    gave this trial), `checkpoints` (when to write one), `compile_backend` (--compile) and
    `experiment_dir` (the Tune experiment's directory, where this trial's checkpoints are
    looked for when Tune hands over none) are bound once per search with
    `tune.with_parameters`. `run_dir_name`: the trial's directory there, when its name does
    not end in Tune's trial id (a confirm run's).

    Tune runs this in a thread of its own, which here only reports: the set-up and the epochs
    run in a training thread (tuner/train/pipeline.py), so an epoch trains while the last one's
    report and checkpoint go to Tune.
    """
    from ray import tune

    # torch here, in the trial's process: the driver imports this module (to hand Tune the
    # function) and never torch (tuner/stages/torch_work.py).
    from tuner.train.trial import run_trial

    data = data.opened()  # numpy only: no torch work in this thread (see run_trial)
    if gpu_share == "auto":  # the share tuner.driver.gpu_packing asked for this configuration
        gpu_share = float(tune.get_context().get_trial_resources().required_resources["GPU"])

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        """tune.report, with a checkpoint of `state` when the epoch handed one over."""
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(d, state)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    pipeline = EpochPipeline(report)
    node_id = _node_id()  # fixed for this process: asked once, not every epoch
    read_state = functools.partial(_restored_state, experiment_dir, run_dir_name)
    one_trial = functools.partial(
        run_trial, config, data, pipeline.hand_over, threads=threads, gpu_share=float(gpu_share),
        checkpoints=checkpoints, read_state=read_state, node_id=node_id,
        batches=pipeline.batches, compile_backend=compile_backend,
    )  # fmt: skip
    pipeline.run(one_trial)


def train_confirm_run(config: dict[str, Any], data: TrialData, **bound: Any) -> None:
    """Tune function trainable of the confirm stage (tuner/driver/confirm.py): its config is
    {"confirm": {"trial_index", "seed", "config": the flat config to train}}."""
    name = confirm_run_dir_name(SimpleNamespace(config=config))
    train_trial(dict(config["confirm"]["config"]), data, run_dir_name=name, **bound)


def _own_dir(experiment_dir: str | None, run_dir_name: str | None) -> Path | None:
    """This trial's directory in the experiment, when this worker sees it (the same machine,
    or the shared volume of a cluster); None otherwise."""
    from ray import tune

    if experiment_dir is None:
        return None
    if run_dir_name is not None:
        return Path(experiment_dir) / run_dir_name
    found = dirs_of_trial(experiment_dir, tune.get_context().get_trial_id())
    return found[0] if found else None


def _restored_state(
    experiment_dir: str | None = None, run_dir_name: str | None = None
) -> dict[str, Any] | None:
    """The state to continue from: the newest readable checkpoint of the trial. That is the one
    Tune hands over, or a newer one Tune's last save missed (tuner.train.checkpoints), unless
    a crash or a full disk cut it short (then an older one, or None: epoch 1). Read in the
    training thread, with the rest of the trial's torch work.

    When Tune hands over none, the trial's own directory is looked in: a trial stopped by
    Ctrl-C in its first epoch writes that epoch's checkpoint after Tune's last save, and
    without this the resume trained its first epoch again."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        own = _own_dir(experiment_dir, run_dir_name)
        if own is None or not own.is_dir():
            return None
        chosen, state, skipped = newest_readable(own)
        note = describe_fallback(own.name, chosen, skipped)
        if chosen is not None and not skipped:
            note = f"{own.name}: {chosen.name} was saved after Tune's record; it goes on from there"
        if note and chosen is not None:
            print(f"cnn-tuner: {note}", file=sys.stderr, flush=True)
        return _unheard(state, own)
    if getattr(checkpoint.filesystem, "type_name", "local") == "local":
        here = Path(checkpoint.path)  # read in place, even when it was deleted
        chosen, state, skipped = newest_readable(here.parent, preferred=here)
    else:  # cloud storage: only the checkpoint Tune downloads
        with checkpoint.as_directory() as d:
            here = Path(d)
            chosen, state, skipped = newest_readable(here, preferred=here)
    note = describe_fallback(here.parent.name, chosen, skipped)
    newer = chosen is not None and chosen.name > here.name
    if chosen is not None and newer and not skipped:
        note = (f"{here.parent.name}: {chosen.name} is newer than Tune's record ({here.name}); "
                "it continues from there")  # fmt: skip
    if note:
        print(f"cnn-tuner: {note}", file=sys.stderr, flush=True)
    return _unheard(state, here.parent) if newer else state


def _unheard(state: dict[str, Any] | None, trial_dir: Path) -> dict[str, Any] | None:
    """`state`, marked UNHEARD when the driver may not have heard of its epoch: the trial's
    result.json (written by the driver as it takes each result in, tuner/driver/fence/
    loggers.py) does not reach it. Where that file cannot be read here, it is marked: a
    report heard twice is recorded once."""
    if state is None:
        return None
    heard = int((last_result(trial_dir) or {}).get("epoch") or 0)
    from tuner.train.trial import UNHEARD

    return state if heard >= int(state.get("epoch") or 0) else {**state, UNHEARD: True}


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray
        return ""
