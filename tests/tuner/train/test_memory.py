"""The peak-memory estimate that --gpus-per-trial auto packs trials by (tuner/train/memory.py),
on the meta device: it covers what a trial holds by construction, and grows with what it
should grow with."""

from __future__ import annotations

import pytest

from search_spaces import get_space
from tuner.train.config import TrainConfig
from tuner.train.memory import (
    WORKSPACE_BYTES,
    estimate_peak_bytes,
    estimated_peak,
)
from tuner.train.model import build_network, count_parameters

LAB = {"n_blocks": 3, "channels_b0": 32, "channels_b1": 64, "channels_b2": 128, "fc_layers": 1,
       "fc_width_0": 256, "batch_size": 64, "optimizer": "adam", "lr": 1e-3}  # fmt: skip
SHAPE, CLASSES, IMAGES = (3, 32, 32), 10, (45_000, 5_000)


def test_the_estimate_holds_every_tensor_a_trial_keeps_on_its_device():
    cfg = TrainConfig.from_dict(LAB)
    params = count_parameters(build_network(cfg, SHAPE, CLASSES))
    estimate = estimate_peak_bytes(cfg, SHAPE, CLASSES, IMAGES)
    # weights, gradients, Adam's two moments and the kept copy, fp32
    assert estimate.weights >= params * 4 * 5
    # the splits as uint8 and their int64 labels
    assert estimate.data >= sum(IMAGES) * (3 * 32 * 32 + 8)
    # one batch as float32, at least, and the first conv's output (64 x 32 x 32 x 32 fp32),
    # which autograd keeps for the backward pass
    assert estimate.step >= 64 * 3 * 32 * 32 * 4 + 64 * 32 * 32 * 32 * 4
    transient = max(estimate.step, estimate.evaluation)
    assert estimate.total == estimate.weights + estimate.data + transient + WORKSPACE_BYTES
    assert estimated_peak(LAB, SHAPE, CLASSES, IMAGES) == estimate.total


def test_the_estimate_grows_with_the_batch_the_width_the_optimizer_and_the_data():
    base = estimate_peak_bytes(LAB, SHAPE, CLASSES, IMAGES)
    bigger_batch = estimate_peak_bytes({**LAB, "batch_size": 512}, SHAPE, CLASSES, IMAGES)
    wider = estimate_peak_bytes({**LAB, "channels_b2": 512, "fc_width_0": 1024}, SHAPE, CLASSES,
                                IMAGES)  # fmt: skip
    plain_sgd = estimate_peak_bytes({**LAB, "optimizer": "sgd", "momentum": 0.0}, SHAPE, CLASSES,
                                    IMAGES)  # fmt: skip
    fewer_images = estimate_peak_bytes(LAB, SHAPE, CLASSES, (5_000, 1_000))
    assert bigger_batch.step > 4 * base.step
    assert wider.weights > 2 * base.weights
    assert plain_sgd.weights < base.weights  # no moments to keep
    assert fewer_images.data < base.data / 5
    assert bigger_batch.total > base.total and wider.total > base.total


@pytest.mark.parametrize("space", ["seed_cnn", "resnet_cnn"])
def test_every_built_in_space_is_estimated_in_milliseconds_without_memory(space):
    """Sampled configurations of each built-in space, at CIFAR's shape: each one estimated on
    the meta device (a 512-wide resnet at batch 1024 would need gigabytes for real)."""
    from search_spaces.check import sample_configs

    totals = []
    for _, config in sample_configs(get_space(space), 32, samples=6, seed=3):
        totals.append(estimated_peak({**config, "epochs": 10}, SHAPE, CLASSES, IMAGES))
    assert all(t > WORKSPACE_BYTES for t in totals)
    assert len(set(totals)) > 1  # the configurations differ, and so do their needs
