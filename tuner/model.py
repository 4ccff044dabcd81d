"""ConvNet: a plain or residual CNN built from an architecture spec.

The spec covers every axis the lab tuned by hand (blocks, convs per block, channels, kernel,
FC widths, dropout) plus the ones it listed as next steps (stride, padding, dilation) and the
ones a modern CNN needs (batch norm, residual connections). The flatten size is derived from
the input size, so one spec works from 8x8 digits to 32x32 CIFAR-10.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

POOLS = ("max", "avg", "none")
PADDINGS = ("same", "valid")


class ArchError(ValueError):
    """An architecture spec that cannot be built (bad value, or the image shrinks to nothing)."""


@dataclass(frozen=True)
class ArchSpec:
    channels: tuple[int, ...] = (64, 128, 256)  # output channels of each block; len = blocks
    convs_per_block: int = 2  # conv layers in each block
    kernel_size: int = 3
    stride: int = 1  # stride of the first conv of each block (the others use 1)
    padding: str = "same"  # "same": keep the size (at stride 1); "valid": no padding
    dilation: int = 1  # atrous convolution; widens the receptive field at no parameter cost
    pool: str = "max"  # 2x2 pooling at the end of each block: max, avg or none
    batch_norm: bool = False  # BatchNorm2d after each conv (convs then carry no bias)
    residual: bool = False  # add a (projected) shortcut around each block
    conv_dropout: float = 0.0  # Dropout2d rate after each block; 0 = none
    fc_widths: tuple[int, ...] = (256, 64)  # hidden fully connected layers before the classifier
    fc_dropout: tuple[float, ...] = (0.2, 0.0)  # dropout after each hidden FC layer; 0 = none
    global_pool: bool = False  # average over space before the head instead of flattening it

    def __post_init__(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ArchError(f"channels must be positive and non-empty, got {self.channels}")
        if self.convs_per_block < 1:
            raise ArchError(f"convs_per_block must be >= 1, got {self.convs_per_block}")
        if self.kernel_size < 1 or self.stride < 1 or self.dilation < 1:
            raise ArchError("kernel_size, stride and dilation must be >= 1")
        if self.padding not in PADDINGS:
            raise ArchError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.pool not in POOLS:
            raise ArchError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if len(self.fc_dropout) != len(self.fc_widths):
            raise ArchError(
                f"fc_dropout needs one rate per FC width: {self.fc_dropout} vs {self.fc_widths}"
            )
        rates = (self.conv_dropout, *self.fc_dropout)
        if any(not 0.0 <= r < 1.0 for r in rates):
            raise ArchError(f"dropout rates must be in [0, 1), got {rates}")

    @property
    def blocks(self) -> int:
        return len(self.channels)


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Spatial size after one convolution (the formula in torch.nn.Conv2d's docs)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _conv_padding(spec: ArchSpec) -> int:
    return spec.dilation * (spec.kernel_size - 1) // 2 if spec.padding == "same" else 0


def feature_size(spec: ArchSpec, input_size: int) -> int:
    """Side of the feature map after all blocks, or <= 0 if the image shrinks away.

    Pure arithmetic, so search spaces can bound their choices with it without building a model.
    """
    size, pad = input_size, _conv_padding(spec)
    for _ in range(spec.blocks):
        for i in range(spec.convs_per_block):
            stride = spec.stride if i == 0 else 1
            size = conv_output_size(size, spec.kernel_size, stride, pad, spec.dilation)
            if size < 1:
                return size
        if spec.pool != "none":
            size //= 2
    return size


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


# The lab's network (../shared/design/baseline.md): [conv-relu-conv-relu-maxpool] x 3 with
# 64/128/256 maps, then FC 4096->256 (dropout 0.2) ->64 ->10. 2,211,338 parameters at 3x32x32.
LAB_ARCH = ArchSpec()
