"""A trial's model and data loaders, built from its config and the dataset payload (see
tuner.driver.trainable.trial_payload): torch only, used by the trainable and by test scoring."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tuner.train.config import TrainConfig
from tuner.train.loader import Augment, DeviceLoader
from tuner.train.model import ConvNet

EVAL_BATCH = 1024  # validation needs no small batches; bigger ones amortise per-batch overhead


def normalization(cfg: TrainConfig, data: dict[str, Any]) -> tuple[tuple, tuple]:
    channels = data["input_shape"][0]
    if cfg.normalize == "half":  # the lab's Normalize((0.5,)*3, (0.5,)*3)
        return (0.5,) * channels, (0.5,) * channels
    return tuple(data["mean"]), tuple(data["std"])


def build_model(cfg: TrainConfig, data: dict[str, Any], device: torch.device) -> nn.Module:
    channels, height, _ = data["input_shape"]
    model = ConvNet(cfg.arch, channels, data["num_classes"], height).to(device)
    if device.type == "cuda":  # NHWC lets cuDNN use tensor-core kernels for bf16 convs
        model = model.to(memory_format=torch.channels_last)
    return model


def make_loaders(
    cfg: TrainConfig, data: dict[str, Any], device: torch.device
) -> tuple[DeviceLoader, DeviceLoader]:
    mean, std = normalization(cfg, data)
    channels_last = device.type == "cuda"
    augment = Augment(
        hflip=cfg.hflip,
        grayscale_p=cfg.grayscale_p,
        crop_padding=cfg.crop_padding,
        cutout=cfg.cutout,
    )
    train = DeviceLoader(
        data["train_x"], data["train_y"], batch_size=cfg.batch_size, device=device,
        mean=mean, std=std, augment=augment, shuffle=True, seed=cfg.seed,
        channels_last=channels_last,
    )  # fmt: skip
    val = DeviceLoader(
        data["val_x"], data["val_y"], batch_size=EVAL_BATCH, device=device,
        mean=mean, std=std, augment=None, shuffle=False, channels_last=channels_last,
    )  # fmt: skip
    return train, val
