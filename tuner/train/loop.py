"""The training loop in plain PyTorch: optimizer, schedule, one epoch, evaluation.

No Ray here. One trial's epochs (tuner/train/trial.py) run these, the driver uses `evaluate`
for the test split (tuner/train/scoring.py), and bench/ times them against a bare loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from tuner.train.config import TrainConfig


@dataclass
class EpochStats:
    loss: float  # mean loss over the images seen
    acc: float  # top-1 accuracy in [0, 1]
    images: int
    seconds: float
    diverged: bool = False  # a non-finite loss stopped the epoch early


def pick_device(prefer_gpu: bool = True) -> torch.device:
    return torch.device("cuda" if prefer_gpu and torch.cuda.is_available() else "cpu")


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU (no loss scaling needed, unlike fp16); nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # Weight decay on biases and norm scales only hurts, so only >=2-D weights decay.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def build_schedule(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-batch schedule laid out over the whole epoch budget, so ASHA's early rungs see the
    same learning rates a finished trial saw at that point."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total, pct_start=0.25
        )
    return None


DIVERGENCE_CHECK_EVERY = 16  # steps between host reads of the loss's finiteness on a GPU


def train_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler | None,
    loss_fn: nn.Module,
    device: torch.device,
    check_every: int | None = None,
) -> EpochStats:
    """One pass over `batches`. Stops at a non-finite loss and flags it: at once on the CPU,
    within `check_every` steps (default DIVERGENCE_CHECK_EVERY) on a GPU."""
    model.train()
    start = time.perf_counter()
    # Sums stay on the device: a .item() per batch would sync the GPU every step.
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    diverged = False
    # On a GPU, reading the loss's finiteness every step would make the host wait for the device
    # each step (at batch 64 that cost more than the step). Read it every few steps instead: the
    # trial still stops within DIVERGENCE_CHECK_EVERY steps, in the same epoch.
    if check_every is None:
        check_every = 1 if device.type == "cpu" else DIVERGENCE_CHECK_EVERY
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    for step, (x, y) in enumerate(batches, 1):  # (B, C, H, W), (B,)
        with autocast_for(device):
            logits = model(x)
            loss = loss_fn(logits, y)
        nonfinite |= ~torch.isfinite(loss)
        if step % check_every == 0 and nonfinite:
            diverged = True
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        loss_sum += loss.detach().float() * y.numel()
        correct += (logits.argmax(1) == y).sum()
        seen += y.numel()
    diverged = diverged or bool(nonfinite)
    seconds = time.perf_counter() - start
    if seen == 0:
        return EpochStats(float("nan"), 0.0, 0, seconds, diverged=True)
    return EpochStats(loss_sum.item() / seen, correct.item() / seen, seen, seconds, diverged)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    num_classes: int | None = None,
) -> tuple[EpochStats, torch.Tensor | None]:
    """Plain cross entropy and accuracy (no label smoothing, so losses compare across trials).

    With `num_classes`, also returns the confusion matrix, rows = true class (int64, CPU).
    """
    model.eval()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    classes = num_classes or 0  # 0: no confusion matrix
    confusion = torch.zeros(classes, classes, dtype=torch.long, device=device) if classes else None
    seen = 0
    for x, y in batches:
        with autocast_for(device):
            logits = model(x)
        loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        pred = logits.argmax(1)
        correct += (pred == y).sum()
        seen += y.numel()
        if confusion is not None:
            confusion += torch.bincount(y * classes + pred, minlength=classes * classes).view(
                classes, classes
            )
    seconds = time.perf_counter() - start
    stats = EpochStats(loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1), seen, seconds)
    return stats, (confusion.cpu() if confusion is not None else None)
