import optuna
import pytest
import torch

from search_spaces import SPACES, SpaceError, describe_space, get_space
from tuner.train.config import TrainConfig
from tuner.train.model import ConvNet, feature_size


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


# --- resnet_cnn, --check and model cost ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8)])
@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_built_in_space_passes_the_check(name, shape):
    from search_spaces.check import check_space

    report = check_space(get_space(name), shape, num_classes=10, samples=25)
    assert report.samples == 25
    assert 0 < report.params[0] <= report.params[1]
    assert 0 < report.macs[0] <= report.macs[1]


def test_spaces_check_cli_reports_each_space(capsys):
    from tuner.cli import main

    assert main(["spaces", "--check", "--samples", "5", "--input-size", "8"]) == 0
    out = capsys.readouterr().out
    for name in SPACES:
        assert f"{name}: 5 samples OK at 3x8x8" in out


def test_resnet_recipe_is_a_point_of_the_space_with_the_modern_recipe():
    space = get_space("resnet_cnn")
    assert space.baseline is None  # the lab's network is not in this space...
    (recipe,) = space.start_points  # ...but a known-good recipe is tried first
    study = optuna.create_study()
    study.enqueue_trial(recipe)
    trial = study.ask()
    constants = space.for_input(32)(trial)
    assert trial.params == recipe
    cfg = TrainConfig.from_dict({**trial.params, **constants})
    assert cfg.arch.residual and cfg.arch.batch_norm and cfg.arch.global_pool
    assert cfg.arch.channels == (128, 256, 512)
    assert (cfg.schedule, cfg.nesterov, cfg.label_smoothing) == ("onecycle", True, 0.1)
    assert (cfg.crop_padding, cfg.hflip, cfg.cutout) == (4, True, 8)
    params = {p.name: p.distribution for p in describe_space(space, 32)}
    assert params["batch_size"].endswith("1024]") and "cutout" in params
    assert space.points_to_evaluate() == [recipe]


def test_model_cost_matches_the_labs_network_counted_by_hand():
    from search_spaces.seed_cnn import BASELINE
    from tuner.train.cost import Budget, model_cost

    cost = model_cost(BASELINE, (3, 32, 32), 10)
    assert cost.params == 2_211_338
    # conv MACs = H*W*C_out*C_in*9 per layer, then the FC layers
    convs = [(32, 3, 64), (32, 64, 64), (16, 64, 128), (16, 128, 128), (8, 128, 256),
             (8, 256, 256)]  # fmt: skip
    by_hand = sum(s * s * o * i * 9 for s, i, o in convs) + 4096 * 256 + 256 * 64 + 64 * 10
    assert cost.macs == by_hand == 153_830_016
    budget = Budget(max_params=1_000_000)
    assert budget.reason(cost) == "2,211,338 params > --max-params 1,000,000"
    assert budget.violations(cost) == [pytest.approx(1.211338)]
    assert Budget(max_params=3_000_000).reason(cost) is None


@pytest.mark.parametrize("name", sorted(SPACES))
def test_model_cost_macs_agree_with_torchs_flop_counter(name):
    from torch.utils.flop_counter import FlopCounterMode

    from search_spaces.check import sample_configs
    from tuner.train.cost import model_cost

    for _, config in sample_configs(get_space(name), 32, 12, seed=1):
        cfg = TrainConfig.from_dict(config)
        with torch.device("meta"):
            model = ConvNet(cfg.arch, 3, 10, 32).eval()
            x = torch.empty(1, 3, 32, 32)
        with FlopCounterMode(display=False) as counter:
            model(x)
        assert model_cost(cfg, (3, 32, 32), 10).macs == counter.get_total_flops() // 2, config


@pytest.mark.parametrize("name", sorted(SPACES))
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_every_start_point_and_baseline_is_a_point_of_its_space_at_every_size(name, shape):
    """What Optuna is handed as points_to_evaluate must be a point of the space at the
    dataset's size: Optuna refuses a categorical value that is not a choice with a traceback
    (resnet_cnn's cutout 8 at 8x8). Each fitted point is replayed through a real study."""
    space = get_space(name)
    side = shape[1]
    points, notes = space.fit_points(side)
    originals = space.points_to_evaluate() or []
    assert len(points or []) == len(originals)
    for original, point in zip(originals, points or [], strict=True):
        study = optuna.create_study()
        study.enqueue_trial(point)
        trial = study.ask()
        constants = space.for_input(side)(trial) or {}
        assert trial.params == point  # every value was taken as given: nothing was resampled
        cfg = TrainConfig.from_dict({**trial.params, **constants})
        model = ConvNet(cfg.arch, shape[0], 10, side)
        assert model(torch.zeros(1, *shape)).shape == (1, 10)
        changed = {k for k in point if point[k] != original.get(k)}
        assert bool(changed) == any(k in " ".join(notes) for k in changed)
    if name == "resnet_cnn" and side == 8:
        assert notes == [
            "note: start point 1 of resnet_cnn is not a point of the space at 8x8; "
            "using cutout 8 -> 4"
        ]
    if side >= 28:
        assert points == originals  # written for these sizes: nothing changes


@pytest.mark.parametrize(
    "value, dist, expected",
    [
        (8, optuna.distributions.CategoricalDistribution([0, 2, 4]), 4),
        (3, optuna.distributions.CategoricalDistribution([0, 2, 4]), 2),  # ties go low
        ("valid", optuna.distributions.CategoricalDistribution(["same"]), "same"),
        (True, optuna.distributions.CategoricalDistribution([False, True]), True),
        (5, optuna.distributions.IntDistribution(1, 3), 3),
        (0.5, optuna.distributions.FloatDistribution(0.02, 0.4, log=True), 0.4),
        (7, optuna.distributions.IntDistribution(0, 12, step=4), 8),
    ],
)
def test_a_value_outside_its_distribution_becomes_the_nearest_allowed_one(value, dist, expected):
    from search_spaces import _nearest

    got = _nearest(value, dist)
    assert got == expected and type(got) is type(expected)
