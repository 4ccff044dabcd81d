import optuna
import pytest
import torch

from search_spaces import SPACES, SpaceError, describe_space, get_space
from tuner.config import TrainConfig
from tuner.model import ConvNet, feature_size


def sample(space, input_size, n, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    define = space.for_input(input_size)
    for _ in range(n):
        trial = study.ask()
        extra = define(trial) or {}
        study.tell(trial, 0.0)
        yield {**trial.params, **extra}


@pytest.mark.parametrize("input_size", [8, 32])
def test_every_sample_builds_and_never_pools_below_1x1(input_size):
    space = get_space("seed_cnn")
    for params in sample(space, input_size, 150):
        cfg = TrainConfig.from_dict(params)
        assert feature_size(cfg.arch, input_size) >= 1, params
        model = ConvNet(cfg.arch, 3, 10, input_size)
        assert model(torch.zeros(2, 3, input_size, input_size)).shape == (2, 10)


def test_parameters_are_conditional_where_they_should_be():
    for params in sample(get_space("seed_cnn"), 32, 150):
        n = params["n_blocks"]
        assert {k for k in params if k.startswith("channels_b")} == {
            f"channels_b{i}" for i in range(n)
        }
        assert ("dropout_rate" in params) == bool(params.get("dropout"))
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        assert {k for k in params if k.startswith("fc_width_")} == {
            f"fc_width_{j}" for j in range(params["fc_layers"])
        }


def test_space_covers_the_labs_axes_and_next_steps():
    names = {p.name for p in describe_space(get_space("seed_cnn"), 32)}
    lab_axes = {
        "kernel_size",
        "channels_b0",
        "n_blocks",
        "convs_per_block",
        "fc_layers",
        "fc_width_0",
        "dropout",
        "dropout_rate",
        "dropout_layers",
        "batch_size",
        "lr",
        "optimizer",
        "momentum",
    }
    next_steps = {"stride", "padding", "dilation"}
    assert lab_axes | next_steps <= names


def test_8x8_space_has_no_valid_padding_and_shallower_bounds():
    params = {p.name: p for p in describe_space(get_space("seed_cnn"), 8)}
    assert "padding" not in params
    assert params["n_blocks"].distribution == "int 1..3"  # 8 -> 4 -> 2 -> 1


def test_baseline_is_a_point_of_the_space():
    space = get_space("seed_cnn")
    study = optuna.create_study()
    study.enqueue_trial(space.baseline)
    trial = study.ask()
    space.for_input(32)(trial)
    assert trial.params == space.baseline


def test_unknown_space():
    with pytest.raises(SpaceError, match="seed_cnn"):
        get_space("nope")
    assert "seed_cnn" in SPACES
