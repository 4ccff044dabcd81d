"""What a configuration's network costs: parameters and MACs (known before it trains), and
its inference latency (measured in the trial).

The network is built on PyTorch's meta device (shapes only, no memory, no arithmetic) and run
once on a 1-image batch with forward hooks on its convolutions and linear layers, so pricing a
configuration takes milliseconds, even for networks too big to build for real. MACs
(multiply-accumulates) are per image, forward pass, convolutions and linear layers (what
torch's FLOP counter counts, halved; the tests check the two agree). The FLOP counter itself is
not used here: its first call in a process costs about 1.4 s, and every trial prices its own
network.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tuner.train.budget import Budget, Cost  # noqa: F401  (their home before; importers kept)
from tuner.train.config import TrainConfig
from tuner.train.model import build_network


def model_cost(
    config: dict[str, Any] | TrainConfig, input_shape: tuple[int, int, int], num_classes: int
) -> Cost:
    """Parameters and per-image MACs of the network `config` describes (ConfigError /
    ArchError for a configuration that cannot be built)."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    try:
        with torch.device("meta"):
            model = build_network(cfg, input_shape, num_classes)
            x = torch.empty(1, *input_shape)
        cost, _ = run_and_count(model, x)
    except Exception:
        if not cfg.model:
            raise
        # A user's network may do what the meta device cannot (read a value with .item(),
        # build from data): price it for real on the CPU instead, once.
        model = build_network(cfg, input_shape, num_classes)
        cost, _ = run_and_count(model, torch.zeros(1, *input_shape))
    return cost


def run_and_count(model: nn.Module, x: torch.Tensor) -> tuple[Cost, torch.Tensor]:
    """One eval-mode forward pass of batch `x` that also counts the network's cost: its
    parameters and its MACs per image (convolutions and linear layers). Returns the output too,
    so a caller that runs the network anyway (the space check) prices it in the same pass."""
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    macs = 0

    def count(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):  # every output value: C_in/groups x kh x kw products
            kh, kw = module.kernel_size
            macs += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):  # the only other kind hooked below
            macs += output.numel() * module.in_features

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return Cost(params=params, macs=macs // x.shape[0]), out


LATENCY_WARMUP, LATENCY_REPS = 2, 7


@torch.no_grad()
def inference_latency_ms(
    model: torch.nn.Module, input_shape: tuple[int, int, int], device: torch.device
) -> float:
    """Median milliseconds for one image's forward pass on `device` (eval mode, batch 1).

    Measured inside the trial, so on a shared machine it includes whatever ran beside it:
    compare latencies within one search, not across machines.
    """
    import statistics
    import time

    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_shape, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(LATENCY_WARMUP + LATENCY_REPS):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= LATENCY_WARMUP:
            times.append((time.perf_counter() - start) * 1000.0)
    model.train(was_training)
    return statistics.median(times)
