"""TrainConfig: one trial's configuration, typed, built once from Ray's flat config dict.

Search spaces speak in flat keys (`n_blocks`, `channels_b0`, `lr`, ...) because that is what
Optuna suggests and what ends up as columns in trials.csv. The trainable turns that dict into a
TrainConfig at the top and nothing below it sees the dict again. Unknown keys are an error, so
a typo in a user's space fails loudly instead of silently training the default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tuner.errors import ConfigError
from tuner.train.arch import ArchError, ArchSpec

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "cosine", "onecycle")
NORMALIZATIONS = ("half", "dataset")

# Keys that describe the network; everything else is a training field of TrainConfig.
ARCH_KEYS = {
    "n_blocks", "channels", "convs_per_block", "kernel_size", "stride", "padding", "dilation",
    "pool", "batch_norm", "residual", "conv_dropout", "global_pool", "fc_layers", "dropout",
    "dropout_rate", "dropout_layers", "width_mult",
}  # fmt: skip
INDEXED_ARCH_KEYS = ("channels_b", "fc_width_")  # channels_b0, channels_b1, ..., fc_width_0, ...


@dataclass(frozen=True)
class TrainConfig:
    arch: ArchSpec = field(default_factory=ArchSpec)
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.01  # peak learning rate (one-cycle) or the constant/start rate
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 20  # budget: ASHA's max_t, schedules are laid out over this many epochs
    label_smoothing: float = 0.0  # training loss only; validation loss is plain cross entropy
    schedule: str = "none"  # none | cosine | onecycle, stepped every batch
    hflip: bool = True  # RandomHorizontalFlip(0.5), as in the lab
    grayscale_p: float = 0.1  # RandomGrayscale(p), as in the lab
    crop_padding: int = 0  # random crop after this much zero padding; 0 = off
    cutout: int = 0  # side of a random zeroed square; 0 = off
    normalize: str = "half"  # half: mean 0.5 std 0.5 like the lab; dataset: train-split stats
    seed: int = 42  # the lab's seed
    # A user's network (tuner/train/user_model.py): `file.py:build` or `package.module:build`.
    # With one, `arch` is unused and every key that is not a training field above goes to
    # build() as it is, in `model_params`.
    model: str | None = None
    model_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (self.normalize in NORMALIZATIONS, f"normalize must be one of {NORMALIZATIONS}"),
            (math.isfinite(self.lr) and self.lr > 0, "lr must be a positive number"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (0 <= self.grayscale_p <= 1, "grayscale_p must be in [0, 1]"),
            (self.crop_padding >= 0 and self.cutout >= 0, "crop_padding and cutout must be >= 0"),
            (not (self.nesterov and self.optimizer == "sgd" and self.momentum == 0),
             "nesterov needs momentum > 0"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> TrainConfig:
        """Build from a flat search-space dict (as Optuna/Ray produce it)."""
        known = {f for f in cls.__dataclass_fields__ if f not in ("arch", "model_params")}
        if config.get("model"):
            train = {k: v for k, v in config.items() if k in known}
            rest = {k: v for k, v in config.items() if k not in known}
            try:
                return cls(**train, model_params=rest)
            except TypeError as e:
                raise ConfigError(str(e)) from e
        arch_items = {
            k: v for k, v in config.items() if k in ARCH_KEYS or k.startswith(INDEXED_ARCH_KEYS)
        }
        train_items = {k: v for k, v in config.items() if k not in arch_items}
        train_items.pop("model", None)  # None: the built-in network
        unknown = sorted(set(train_items) - known)
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {unknown}; known: {sorted(known | ARCH_KEYS)} "
                "plus channels_b<i> and fc_width_<j>"
            )
        try:
            arch = arch_from_dict(arch_items)
            return cls(arch=arch, **train_items)
        except (ArchError, TypeError) as e:
            raise ConfigError(str(e)) from e

    def to_dict(self) -> dict[str, Any]:
        """Nested, JSON-ready form (for best.json and provenance)."""
        return asdict(self)


def arch_from_dict(items: dict[str, Any]) -> ArchSpec:
    """Flat keys -> ArchSpec. Missing keys keep the lab's values (see ArchSpec's defaults)."""
    base = ArchSpec()
    if "channels" in items:
        channels = tuple(int(c) for c in items["channels"])
    elif "n_blocks" in items:
        n = int(items["n_blocks"])
        missing = [f"channels_b{i}" for i in range(n) if f"channels_b{i}" not in items]
        if missing:
            raise ConfigError(f"n_blocks={n} but {missing} not given")
        channels = tuple(int(items[f"channels_b{i}"]) for i in range(n))
    else:
        channels = base.channels
    if "width_mult" in items:  # scales every block; keeps at least one channel
        channels = tuple(max(1, round(c * float(items["width_mult"]))) for c in channels)

    if "fc_layers" in items:
        m = int(items["fc_layers"])
        missing = [f"fc_width_{j}" for j in range(m) if f"fc_width_{j}" not in items]
        if missing:
            raise ConfigError(f"fc_layers={m} but {missing} not given")
        fc_widths = tuple(int(items[f"fc_width_{j}"]) for j in range(m))
    else:
        fc_widths = base.fc_widths
    # Dropout as the lab described it: on or off, a rate, and how many of the hidden FC layers
    # (counted from the first) are followed by it.
    if "dropout" in items or "dropout_rate" in items:
        on = bool(items.get("dropout", True))
        rate = float(items.get("dropout_rate", 0.0)) if on else 0.0
        layers = int(items.get("dropout_layers", 1)) if on else 0
        if layers > len(fc_widths):
            raise ConfigError(
                f"dropout_layers={layers} but only {len(fc_widths)} hidden FC layer(s)"
            )
        fc_dropout = tuple(rate if j < layers else 0.0 for j in range(len(fc_widths)))
    elif fc_widths == base.fc_widths:
        fc_dropout = base.fc_dropout
    else:
        fc_dropout = tuple(0.0 for _ in fc_widths)

    simple = {
        k: items[k]
        for k in ("convs_per_block", "kernel_size", "stride", "padding", "dilation", "pool",
                  "batch_norm", "residual", "conv_dropout", "global_pool")
        if k in items
    }  # fmt: skip
    for k in ("convs_per_block", "kernel_size", "stride", "dilation"):
        if k in simple:
            simple[k] = int(simple[k])
    for k in ("batch_norm", "residual", "global_pool"):
        if k in simple:
            simple[k] = bool(simple[k])
    return ArchSpec(channels=channels, fc_widths=fc_widths, fc_dropout=fc_dropout, **simple)
