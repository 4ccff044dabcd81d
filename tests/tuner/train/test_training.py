"""The training loop in plain PyTorch (no Ray): optimizers, schedules, divergence, learning."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from search_spaces.seed_cnn import BASELINE
from tuner.data import load_dataset
from tuner.experiment import loss_exploded
from tuner.train.config import TrainConfig
from tuner.train.loop import (
    build_optimizer,
    build_schedule,
    evaluate,
    train_epoch,
)
from tuner.train.trial import build_model, make_loaders
from tuner.train.trial_data import TrialData

CPU = torch.device("cpu")
SMALL_BN = {"n_blocks": 2, "channels_b0": 16, "channels_b1": 32, "batch_norm": True,
            "fc_layers": 1, "fc_width_0": 64, "hflip": False, "batch_size": 64}  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    bundle = load_dataset("digits")
    return bundle, TrialData.from_bundle(bundle)


def test_optimizers_match_the_config():
    model = nn.Linear(4, 2)
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.8,
                                             nesterov=True, weight_decay=1e-4))  # fmt: skip
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.8
    decays = [g["weight_decay"] for g in sgd.param_groups]
    assert decays == [1e-4, 0.0]  # weights decay, biases do not
    assert isinstance(build_optimizer(model, TrainConfig(optimizer="adam")), torch.optim.Adam)
    assert isinstance(build_optimizer(model, TrainConfig(optimizer="adamw")), torch.optim.AdamW)


def lrs_over_budget(schedule: str, epochs: int = 4, steps: int = 10) -> list[float]:
    cfg = TrainConfig(schedule=schedule, lr=1.0, epochs=epochs)
    opt = build_optimizer(nn.Linear(4, 2), cfg)
    sched = build_schedule(opt, cfg, steps_per_epoch=steps)
    lrs = []
    for _ in range(epochs * steps):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_schedules_span_the_whole_epoch_budget():
    cosine = lrs_over_budget("cosine")
    assert cosine[19] == pytest.approx(0.5, abs=0.05)  # halfway through the budget
    assert cosine[-1] == pytest.approx(0.0, abs=1e-6)
    onecycle = lrs_over_budget("onecycle")
    assert max(onecycle) == pytest.approx(1.0, rel=0.05) and onecycle[-1] < 0.01
    opt = build_optimizer(nn.Linear(4, 2), TrainConfig())
    assert build_schedule(opt, TrainConfig(schedule="none"), 10) is None


def test_exploding_and_non_finite_losses_count_as_divergence():
    assert loss_exploded(float("nan"), 10) and loss_exploded(float("inf"), 10)
    assert loss_exploded(10 * math.log(10) + 1, 10)
    assert not loss_exploded(2.3, 10)


def test_a_huge_learning_rate_diverges_and_stops_the_epoch(digits):
    _, data = digits
    cfg = TrainConfig.from_dict({**SMALL_BN, "batch_norm": False, "lr": 1e6, "momentum": 0.9})
    torch.manual_seed(0)
    model = build_model(cfg, data, CPU)
    train, _ = make_loaders(cfg, data, CPU)
    opt = build_optimizer(model, cfg)
    stats = train_epoch(model, train, opt, None, nn.CrossEntropyLoss(), CPU)
    assert stats.diverged or loss_exploded(stats.loss, 10)


class _CountingBatches:
    """Batches that count how many the loop took."""

    def __init__(self, batches):
        self.batches, self.taken = batches, 0

    def __iter__(self):
        for batch in self.batches:
            self.taken += 1
            yield batch


def test_a_deferred_divergence_check_still_stops_within_its_window(digits):
    """The GPU path reads the loss's finiteness every few steps (no host sync per step)."""
    _, data = digits
    cfg = TrainConfig.from_dict({**SMALL_BN, "batch_norm": False, "lr": 1e6, "momentum": 0.9})
    results = {}
    for every in (1, 5):
        torch.manual_seed(0)
        model = build_model(cfg, data, CPU)
        train, _ = make_loaders(cfg, data, CPU)
        batches = _CountingBatches(train)
        opt = build_optimizer(model, cfg)
        stats = train_epoch(model, batches, opt, None, nn.CrossEntropyLoss(), CPU, every)
        results[every] = (stats.diverged, batches.taken)
    (diverged_now, first_bad), (diverged_later, taken) = results[1], results[5]
    assert diverged_now and diverged_later
    assert first_bad < len(train)  # it did diverge mid-epoch...
    assert first_bad <= taken < first_bad + 5  # ...and the deferred check caught it within 5


def test_a_small_bn_network_learns_digits_in_two_epochs(digits):
    _, data = digits
    cfg = TrainConfig.from_dict({**SMALL_BN, "optimizer": "adam", "lr": 3e-3})
    torch.manual_seed(0)
    model = build_model(cfg, data, CPU)
    train, val = make_loaders(cfg, data, CPU)
    opt = build_optimizer(model, cfg)
    for _ in range(2):
        stats = train_epoch(model, train, opt, None, nn.CrossEntropyLoss(), CPU)
    assert not stats.diverged and stats.images == len(data.train.y)
    result, confusion = evaluate(model, val, CPU, num_classes=10)
    assert result.acc > 0.8  # chance is 0.1
    assert confusion.sum() == len(data.val.y)
    assert confusion.diag().sum().item() / confusion.sum().item() == pytest.approx(result.acc)
    assert (
        confusion.sum(1).tolist()
        == torch.bincount(torch.as_tensor(data.val.y), minlength=10).tolist()
    )  # rows are the true classes


def test_the_baseline_config_builds_the_labs_network_on_digits(digits):
    _, data = digits
    cfg = TrainConfig.from_dict(BASELINE)
    model = build_model(cfg, data, CPU)
    assert sum(p.numel() for p in model.parameters()) == 1_227_146


def test_the_test_split_never_reaches_a_trial(digits, tmp_path):
    """What a trial is given holds the train and validation splits and nothing else: in the
    arrays sent to it, and in what it opens from the cache on a cluster."""
    from tuner.data import open_cached
    from tuner.train.loader import channel_stats

    bundle, data = digits
    assert {f.name for f in dataclasses.fields(data)} == {
        "input_shape", "classes", "mean", "std", "train", "val", "cache"
    }  # fmt: skip
    assert data.cache is None  # the arrays themselves, in-process
    assert len(data.train.y) + len(data.val.y) + len(bundle.test.y) == 1797
    assert data.train.x is bundle.train.x and data.val.x is bundle.val.x
    assert tuple(data.mean) == tuple(channel_stats(bundle.train.x)[0])  # train only
    cached = load_dataset("digits", tmp_path)
    by_path = TrialData.from_bundle(cached, from_cache=True)
    assert by_path.train is None and by_path.val is None and by_path.cache == cached.cache
    opened = open_cached(by_path.cache)
    assert [len(split.y) for split in opened] == [len(cached.train.y), len(cached.val.y)]
