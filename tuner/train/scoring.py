"""Test-split evaluation of a finished trial: the only place the test split is used.

The best trial is chosen on validation alone (tuner.experiment.pick_best); only then are its kept
weights scored on the test split, with per-class accuracy and the confusion matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tuner.data import DatasetBundle
from tuner.experiment.records import TestScore
from tuner.train.checkpoints import load_best_weights, newest_readable
from tuner.train.config import TrainConfig
from tuner.train.loader import DeviceLoader
from tuner.train.loop import evaluate, pick_device
from tuner.train.trial import EVAL_BATCH, build_model, normalization
from tuner.train.trial_data import TrialData


def latest_checkpoint(trial_dir: Path) -> Path | None:
    """The newest readable checkpoint (Ray writes checkpoint_000000, checkpoint_000001, ...);
    it holds the kept weights. One cut short by a crash or a full disk is passed over."""
    return newest_readable(trial_dir)[0]


def evaluate_on_test(
    config: dict[str, Any], trial_dir: Path, bundle: DatasetBundle, data: TrialData
) -> TestScore | None:
    """Test metrics of a trial's lowest-validation-loss weights, or None without a checkpoint.
    `data`: what the search's trials were given (their shape and normalisation)."""
    checkpoint = latest_checkpoint(trial_dir)
    if checkpoint is None:
        return None
    cfg = TrainConfig.from_dict(config)
    device = pick_device()
    weights, kept = load_best_weights(checkpoint)
    model = build_model(cfg, data, device)
    model.load_state_dict(weights)
    mean, std = normalization(cfg, data)
    test = DeviceLoader(
        bundle.test.x, bundle.test.y, batch_size=EVAL_BATCH, device=device, mean=mean, std=std,
        shuffle=False, channels_last=device.type == "cuda",
    )  # fmt: skip
    stats, confusion = evaluate(model, test, device, num_classes=bundle.num_classes)
    assert confusion is not None
    counts = confusion.to(torch.float64)
    per_class = (counts.diag() / counts.sum(1).clamp(min=1)).tolist()
    normalized = (counts / counts.sum(1, keepdim=True).clamp(min=1)).tolist()
    return {
        "test_acc": stats.acc,
        "test_loss": stats.loss,
        "test_images": stats.images,
        "kept_epoch": kept["epoch"],
        "kept_val_acc": kept["val_acc"],
        "kept_val_loss": kept["val_loss"],
        "per_class_acc": dict(zip(bundle.classes, per_class, strict=True)),
        "confusion_matrix": confusion.tolist(),
        "confusion_normalized": normalized,
        # Relative to the experiment directory, so a copied or moved experiment still finds it.
        "checkpoint": f"{trial_dir.name}/{checkpoint.name}",
    }
