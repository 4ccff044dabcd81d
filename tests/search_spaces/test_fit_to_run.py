"""A space's start points fitted to the run: narrowed into a size budget, their batch cut to make
enough steps on small data; the lab's baseline left as the lab wrote it. Real pricing (torch's
model_cost in this process), no Ray."""

from __future__ import annotations

from search_spaces import config_of, get_space
from search_spaces.fit_to_run import MIN_STEPS, fit_start_points
from search_spaces.resnet_cnn import RECIPE
from search_spaces.seed_cnn import BASELINE, START
from tuner.stages.torch_work import prices
from tuner.train.budget import Budget
from tuner.train.cost import model_cost

CIFAR = (3, 32, 32)


def _fit(space_name, shape, budget, train_images=45_000, epochs=12):
    space = get_space(space_name)
    points, _ = space.fit_points(shape[1])
    return space, *fit_start_points(
        space, points, shape[1], train_images=train_images, epochs=epochs, budget=budget,
        prices=lambda configs: prices(configs, shape, 10),
    )  # fmt: skip


def test_the_recipe_is_narrowed_into_a_mac_budget_keeping_its_depth():
    budget = Budget(max_macs=20_000_000)
    space, points, notes = _fit("resnet_cnn", CIFAR, budget)
    (point,) = points
    cost = model_cost(config_of(space, point, 32), CIFAR, 10)
    assert budget.reason(cost) is None
    # width is given up first, and only as far as needed: 0.5 is 40M MACs, 0.25 is 10.2M
    assert (point["width_mult"], point["convs_per_block"], point["n_blocks"]) == (0.25, 2, 3)
    assert {k: v for k, v in point.items() if k != "width_mult"} == {
        k: v for k, v in RECIPE.items() if k != "width_mult"
    }
    assert notes == [
        "note: start point 1 of resnet_cnn: width_mult 2.0 -> 0.25 "
        "(narrowed to fit --max-macs 20,000,000)"
    ]


def test_a_parameter_budget_gives_up_convolutions_after_the_width():
    budget = Budget(max_params=50_000)
    space, (point,), _ = _fit("resnet_cnn", CIFAR, budget)
    assert (point["width_mult"], point["convs_per_block"], point["n_blocks"]) == (0.25, 1, 3)
    assert model_cost(config_of(space, point, 32), CIFAR, 10).params <= 50_000


def test_an_axis_given_up_on_the_way_is_widened_again_where_the_budget_allows():
    # 20,000 parameters at 28x28: three blocks do not fit even at width 0.25 and one conv a
    # block, so a block goes; with two blocks the second conv of each fits again
    budget = Budget(max_params=20_000)
    space, (point,), notes = _fit("resnet_cnn", (1, 28, 28), budget)
    assert (point["width_mult"], point["convs_per_block"], point["n_blocks"]) == (0.25, 2, 2)
    assert model_cost(config_of(space, point, 28), (1, 28, 28), 10).params <= 20_000
    assert "convs_per_block" not in notes[0] and "n_blocks 3 -> 2" in notes[0]


def test_a_point_over_the_budget_at_its_narrowest_is_left_out_with_a_note():
    _, points, notes = _fit("resnet_cnn", CIFAR, Budget(max_params=500))
    assert points is None
    assert notes == [
        "note: start point 1 of resnet_cnn is over the size budget even at its narrowest; left out"
    ]


def test_without_a_budget_on_enough_data_the_recipe_is_untouched():
    _, (point,), notes = _fit("resnet_cnn", CIFAR, Budget(), train_images=45_000, epochs=12)
    assert point == RECIPE and notes == []


def test_on_small_data_the_batch_is_cut_to_make_enough_steps():
    _, (point,), notes = _fit("resnet_cnn", CIFAR, Budget(), train_images=10_780, epochs=5)
    assert point["batch_size"] == 64  # 842 steps; 128 would make 421
    assert 10_780 * 5 // 64 >= MIN_STEPS > 10_780 * 5 // 128
    assert notes == [
        "note: start point 1 of resnet_cnn: batch_size 512 -> 64 "
        f"({MIN_STEPS}+ steps on 10,780 images x 5 epochs)"
    ]
    # too little data for any choice: the smallest the space has
    _, (point,), _ = _fit("resnet_cnn", CIFAR, Budget(), train_images=40, epochs=1)
    assert point["batch_size"] == 32


def test_the_fitted_point_is_a_point_of_the_space_on_digits():
    space, (point,), _ = _fit(
        "resnet_cnn", (1, 8, 8), Budget(max_macs=1_000_000), train_images=1_400, epochs=12
    )
    from search_spaces import fit_point

    assert fit_point(space, point, 8)[1] == []  # every value one the space allows at 8x8
    assert model_cost(config_of(space, point, 8), (1, 8, 8), 10).macs <= 1_000_000


def test_the_labs_baseline_is_left_as_the_lab_wrote_it_and_the_start_point_is_narrowed():
    budget = Budget(max_params=30_000)
    space, points, notes = _fit("seed_cnn", CIFAR, budget, train_images=1_000, epochs=1)
    baseline, start = points
    assert baseline == BASELINE  # over the budget: refused untrained, as the lab's reference
    assert budget.reason(model_cost(config_of(space, start, 32), CIFAR, 10)) is None
    # the last block's channels, then the others', then the head's width (seed_cnn's scalable)
    assert (start["channels_b0"], start["channels_b1"], start["channels_b2"]) == (16, 16, 16)
    assert start["fc_width_0"] < START["fc_width_0"]
    assert start["schedule"] == "onecycle" and start["batch_norm"] is True
    assert notes == [
        "note: start point 1 of seed_cnn: channels_b1 32 -> 16, channels_b2 64 -> 16, "
        "fc_width_0 256 -> 32, batch_size 64 -> 32 (narrowed to fit --max-params 30,000; "
        "800+ steps on 1,000 images x 1 epochs)"
    ]


def test_an_experiment_saved_before_the_small_batches_resumes_with_its_own_choices():
    """A searcher pickled before 2026-12-07 holds partial(resnet_cnn, input_size=32): resumed, it
    samples its study's own batch list; the new list in that study is refused by Optuna."""
    import functools
    import pickle

    import optuna
    import pytest

    from search_spaces.resnet_cnn import BATCH_SIZES, BATCH_SIZES_BEFORE_2026_12_07, resnet_cnn

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    old_space = pickle.loads(pickle.dumps(functools.partial(resnet_cnn, input_size=32)))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    old_space(study.ask())  # the old experiment's trial
    old_space(study.ask())  # a trial of its resume
    assert [t.distributions["batch_size"].choices for t in study.trials] == [
        BATCH_SIZES_BEFORE_2026_12_07
    ] * 2
    with pytest.raises(ValueError, match="dynamic value space"):
        get_space("resnet_cnn").for_input(32)(study.ask())
    # a new search samples the new list, and pickles it with the space
    new_space = pickle.loads(pickle.dumps(get_space("resnet_cnn").for_input(32)))
    fresh = optuna.create_study()
    new_space(fresh.ask())
    assert fresh.trials[0].distributions["batch_size"].choices == BATCH_SIZES


def test_a_baseline_over_the_budget_is_named_and_the_search_runs_without_one():
    from types import SimpleNamespace

    from search_spaces.fit_to_run import baseline_over
    from tuner.stages.preflight import space_within_budget
    from tuner.stages.torch_work import TorchWork

    space = get_space("seed_cnn")
    price = lambda configs: prices(configs, CIFAR, 10)  # noqa: E731
    assert baseline_over(space, 32, Budget(max_macs=1_000_000), price) == (
        "153,830,016 MACs > --max-macs 1,000,000"
    )
    assert baseline_over(space, 32, Budget(max_macs=200_000_000), price) is None
    assert baseline_over(space, 32, Budget(), price) is None
    assert baseline_over(get_space("resnet_cnn"), 32, Budget(max_macs=1), price) is None

    bundle = SimpleNamespace(input_shape=CIFAR, num_classes=10)
    kept, note = space_within_budget(space, bundle, Budget(max_params=3_000_000), TorchWork())
    assert kept is space and note is None
    alone, note = space_within_budget(space, bundle, Budget(max_macs=12_000_000), TorchWork())
    assert alone.baseline is None and note == (
        "note: the lab's baseline of seed_cnn is over the size budget (153,830,016 MACs > "
        "--max-macs 12,000,000); left out: this search has no baseline to compare with"
    )
    # what the search tries first is now the start point, trial 0, labelled as one
    points, _ = alone.fit_points(32)
    assert points == [START]


def test_seed_cnns_start_point_gives_up_depth_after_its_widths_under_a_tight_budget():
    # Under 1M MACs at 32x32 no 16-channel convolution fits after the first at full size:
    # the lab's three blocks of two go, the head is widened back, and a dropped block's
    # channels leave the point (and its note) with it.
    budget = Budget(max_macs=1_000_000)
    space, (_, point), notes = _fit("seed_cnn", CIFAR, budget, train_images=2_000, epochs=12)
    assert budget.reason(model_cost(config_of(space, point, 32), CIFAR, 10)) is None
    assert (point["n_blocks"], point["convs_per_block"], point["channels_b0"]) == (1, 1, 16)
    assert "channels_b1" not in point and "channels_b2" not in point
    assert point["fc_width_0"] == 128  # narrowed to 32 on the way, widened back
    assert notes == [
        "note: start point 1 of seed_cnn: convs_per_block 2 -> 1, n_blocks 3 -> 1, "
        "fc_width_0 256 -> 128, batch_size 64 -> 32 (narrowed to fit --max-macs 1,000,000; "
        "800+ steps on 2,000 images x 12 epochs)"
    ]


def test_no_baseline_leaves_the_labs_network_out_with_or_without_a_budget():
    from types import SimpleNamespace

    from tuner.config.search_config import SearchConfig
    from tuner.stages.preflight import space_for_run
    from tuner.stages.torch_work import TorchWork

    space = get_space("seed_cnn")
    bundle = SimpleNamespace(input_shape=CIFAR, num_classes=10)
    kept, note = space_for_run(SearchConfig(), space, None, TorchWork())  # no budget: no pricing
    assert kept is space and note is None
    alone, note = space_for_run(SearchConfig(no_baseline=True), space, None, TorchWork())
    assert alone.baseline is None and note == (
        "note: the lab's baseline of seed_cnn left out (--no-baseline): this search has no "
        "baseline to compare with"
    )
    assert alone.fit_points(32)[0] == [START]  # the start point is trial 0
    over, note = space_for_run(SearchConfig(max_macs=1_000_000), space, bundle, TorchWork())
    assert over.baseline is None and "153,830,016 MACs > --max-macs 1,000,000" in note
    fits, note = space_for_run(SearchConfig(max_macs=200_000_000), space, bundle, TorchWork())
    assert fits is space and note is None
    # resnet_cnn has no baseline to leave out
    resnet = get_space("resnet_cnn")
    assert space_for_run(SearchConfig(no_baseline=True), resnet, None, TorchWork()) == (
        resnet,
        None,
    )
