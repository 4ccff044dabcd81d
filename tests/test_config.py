import pytest

from search_spaces.seed_cnn import BASELINE
from tuner.train.config import ConfigError, TrainConfig
from tuner.train.model import LAB_ARCH


def test_the_baseline_point_is_the_labs_network_and_training():
    cfg = TrainConfig.from_dict({**BASELINE, "epochs": 20})
    assert cfg.arch == LAB_ARCH
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay) == ("sgd", 0.01, 0.9, 0.0)
    assert (cfg.batch_size, cfg.epochs, cfg.schedule, cfg.seed) == (64, 20, "none", 42)
    assert (cfg.hflip, cfg.grayscale_p, cfg.normalize) == (True, 0.1, "half")


def test_conditional_keys_become_the_arch():
    cfg = TrainConfig.from_dict(
        {
            "n_blocks": 2,
            "channels_b0": 16,
            "channels_b1": 32,
            "fc_layers": 1,
            "fc_width_0": 128,
            "dropout": True,
            "dropout_rate": 0.3,
            "dropout_layers": 1,
            "batch_norm": True,
        }
    )
    assert cfg.arch.channels == (16, 32)
    assert cfg.arch.fc_widths == (128,)
    assert cfg.arch.fc_dropout == (0.3,)
    assert cfg.arch.batch_norm is True


def test_dropout_off_means_no_dropout_layers():
    cfg = TrainConfig.from_dict(
        {"fc_layers": 2, "fc_width_0": 64, "fc_width_1": 32, "dropout": False}
    )
    assert cfg.arch.fc_dropout == (0.0, 0.0)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"learning_rate": 0.1}, "unknown config key"),
        ({"n_blocks": 3, "channels_b0": 8}, "channels_b1"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"lr": -1.0}, "lr"),
        (
            {"fc_layers": 1, "fc_width_0": 8, "dropout_rate": 0.2, "dropout_layers": 2},
            "dropout_layers",
        ),
        ({"pool": "median"}, "pool"),
    ],
)
def test_bad_configs_name_the_problem(bad, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(bad)
