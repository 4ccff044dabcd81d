"""One trial, in the order it runs: set-up, restore, epochs. Torch only, no Ray.

    run_trial: set_up (the trial's pieces: model, loaders, optimizer, schedule, loss, counts)
    -> restore (from a checkpoint's state, or from scratch) -> train_epochs (train, validate,
    keep the lowest-validation-loss weights as the lab did, and hand each epoch's metrics, with
    the training state when a checkpoint is due, to `report`)

A trial ends at once with `diverged: true` when its loss blows up. tuner/driver/trainable.py
runs this inside Ray Tune: its `report` is EpochPipeline.hand_over (tuner/train/pipeline.py),
which writes the checkpoint (tuner/train/checkpoints.py) and calls `tune.report` in Tune's
thread while the next epoch trains here.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from tuner.experiment import loss_exploded
from tuner.train.checkpoints import EVERY_EPOCH, CheckpointPolicy
from tuner.train.config import TrainConfig
from tuner.train.cost import inference_latency_ms, run_and_count
from tuner.train.loader import Augment, DeviceLoader
from tuner.train.loop import (
    build_optimizer,
    build_schedule,
    evaluate,
    pick_device,
    train_epoch,
)
from tuner.train.model import build_network, count_parameters
from tuner.train.trial_data import TrialData

EVAL_BATCH = 1024  # validation needs no small batches; bigger ones amortise per-batch overhead

T = TypeVar("T")


class Report(Protocol):
    """Takes one epoch's metrics and, when a checkpoint is due, the training state to save.
    wait: return only once the epoch has been judged (where the scheduler may stop the trial).
    EpochPipeline.hand_over is one."""

    def __call__(
        self, metrics: dict[str, Any], state: dict[str, Any] | None, wait: bool = False
    ) -> None: ...


def _every_batch(batches: Iterable[T]) -> Iterable[T]:
    return batches


# --- the pieces -------------------------------------------------------------------------------


def normalization(cfg: TrainConfig, data: TrialData) -> tuple[tuple, tuple]:
    channels = data.input_shape[0]
    if cfg.normalize == "half":  # the lab's Normalize((0.5,)*3, (0.5,)*3)
        return (0.5,) * channels, (0.5,) * channels
    return tuple(data.mean), tuple(data.std)


def build_model(cfg: TrainConfig, data: TrialData, device: torch.device) -> nn.Module:
    model = build_network(cfg, data.input_shape, data.num_classes).to(device)
    if device.type == "cuda":  # NHWC lets cuDNN use tensor-core kernels for bf16 convs
        model = model.to(memory_format=torch.channels_last)
    return model


def make_loaders(
    cfg: TrainConfig, data: TrialData, device: torch.device
) -> tuple[DeviceLoader, DeviceLoader]:
    train_split, val_split = data.splits()
    mean, std = normalization(cfg, data)
    channels_last = device.type == "cuda"
    augment = Augment(
        hflip=cfg.hflip,
        grayscale_p=cfg.grayscale_p,
        crop_padding=cfg.crop_padding,
        cutout=cfg.cutout,
    )
    train = DeviceLoader(
        train_split.x, train_split.y, batch_size=cfg.batch_size, device=device,
        mean=mean, std=std, augment=augment, shuffle=True, seed=cfg.seed,
        channels_last=channels_last,
    )  # fmt: skip
    val = DeviceLoader(
        val_split.x, val_split.y, batch_size=EVAL_BATCH, device=device,
        mean=mean, std=std, augment=None, shuffle=False, channels_last=channels_last,
    )  # fmt: skip
    return train, val


def compiled(model: nn.Module, backend: str) -> Any:
    """`model` through torch.compile as --compile says: "off" (the model itself), a backend
    (inductor, aot_eager), or "reduce-overhead" (inductor's kernels replayed as CUDA graphs)."""
    if backend == "off":
        return model
    if backend == "reduce-overhead":
        return torch.compile(model, mode="reduce-overhead")
    return torch.compile(model, backend=backend)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# --- set-up -----------------------------------------------------------------------------------


@dataclass
class Trial:
    """One trial's pieces, made by set_up."""

    cfg: TrainConfig
    device: torch.device
    gpu_share: float
    model: nn.Module  # its state is what checkpoints and the kept weights hold
    forward: nn.Module  # what trains and validates: `model`, or torch.compile(model)
    train_loader: DeviceLoader
    val_loader: DeviceLoader
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler | None
    loss_fn: nn.Module
    num_classes: int
    params: int  # trainable parameters
    macs: int  # multiply-accumulates per image
    latency_ms: float  # one image's forward pass


def set_up(
    config: dict[str, Any],
    data: TrialData,
    threads: int = 1,
    gpu_share: float = 0.0,
    compile_backend: str = "off",
) -> Trial:
    """The trial's pieces for `config` (the flat dict a search space produced) on `data`
    (opened: its arrays here). threads: torch CPU threads; gpu_share: its share of a GPU;
    compile_backend: --compile: "off", a torch.compile backend (inductor, aot_eager) or
    "reduce-overhead" (inductor's mode of that name)."""
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
    macs = run_and_count(model, torch.zeros(1, *data.input_shape, device=device))[0].macs
    model.train()
    latency_ms = inference_latency_ms(model, data.input_shape, device)
    train_loader, val_loader = make_loaders(cfg, data, device)
    optimizer = build_optimizer(model, cfg)
    # The compiled module shares the model's parameters, so the optimizer, the checkpoints and
    # the kept weights use `model` (whose state_dict has no "_orig_mod." prefix). It compiles
    # on its first batch, inside epoch 1, and again once for validation's eval mode.
    forward = compiled(model, compile_backend)
    return Trial(
        cfg=cfg, device=device, gpu_share=gpu_share, model=model, forward=forward,
        train_loader=train_loader,
        val_loader=val_loader, optimizer=optimizer,
        schedule=build_schedule(optimizer, cfg, len(train_loader)),
        loss_fn=nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        num_classes=data.num_classes, params=params, macs=macs, latency_ms=latency_ms,
    )  # fmt: skip


# --- restore ----------------------------------------------------------------------------------


@dataclass
class Progress:
    """Where a trial stands: its last epoch done, its kept weights and their metrics, and every
    epoch's reported metrics."""

    epoch: int
    best: dict[str, Any]  # val_loss, val_acc and epoch of the kept weights
    best_state: dict[str, torch.Tensor]  # the kept weights; replaced, never changed in place
    # Every epoch's reported metrics, kept in each checkpoint too: the driver writes
    # result.json from a staging copy that a killed driver may not have synced, and a
    # restored trial never reports those epochs again (tuner.experiment fills them in).
    history: list[dict[str, Any]] = field(default_factory=list)
    # Restored from a checkpoint newer than Tune's record of the trial (UNHEARD): the driver
    # may never have heard of its last epoch (killed between the checkpoint and the report),
    # so that epoch is reported again before the next one trains, for ASHA to judge it.
    unheard: bool = False


# Set by the trainable on a checkpoint's state it restores from that is not Tune's record.
UNHEARD = "cnn_tuner_unheard"


def restore(trial: Trial, state: dict[str, Any] | None) -> Progress:
    """Load a checkpoint's `state` (see training_state) into the trial's pieces, or start from
    scratch when there is none."""
    if state is None:
        best = {"val_loss": math.inf, "val_acc": 0.0, "epoch": 0}
        return Progress(epoch=0, best=best, best_state=_cpu_state(trial.model))
    trial.model.load_state_dict(state["model"])
    trial.optimizer.load_state_dict(state["optimizer"])
    if trial.schedule is not None and state.get("schedule"):
        trial.schedule.load_state_dict(state["schedule"])
    trial.train_loader.load_state_dict(state["loader"])
    torch.set_rng_state(state["torch_rng"])
    epoch = int(state["epoch"])
    return Progress(
        epoch=epoch,
        best=dict(state["best"]),
        best_state=state["best_state"],
        history=[m for m in state.get("history", []) if m.get("epoch", 0) <= epoch],
        unheard=bool(state.get(UNHEARD)),
    )


def training_state(trial: Trial, progress: Progress) -> dict[str, Any]:
    """The whole training state after `progress.epoch`, copied: the next epoch trains on while
    the trainable's thread writes it (tuner.train.checkpoints.save_checkpoint)."""
    return {
        "epoch": progress.epoch,
        "model": _cpu_state(trial.model),
        "optimizer": copy.deepcopy(trial.optimizer.state_dict()),
        "schedule": (
            copy.deepcopy(trial.schedule.state_dict()) if trial.schedule is not None else {}
        ),
        "loader": trial.train_loader.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "best_state": progress.best_state,  # replaced, never changed in place
        "best": dict(progress.best),
        "history": [dict(m) for m in progress.history],
    }


# --- the epochs -------------------------------------------------------------------------------


def train_epochs(
    trial: Trial,
    progress: Progress,
    report: Report,
    checkpoints: CheckpointPolicy = EVERY_EPOCH,
    *,
    setup_s: float = 0.0,
    node_id: str = "",
    batches: Callable[[Iterable[Any]], Iterable[Any]] = _every_batch,
    validate: bool = True,
) -> None:
    """The epochs after `progress.epoch` up to the budget, each one's metrics handed to
    `report`, with the training state where `checkpoints` says one is due. A diverged epoch
    ends the trial. batches: wraps each loader (EpochPipeline.batches stops a stopped trial
    within a batch). validate=False: no validation pass (`tuner train --train-on trainval`
    trains on the validation images too); val_loss and val_acc are NaN and the kept weights
    are the newest epoch's."""
    cfg, model, optimizer = trial.cfg, trial.forward, trial.optimizer
    saved_at, saved_best_epoch = time.monotonic(), progress.best["epoch"]

    def snapshot() -> dict[str, Any]:
        nonlocal saved_at, saved_best_epoch
        saved_at, saved_best_epoch = time.monotonic(), progress.best["epoch"]
        return training_state(trial, progress)

    if progress.history and (progress.unheard or progress.epoch >= cfg.epochs):
        # Restored from a checkpoint Tune's last save had missed: the driver must hear of its
        # epoch (ASHA judges it; a report it had heard is recorded once). From the last
        # epoch's, nothing is left to train, but Tune and the searcher must still hear how the
        # trial ended (it returned at once, and Optuna was told PRUNED for a trial the tables
        # call completed).
        # Waited on like a rung's report: a stop on it must come before the next epoch starts.
        report(dict(progress.history[-1]), None, wait=progress.epoch < cfg.epochs)
        if progress.epoch >= cfg.epochs:
            return
    for epoch in range(progress.epoch + 1, cfg.epochs + 1):
        epoch_started_at = time.time()  # wall clock, to measure start-up from outside
        try:
            train = train_epoch(
                model, batches(trial.train_loader), optimizer, trial.schedule, trial.loss_fn,
                trial.device,
            )  # fmt: skip
        except torch.cuda.OutOfMemoryError as e:
            raise RuntimeError(
                f"trial ran out of GPU memory within its {trial.gpu_share:g} share of the GPU "
                f"(batch {cfg.batch_size}, {trial.params:,} params); raise --gpus-per-trial or "
                "shrink the space's batch sizes and widths"
            ) from e
        progress.epoch = epoch
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train.loss,
            "train_acc": train.acc,
            "epoch_time_s": train.seconds,
            "images_per_s": train.images / train.seconds if train.seconds > 0 else 0.0,
            "params": trial.params,
            "macs": trial.macs,
            "epoch_started_at": epoch_started_at,
            "latency_ms": trial.latency_ms,
            "setup_s": setup_s,
            "lr": optimizer.param_groups[0]["lr"],
            "node_id": node_id,
        }
        best = progress.best
        if train.diverged or loss_exploded(train.loss, trial.num_classes):
            # The weights are garbage now; report and stop. The trial ends here, so its last
            # checkpoint is only read for its kept weights: write one if those are newer.
            metrics.update(
                val_loss=math.inf, val_acc=float("nan"), diverged=True,
                best_val_loss=best["val_loss"], best_val_acc=best["val_acc"],
                best_epoch=best["epoch"],
            )  # fmt: skip
            progress.history.append(dict(metrics))
            newer = best["epoch"] > saved_best_epoch
            report(metrics, snapshot() if newer else None)
            return

        if validate:
            val_started = time.perf_counter()
            val, _ = evaluate(model, batches(trial.val_loader), trial.device)
            metrics["val_time_s"] = time.perf_counter() - val_started
            val_loss, val_acc = val.loss, val.acc
            if val_loss < best["val_loss"]:  # the lab kept the lowest-validation-loss weights
                progress.best = best = {"val_loss": val_loss, "val_acc": val_acc, "epoch": epoch}
                progress.best_state = _cpu_state(trial.model)
        else:
            # The validation images are being trained on, so they cannot choose the weights:
            # without a figure to compare epochs by, the kept weights are simply the newest.
            metrics["val_time_s"] = 0.0
            val_loss = val_acc = math.nan
            progress.best = best = {"val_loss": val_loss, "val_acc": val_acc, "epoch": epoch}
            progress.best_state = _cpu_state(trial.model)
        if trial.device.type == "cuda":  # what --gpus-per-trial auto's estimate is held to
            metrics["gpu_share"] = trial.gpu_share
            metrics["gpu_peak_mb"] = torch.cuda.max_memory_allocated(trial.device) / 2**20
        metrics.update(
            val_loss=val_loss, val_acc=val_acc, diverged=False,
            best_val_loss=best["val_loss"], best_val_acc=best["val_acc"],
            best_epoch=best["epoch"],
        )  # fmt: skip
        progress.history.append(dict(metrics))
        due = checkpoints.due(epoch, cfg.epochs, time.monotonic() - saved_at)
        # Where ASHA may stop the trial, wait for its verdict rather than start an epoch
        # that a stop would have to cut short (see tuner/train/pipeline.py).
        verdict = epoch in checkpoints.stop_epochs
        report(metrics, snapshot() if due else None, wait=verdict)


# --- the whole trial --------------------------------------------------------------------------


def run_trial(
    config: dict[str, Any],
    data: TrialData,
    report: Report,
    *,
    threads: int = 1,
    gpu_share: float = 0.0,
    checkpoints: CheckpointPolicy = EVERY_EPOCH,
    read_state: Callable[[], dict[str, Any] | None] = lambda: None,
    node_id: str = "",
    batches: Callable[[Iterable[Any]], Iterable[Any]] = _every_batch,
    validate: bool = True,
    compile_backend: str = "off",
) -> None:
    """Set up, restore from `read_state()` (the checkpoint's state, or None), train the epochs.
    All in the calling thread: torch work split over two threads gives each its own OpenMP
    thread pool, and the epochs then trained ~15 % slower. validate: see train_epochs (the
    search's trials always validate)."""
    entered = time.perf_counter()
    trial = set_up(
        config, data, threads=threads, gpu_share=gpu_share, compile_backend=compile_backend
    )
    progress = restore(trial, read_state())
    setup_s = time.perf_counter() - entered  # model, cost, loaders, restore: before epoch 1
    train_epochs(
        trial, progress, report, checkpoints, setup_s=setup_s, node_id=node_id, batches=batches,
        validate=validate,
    )  # fmt: skip
