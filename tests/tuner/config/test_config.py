import pytest

from search_spaces.seed_cnn import BASELINE
from tuner.config.search_config import SearchConfig
from tuner.experiment import rung_epochs
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


# SearchConfig: frozen, and its defaults never read the clock (the run names it when it starts).


def test_a_search_config_is_frozen():
    import dataclasses

    from tuner import SearchConfig

    cfg = SearchConfig(samples=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.samples = 6  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "other"  # type: ignore[misc]
    assert dataclasses.replace(cfg, samples=6).samples == 6 and cfg.samples == 5


def test_search_config_defaults_do_not_read_the_clock(monkeypatch):
    import time

    import tuner.config.search_config
    from tuner import SearchConfig

    def no_clock(*args: object) -> None:  # the old default name had a timestamp
        raise AssertionError("a SearchConfig's defaults read the clock")

    class NoDatetime:
        now = utcnow = today = staticmethod(no_clock)

    monkeypatch.setattr(tuner.config.search_config, "datetime", NoDatetime)
    for name in ("time", "time_ns", "localtime", "gmtime", "strftime"):
        monkeypatch.setattr(time, name, no_clock)
    first, second = SearchConfig(), SearchConfig()
    assert first == second and first.name is None
    assert SearchConfig(space="resnet_cnn", dataset="cifar10") == SearchConfig(
        space="resnet_cnn", dataset="cifar10"
    )


def test_a_run_names_an_unnamed_config_when_it_starts(tmp_path):
    from datetime import datetime

    from tuner import SearchConfig

    when = datetime(2026, 3, 4, 5, 6, 7)
    named = SearchConfig(space="dir/my.toml", dataset="cifar10", out=str(tmp_path)).named(when)
    assert named.name == "my-cifar10-20260304-050607"
    assert named.experiment_dir == tmp_path.resolve() / "my-cifar10-20260304-050607"
    given = SearchConfig(name="mine", out=str(tmp_path))
    assert given.named(when) is given and given.experiment_dir == tmp_path.resolve() / "mine"
    with pytest.raises(ValueError, match="no name yet"):
        SearchConfig().experiment_dir  # noqa: B018


def test_validate_checks_the_name_only_when_there_is_one(tmp_path):
    from tuner import SearchConfig

    SearchConfig(out=str(tmp_path)).validate()  # no name yet: fine
    with pytest.raises(ConfigError, match="--name"):
        SearchConfig(out=str(tmp_path), name="a/b").validate()
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        SearchConfig(out=str(tmp_path), name="taken").validate()


def test_search_names_the_config_before_it_validates_it(tmp_path):
    """An unnamed config gets <space>-<dataset>-<timestamp> first, so the check that its
    experiment does not exist yet sees that name (here: taken, for the next few seconds)."""
    from datetime import datetime, timedelta

    from tuner import SearchConfig, search

    now = datetime.now()
    for s in range(-1, 30):
        (tmp_path / f"seed_cnn-digits-{(now + timedelta(seconds=s)):%Y%m%d-%H%M%S}").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        search(SearchConfig(out=str(tmp_path)))


def test_the_budget_is_samples_trials_and_max_trials_spends_what_asha_saves():
    from tuner.config.search_config import SearchConfig

    # The default: --samples trials (real CIFAR-10 resnet_cnn lost 7 points when ASHA's
    # savings bought more; SearchConfig.trial_cap).
    asha = SearchConfig(samples=20, epochs=10)
    assert (asha.total_epochs, asha.trial_cap, asha.spends_savings) == (200, 20, False)
    exact = SearchConfig(samples=20, epochs=10, max_trials=20)
    assert (exact.trial_cap, exact.spends_savings) == (20, False)
    more = SearchConfig(samples=20, epochs=10, max_trials=50)
    assert (more.total_epochs, more.trial_cap, more.spends_savings) == (200, 50, True)
    fifo = SearchConfig(samples=20, epochs=10, scheduler="fifo")
    assert (fifo.trial_cap, fifo.spends_savings) == (20, False)
    with pytest.raises(ConfigError, match="^--max-trials applies only with --scheduler asha"):
        SearchConfig(scheduler="fifo", max_trials=5).validate()
    with pytest.raises(ConfigError, match="^--max-trials 5 is below --samples 20: the budget"):
        SearchConfig(samples=20, max_trials=5).validate()


@pytest.mark.parametrize(
    ("epochs", "given", "grace"),
    [(10, None, 3), (12, None, 3), (5, None, 3), (4, None, 3), (3, None, 2), (2, None, 1),
     (1, None, 1), (10, 1, 1), (10, 7, 7)],
)  # fmt: skip
def test_the_grace_period_defaults_to_3_and_keeps_one_rung_below_the_last_epoch(
    epochs, given, grace
):
    cfg = SearchConfig(epochs=epochs, grace_period=given)
    cfg.validate()  # the default never refuses a short --epochs
    assert cfg.grace == grace
    # Where ASHA may stop a trial: no rung below the grace period, one below the budget.
    stops = rung_epochs(cfg.grace, cfg.reduction_factor, cfg.epochs)
    assert min(stops, default=grace) == grace
    assert bool(stops) == (epochs >= 2)


def test_a_grace_period_given_longer_than_the_epochs_is_refused():
    with pytest.raises(ConfigError, match="--grace-period 4 is longer than --epochs 3"):
        SearchConfig(epochs=3, grace_period=4).validate()
