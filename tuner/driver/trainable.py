"""The Ray Tune trainable: trains one configuration and reports to Tune every epoch.

Each epoch it trains, validates, checkpoints and calls `tune.report`. It resumes from
`tune.get_checkpoint()`, keeps the weights with the lowest validation loss (as the lab did),
and ends at once with `diverged: true` when the loss blows up. The epochs run in a thread of
their own (tuner/train/pipeline.py), so the next epoch trains while Tune's driver takes in the last
one's report and checkpoint.

The dataset reaches it as numpy arrays from Ray's object store (`tune.with_parameters` puts
them there once per search), so no trial decodes image files.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tuner.data import DatasetBundle, open_cached
from tuner.experiment import CHECKPOINT_FILE, HISTORY_FILE, loss_exploded
from tuner.train.build import build_model, make_loaders
from tuner.train.checkpoints import describe_fallback, newest_readable
from tuner.train.config import TrainConfig
from tuner.train.cost import inference_latency_ms, run_and_count
from tuner.train.loader import channel_stats
from tuner.train.loop import build_optimizer, build_schedule, evaluate, pick_device, train_epoch
from tuner.train.model import count_parameters
from tuner.train.pipeline import EpochPipeline


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


def trial_payload(bundle: DatasetBundle, from_cache: bool = False) -> dict[str, Any]:
    """What every trial needs from the dataset: train and validation only.

    The test split never reaches a trial, so nothing in the search can be tuned on it.
    from_cache: send only where the cached arrays are (`CacheRef`), and let each trial open them
    on its own node, instead of the arrays themselves. For clusters, whose nodes share the cache.
    """
    mean, std = channel_stats(bundle.train.x)
    payload: dict[str, Any] = {
        "input_shape": bundle.input_shape,
        "num_classes": bundle.num_classes,
        "mean": mean,
        "std": std,
    }
    if from_cache:
        if bundle.cache is None:
            raise ValueError("the dataset was not cached, so trials cannot open it by path")
        payload["cache"] = bundle.cache
    else:
        payload.update(
            train_x=bundle.train.x, train_y=bundle.train.y, val_x=bundle.val.x, val_y=bundle.val.y
        )
    return payload


def resolve_payload(data: dict[str, Any]) -> dict[str, Any]:
    """The payload with its arrays: opened from the shared cache if only its location came."""
    if "cache" not in data:
        return data
    train, val = open_cached(data["cache"])
    return {**data, "train_x": train.x, "train_y": train.y, "val_x": val.x, "val_y": val.y}


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray (unit tests of the loop)
        return ""


def train_trial(
    config: dict[str, Any],
    data: dict[str, Any],
    threads: int = 1,
    gpu_share: float = 0.0,
    checkpoints: CheckpointPolicy = CheckpointPolicy(),
) -> None:
    """Tune function trainable. `config` is the flat dict a search space produced.

    `data` (see trial_payload), `threads` (torch CPU threads), `gpu_share` (the trial's
    --gpus-per-trial; a fraction caps its CUDA memory at that share) and `checkpoints` (when
    to write one) are bound once per search with `tune.with_parameters`.

    Tune runs this in a thread of its own, which here only reports: the set-up and the epochs
    run in a training thread (tuner/train/pipeline.py), so an epoch trains while the last one's
    report and checkpoint go to Tune.
    """
    from ray import tune

    data = resolve_payload(data)  # numpy only: no torch work in this thread (see below)

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        """tune.report, with a checkpoint of `state` when the epoch handed one over."""
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, Path(d) / CHECKPOINT_FILE)
            # The epochs' metrics as plain JSON too: tuner.experiment reads them without torch.
            (Path(d) / HISTORY_FILE).write_text(json.dumps(state.get("history", [])))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    pipeline = EpochPipeline(report)

    def set_up_and_train() -> None:
        """Set-up and epochs, all in the training thread. Torch work split over two threads
        gives each its own OpenMP thread pool, and the epochs then trained ~15 % slower."""
        entered = time.perf_counter()
        cfg = TrainConfig.from_dict(config)  # typed once; nothing below reads `config`
        torch.set_num_threads(max(1, threads))  # concurrent trials must not oversubscribe cores
        device = pick_device(prefer_gpu=gpu_share > 0)
        if device.type == "cuda" and gpu_share < 1:
            # Trials sharing a GPU each get their share of its memory: one trial that grows
            # (a big batch, a wide net) fails on its own instead of starving its neighbours.
            torch.cuda.set_per_process_memory_fraction(gpu_share, device)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)

        model = build_model(cfg, data, device)
        params = count_parameters(model)
        # MACs per image by forward hooks on this very model (one pass at batch 1): pricing it on
        # the meta device instead would cost ~1.3 s of torch imports in every new worker process.
        macs = run_and_count(model, torch.zeros(1, *data["input_shape"], device=device))[0].macs
        model.train()
        latency_ms = inference_latency_ms(model, data["input_shape"], device)
        train_loader, val_loader = make_loaders(cfg, data, device)
        optimizer = build_optimizer(model, cfg)
        schedule = build_schedule(optimizer, cfg, len(train_loader))
        loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        num_classes = data["num_classes"]

        start_epoch, best = 0, {"val_loss": math.inf, "val_acc": 0.0, "epoch": 0}
        best_state = _cpu_state(model)
        # Every epoch's reported metrics, kept in each checkpoint too: the driver writes
        # result.json from a staging copy that a killed driver may not have synced, and a
        # restored trial never reports those epochs again (tuner.experiment fills them in).
        history: list[dict[str, Any]] = []
        checkpoint = tune.get_checkpoint()
        state = None
        if checkpoint is not None:
            # The newest readable state: the one Tune hands over, unless a crash or a full
            # disk cut it short (then an older one of this trial, or none: epoch 1).
            if getattr(checkpoint.filesystem, "type_name", "local") == "local":
                here = Path(checkpoint.path)  # read in place, even when it was deleted
                chosen, state, skipped = newest_readable(here.parent, preferred=here)
            else:  # cloud storage: only the checkpoint Tune downloads
                with checkpoint.as_directory() as d:
                    here = Path(d)
                    chosen, state, skipped = newest_readable(here, preferred=here)
            note = describe_fallback(here.parent.name, chosen, skipped)
            if note:
                print(f"cnn-tuner: {note}", file=sys.stderr, flush=True)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if schedule is not None and state.get("schedule"):
                schedule.load_state_dict(state["schedule"])
            train_loader.load_state_dict(state["loader"])
            torch.set_rng_state(state["torch_rng"])
            best_state, best = state["best_state"], dict(state["best"])
            start_epoch = int(state["epoch"])
            history = [m for m in state.get("history", []) if m.get("epoch", 0) <= start_epoch]
        setup_s = time.perf_counter() - entered  # model, cost, loaders, restore: before epoch 1
        node_id = _node_id()  # fixed for this process: asked once, not every epoch

        saved_at, saved_best_epoch = time.monotonic(), best["epoch"]

        def snapshot(epoch: int) -> dict[str, Any]:
            """The whole training state after `epoch`, copied: the next epoch trains on while
            the trainable's thread writes it."""
            nonlocal saved_at, saved_best_epoch
            saved_at, saved_best_epoch = time.monotonic(), best["epoch"]
            return {
                "epoch": epoch,
                "model": _cpu_state(model),
                "optimizer": copy.deepcopy(optimizer.state_dict()),
                "schedule": copy.deepcopy(schedule.state_dict()) if schedule is not None else {},
                "loader": train_loader.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "best_state": best_state,  # replaced, never changed in place
                "best": dict(best),
                "history": [dict(m) for m in history],
            }

        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            epoch_started_at = time.time()  # wall clock, to measure start-up from outside
            try:
                train = train_epoch(
                    model, pipeline.batches(train_loader), optimizer, schedule, loss_fn, device
                )
            except torch.cuda.OutOfMemoryError as e:
                raise RuntimeError(
                    f"trial ran out of GPU memory within its {gpu_share:g} share of the GPU "
                    f"(batch {cfg.batch_size}, {params:,} params); raise --gpus-per-trial or "
                    "shrink the space's batch sizes and widths"
                ) from e
            metrics: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": train.loss,
                "train_acc": train.acc,
                "epoch_time_s": train.seconds,
                "images_per_s": train.images / train.seconds if train.seconds > 0 else 0.0,
                "params": params,
                "macs": macs,
                "epoch_started_at": epoch_started_at,
                "latency_ms": latency_ms,
                "setup_s": setup_s,
                "lr": optimizer.param_groups[0]["lr"],
                "node_id": node_id,
            }
            if train.diverged or loss_exploded(train.loss, num_classes):
                # The weights are garbage now; report and stop. The trial ends here, so its last
                # checkpoint is only read for its kept weights: write one if those are newer.
                metrics.update(
                    val_loss=math.inf, val_acc=float("nan"), diverged=True,
                    best_val_loss=best["val_loss"], best_val_acc=best["val_acc"],
                    best_epoch=best["epoch"],
                )  # fmt: skip
                history.append(dict(metrics))
                newer = best["epoch"] > saved_best_epoch
                pipeline.hand_over(metrics, snapshot(epoch) if newer else None)
                return

            val_started = time.perf_counter()
            val, _ = evaluate(model, pipeline.batches(val_loader), device)
            metrics["val_time_s"] = time.perf_counter() - val_started
            if val.loss < best["val_loss"]:  # the lab kept the lowest-validation-loss weights
                best = {"val_loss": val.loss, "val_acc": val.acc, "epoch": epoch}
                best_state = _cpu_state(model)
            metrics.update(
                val_loss=val.loss, val_acc=val.acc, diverged=False,
                best_val_loss=best["val_loss"], best_val_acc=best["val_acc"],
                best_epoch=best["epoch"],
            )  # fmt: skip
            history.append(dict(metrics))
            due = checkpoints.due(epoch, cfg.epochs, time.monotonic() - saved_at)
            # Where ASHA may stop the trial, wait for its verdict rather than start an epoch
            # that a stop would have to cut short (see tuner/train/pipeline.py).
            verdict = epoch in checkpoints.stop_epochs
            pipeline.hand_over(metrics, snapshot(epoch) if due else None, wait=verdict)

    pipeline.run(set_up_and_train)
