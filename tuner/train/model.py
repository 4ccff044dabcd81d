"""ConvNet: a plain or residual CNN built from an architecture spec.

The spec covers every axis the lab tuned by hand (blocks, convs per block, channels, kernel,
FC widths, dropout) plus the ones it listed as next steps (stride, padding, dilation) and the
ones a modern CNN needs (batch norm, residual connections). The flatten size is derived from
the input size, so one spec works from 8x8 digits to 32x32 CIFAR-10.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from tuner.train.arch import (  # noqa: F401  (re-exported: the spec lives in tuner.train.arch)
    LAB_ARCH,
    PADDINGS,
    POOLS,
    ArchError,
    ArchSpec,
    _conv_padding,
    conv_output_size,
    feature_size,
)

if TYPE_CHECKING:
    from tuner.train.config import TrainConfig


class ConvBlock(nn.Module):
    """convs_per_block x (conv, [BN], ReLU), an optional shortcut, then pooling and dropout."""

    def __init__(self, in_channels: int, out_channels: int, spec: ArchSpec) -> None:
        super().__init__()
        pad = _conv_padding(spec)
        layers: list[nn.Module] = []
        for i in range(spec.convs_per_block):
            conv = nn.Conv2d(
                in_channels if i == 0 else out_channels,
                out_channels,
                spec.kernel_size,
                stride=spec.stride if i == 0 else 1,
                padding=pad,
                dilation=spec.dilation,
                bias=not spec.batch_norm,  # BN's shift makes a conv bias redundant
            )
            layers.append(conv)
            if spec.batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            # In a residual block the last ReLU comes after the addition.
            if not (spec.residual and i == spec.convs_per_block - 1):
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)
        self.shortcut: nn.Module | None = None
        if spec.residual:
            self.shortcut = self._make_shortcut(in_channels, out_channels, spec)
        tail: list[nn.Module] = []
        if spec.pool == "max":
            tail.append(nn.MaxPool2d(2))
        elif spec.pool == "avg":
            tail.append(nn.AvgPool2d(2))
        if spec.conv_dropout > 0:
            tail.append(nn.Dropout2d(spec.conv_dropout))
        self.tail = nn.Sequential(*tail)

    @staticmethod
    def _make_shortcut(in_channels: int, out_channels: int, spec: ArchSpec) -> nn.Module:
        # "valid" padding shrinks the body's output, so the shortcut cannot line up with it.
        if spec.padding != "same":
            raise ArchError("residual blocks need padding='same'")
        if in_channels == out_channels and spec.stride == 1:
            return nn.Identity()
        proj: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, 1, stride=spec.stride, bias=not spec.batch_norm)
        ]
        if spec.batch_norm:
            proj.append(nn.BatchNorm2d(out_channels))
        return nn.Sequential(*proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W)
        out = self.body(x)  # (B, C_out, H', W')
        if self.shortcut is not None:
            out = torch.relu(out + self.shortcut(x))
        return self.tail(out)


class ConvNet(nn.Module):
    """Conv blocks, then flatten (or global average pool), hidden FC layers and a classifier."""

    def __init__(self, spec: ArchSpec, in_channels: int, num_classes: int, input_size: int) -> None:
        super().__init__()
        side = feature_size(spec, input_size)
        if side < 1:
            raise ArchError(
                f"the {input_size}x{input_size} input shrinks to nothing in this architecture "
                f"({spec.blocks} blocks x {spec.convs_per_block} convs, kernel {spec.kernel_size}, "
                f"stride {spec.stride}, padding {spec.padding}, dilation {spec.dilation}, "
                f"pool {spec.pool})"
            )
        self.spec = spec
        blocks, c = [], in_channels
        for out_c in spec.channels:
            blocks.append(ConvBlock(c, out_c, spec))
            c = out_c
        self.features = nn.Sequential(*blocks)
        if spec.global_pool:
            self.reduce: nn.Module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            flat = c
        else:
            self.reduce = nn.Flatten()
            flat = c * side * side  # the lab hard-coded 256*4*4; here it follows the input
        head: list[nn.Module] = []
        width = flat
        for hidden, rate in zip(spec.fc_widths, spec.fc_dropout, strict=True):
            head += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            if rate > 0:
                head.append(nn.Dropout(rate))
            width = hidden
        head.append(nn.Linear(width, num_classes))
        self.head = nn.Sequential(*head)
        self.flatten_size = flat

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.reduce(self.features(x)))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, the figure the lab quotes (2,211,338 for its network)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_network(
    cfg: TrainConfig, input_shape: tuple[int, int, int], num_classes: int
) -> nn.Module:
    """The network `cfg` describes for images of `input_shape` (C, H, W): the user's
    `build(params, input_shape, num_classes)` when cfg.model names one, else ConvNet(cfg.arch).
    Builds on the current default device (the meta device prices a network without memory)."""
    if cfg.model:
        from tuner.train.user_model import build_user_model

        return build_user_model(cfg.model, cfg.model_params, input_shape, num_classes)
    channels, height, _ = input_shape
    return ConvNet(cfg.arch, channels, num_classes, height)
