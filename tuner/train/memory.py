"""How much GPU memory a configuration's trial needs: estimated before it trains, on PyTorch's
meta device (shapes only: no memory, no arithmetic, milliseconds), and measured on a CUDA
device by one probe step.

`--gpus-per-trial auto` (tuner/driver/gpu_packing.py) gives each trial the share of a GPU that
its estimate needs. The estimate must never be below what the trial really allocates, or the
trial would run out of memory inside its share, so every term errs upwards:
- activations are counted in fp32 although a GPU trial trains under bf16 autocast (half that);
- every tensor autograd saves for the backward pass is counted (saved_tensors_hooks), the
  duplicates of one tensor once;
- the backward pass is allowed twice the largest activation on top (a gradient and its input's
  gradient alive at once), and cuDNN a fixed workspace;
- the whole dataset lives on the device (tuner/train/loader.py: uint8 images, int64 labels,
  each epoch's order and augmentation draws), and validation runs at EVAL_BATCH images.
`bench/gpu_memory.py` checks the estimate against `measure_peak_bytes` for 20 sampled
configurations of each built-in space on a real GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tuner.data import Split
from tuner.errors import ConfigError
from tuner.train.config import TrainConfig
from tuner.train.loader import _DRAWS as AUGMENT_DRAWS  # float32 draws per image and epoch
from tuner.train.loop import autocast_for, build_optimizer
from tuner.train.model import build_network
from tuner.train.trial import EVAL_BATCH, build_model, make_loaders
from tuner.train.trial_data import TrialData

# cuDNN's convolution workspace, allocated through PyTorch's allocator: cudnn picks algorithms
# within what is free, and 256 MiB covers the ones it picks for these networks' sizes.
WORKSPACE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class MemoryEstimate:
    """The bytes one trial of a configuration allocates on its device at its peak, by part."""

    weights: int  # parameters, their gradients, the optimizer's state, buffers, kept weights
    data: int  # the train and validation splits on the device, an epoch's order and draws
    step: int  # one training step: its batch, saved activations, the backward's transients
    evaluation: int  # one validation batch and its largest activations
    workspace: int = WORKSPACE_BYTES

    @property
    def total(self) -> int:
        return self.weights + self.data + max(self.step, self.evaluation) + self.workspace

    def to_dict(self) -> dict[str, int]:
        return {
            "weights": self.weights, "data": self.data, "step": self.step,
            "evaluation": self.evaluation, "workspace": self.workspace, "total": self.total,
        }  # fmt: skip


def _optimizer_copies(cfg: TrainConfig) -> int:
    """Tensors the optimizer keeps per parameter: Adam's two moments, SGD's momentum."""
    if cfg.optimizer in ("adam", "adamw"):
        return 2
    return 1 if cfg.momentum else 0


def estimate_peak_bytes(
    config: dict[str, Any] | TrainConfig,
    input_shape: tuple[int, int, int],
    num_classes: int,
    images: tuple[int, int],
) -> MemoryEstimate:
    """The peak device memory of one trial of `config` on `images` = (train, validation)
    images of `input_shape`, from one training step and one validation batch on the meta
    device. ConfigError / ArchError for a configuration that cannot be built."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    channels, height, width = input_shape
    pixels = channels * height * width
    n_train, n_val = images
    with torch.device("meta"):
        model = build_network(cfg, input_shape, num_classes)
    params = [p for p in model.parameters()]
    param_bytes = sum(p.numel() * 4 for p in params)  # fp32 master weights
    trainable = sum(p.numel() * 4 for p in params if p.requires_grad)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    # weights, gradients, optimizer state, and the kept (lowest-val-loss) copy, which a trial
    # holds on the CPU but the checkpoint copies through the device once
    weights = param_bytes + trainable * (1 + _optimizer_copies(cfg)) + param_bytes + buffers
    data = (n_train + n_val) * (pixels + 8) + n_train * (AUGMENT_DRAWS * 4 + 8)
    step = _step_bytes(model, cfg.batch_size, input_shape, num_classes, train=True)
    evaluation = _step_bytes(model, EVAL_BATCH, input_shape, num_classes, train=False)
    return MemoryEstimate(weights=weights, data=data, step=step, evaluation=evaluation)


def estimated_peak(
    config: dict[str, Any],
    input_shape: tuple[int, int, int],
    num_classes: int,
    images: tuple[int, int],
) -> int:
    """estimate_peak_bytes(...).total: what --gpus-per-trial auto packs trials by."""
    return estimate_peak_bytes(config, input_shape, num_classes, images).total


def _step_bytes(
    model: nn.Module, batch: int, input_shape: tuple[int, int, int], num_classes: int, train: bool
) -> int:
    """One step's transient bytes at `batch`: the batch as uint8 and through the augmentation
    (three float32 copies at most), every tensor saved for the backward pass (training), and
    twice the largest activation (the backward's gradients, or evaluation's in and out)."""
    pixels = input_shape[0] * input_shape[1] * input_shape[2]
    batch_bytes = batch * pixels * (1 + 3 * 4) + batch * 8
    saved: dict[int, tuple[torch.Tensor, int]] = {}  # id -> (the tensor, kept alive; bytes)
    largest = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.setdefault(id(t), (t, t.numel() * 4))
        return t

    def track(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel() * 4)

    hooks = [m.register_forward_hook(track) for m in model.modules()]
    model.train(train)
    try:
        with torch.device("meta"):
            x = torch.empty(batch, *input_shape)
            y = torch.zeros(batch, dtype=torch.long)
            if train:
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                    loss = nn.functional.cross_entropy(model(x), y)
                del loss
            else:
                with torch.no_grad():
                    model(x)
    finally:
        for hook in hooks:
            hook.remove()
    activations = sum(b for _, b in saved.values())
    return batch_bytes + activations + 2 * largest + batch * num_classes * 4 * 2


def measure_peak_bytes(
    config: dict[str, Any] | TrainConfig,
    input_shape: tuple[int, int, int],
    num_classes: int,
    images: tuple[int, int],
    device: torch.device,
) -> int:
    """What one trial of `config` really allocates at its peak on CUDA `device`
    (torch.cuda.max_memory_allocated), from the trial's own code: its loaders on random data
    of `images` = (train, validation), two training steps (the optimizer's state appears in
    the first) and one validation batch, under bf16 autocast as a trial trains."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        x = rng.integers(0, 256, size=(n, *input_shape), dtype=np.uint8)
        return Split(x=x, y=rng.integers(0, num_classes, size=n).astype(np.int64))

    data = TrialData(
        input_shape=input_shape, classes=tuple(str(i) for i in range(num_classes)),
        mean=(0.5,) * input_shape[0], std=(0.25,) * input_shape[0],
        train=split(images[0]), val=split(images[1]),
    )  # fmt: skip
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    model = build_model(cfg, data, device)
    train_loader, val_loader = make_loaders(cfg, data, device)
    optimizer = build_optimizer(model, cfg)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    model.train()
    batches = iter(train_loader)
    loss = None
    for _ in range(2):
        x, y = next(batches)
        with autocast_for(device):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    kept = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad(), autocast_for(device):
        x, _ = next(iter(val_loader))
        model(x)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del model, optimizer, train_loader, val_loader, batches, kept, loss
    torch.cuda.empty_cache()
    return int(peak)


def gpu_memory_bytes(given_gib: float | None) -> int:
    """The memory of the GPUs trials run on: --gpu-memory (GiB) if given, else the driver's
    first CUDA device's. ConfigError when neither is known."""
    if given_gib is not None:
        return int(given_gib * 2**30)
    if not torch.cuda.is_available():
        raise ConfigError(
            "--gpus-per-trial auto needs the GPUs' memory: this process sees no CUDA device, "
            "so pass --gpu-memory GIB (the memory of one of the cluster's GPUs)"
        )
    return int(torch.cuda.get_device_properties(0).total_memory)
