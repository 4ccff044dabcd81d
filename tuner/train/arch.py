"""ArchSpec: what a ConvNet looks like, as plain data (no torch).

Typing a configuration, validating it and working out feature-map sizes needs no tensors, so
this module imports no torch: `tuner search` checks its input and starts Ray while torch is
still being imported in another thread (tuner/driver/ray_runtime.py). tuner/train/model.py
builds the network.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# The lab's network (the lab report's final configuration): [conv-relu-conv-relu-maxpool] x 3 with
# 64/128/256 maps, then FC 4096->256 (dropout 0.2) ->64 ->10. 2,211,338 parameters at 3x32x32.
LAB_ARCH = ArchSpec()
