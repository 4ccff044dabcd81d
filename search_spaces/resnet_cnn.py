"""resnet_cnn: a modern residual CNN and the training recipe that makes it fast.

The network: a stem-free stack of residual blocks (conv-BN-ReLU x convs_per_block with a
shortcut, then 2x2 max pooling), channels doubling from block to block and scaled by a width
multiplier, global average pooling and a linear classifier. It is the shape of the fast CIFAR-10
recipes (ResNet-9 style: 94 % in about 10 epochs on a GPU).

The training: SGD with (Nesterov) momentum, weight decay, label smoothing, one-cycle or
cosine schedules, and augmentation by random crop (4-pixel padding), flip and optional cutout.
Batch sizes from 32 to 1024.

RECIPE is a known-good point of the space (trial 0 of every search, the way seed_cnn starts
from the lab's network): widths 128/256/512, one-cycle Nesterov SGD, label smoothing 0.1, crop +
flip + cutout 8. It is the configuration meant to reach 93 % on CIFAR-10 in 20 epochs or fewer.
"""

from __future__ import annotations

from typing import Any

from tuner.train.arch import ArchSpec, feature_size

BASE_CHANNELS = 64  # block i has BASE_CHANNELS * 2**i * width_mult channels
MAX_BLOCKS = 4

RECIPE: dict[str, Any] = {
    "n_blocks": 3, "convs_per_block": 2, "width_mult": 2.0,  # 128 / 256 / 512 channels
    "batch_size": 512, "nesterov": True, "momentum": 0.9,
    "lr": 0.2, "weight_decay": 5e-4, "label_smoothing": 0.1, "schedule": "onecycle",
    "cutout": 8,
}  # fmt: skip

# Fixed for every sample: the residual shape and the augmentations every fast recipe uses.
CONSTANTS: dict[str, Any] = {
    "kernel_size": 3, "stride": 1, "padding": "same", "dilation": 1, "pool": "max",
    "batch_norm": True, "residual": True, "global_pool": True, "fc_layers": 0, "optimizer": "sgd",
    "crop_padding": 4, "hflip": True, "grayscale_p": 0.0, "normalize": "dataset",
}  # fmt: skip


def max_blocks(input_size: int) -> int:
    """The most blocks whose poolings leave at least a 1x1 map (3 at 8x8, 4 at 32x32)."""
    fits = [
        b
        for b in range(1, MAX_BLOCKS + 1)
        if feature_size(ArchSpec(channels=(1,) * b, convs_per_block=1), input_size) >= 1
    ]
    return max(fits, default=1)


# Batches of 32 and 64 came in on 2026-12-07, for small data and short searches: on 10,780
# CIFAR-10 images x 5 epochs, batch 64 scored 63 % held out where 512 scored 48 %
# (bench/recipe_fit.py). The registry passes BATCH_SIZES. An experiment saved before then
# pickled this function without them, and Optuna refuses new trials whose choice list differs
# from its study's: resumed, it keeps the old list, the default here.
BATCH_SIZES = (32, 64, 128, 256, 512, 1024)
BATCH_SIZES_BEFORE_2026_12_07 = (128, 256, 512, 1024)


def resnet_cnn(
    trial: Any, input_size: int = 32, batch_sizes: tuple[int, ...] = BATCH_SIZES_BEFORE_2026_12_07
) -> dict[str, Any]:
    n_blocks = trial.suggest_int("n_blocks", 1, max_blocks(input_size))
    trial.suggest_int("convs_per_block", 1, 3)
    trial.suggest_categorical("width_mult", [0.25, 0.5, 1.0, 1.5, 2.0])

    trial.suggest_categorical("batch_size", list(batch_sizes))
    # SGD only: one lr range serves one optimizer (Adam's good rates are 100x smaller, and TPE
    # models each parameter on its own).
    trial.suggest_float("lr", 0.02, 0.8, log=True)
    trial.suggest_categorical("nesterov", [True, False])
    trial.suggest_float("momentum", 0.8, 0.95)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)
    trial.suggest_categorical("label_smoothing", [0.0, 0.1, 0.2])
    trial.suggest_categorical("schedule", ["onecycle", "cosine"])
    # Cutout side in pixels, 0 = off; on small images only small squares make sense.
    trial.suggest_categorical("cutout", [0, 4, 8, 12] if input_size >= 16 else [0, 2, 4])
    return {
        **CONSTANTS,
        **{f"channels_b{i}": BASE_CHANNELS * 2**i for i in range(n_blocks)},
    }
