"""--warm-start DIR: reading an earlier experiment's study, checking it against this search, and
telling its completed trials to the new study. A real Optuna study on SQLite; no Ray."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from tuner.config.search_config import SearchConfig
from tuner.driver import warm_start
from tuner.errors import ConfigError
from tuner.experiment import IMPORTED_ATTR, REJECTED_ATTR

SPACE = """
[constants]
n_blocks = 1
fc_layers = 0
[params]
channels_b0 = { choices = [4, 8, 16] }
lr = { float = [0.001, 0.1], log = true }
optimizer = { choices = ["sgd", "adam"] }
momentum = { float = [0.5, 0.99], when = { optimizer = "sgd" } }
"""
DISTRIBUTIONS = {
    "channels_b0": CategoricalDistribution([4, 8, 16]),
    "lr": FloatDistribution(0.001, 0.1, log=True),
    "optimizer": CategoricalDistribution(["sgd", "adam"]),
    "momentum": FloatDistribution(0.5, 0.99),
}


def _source(tmp_path, params_list, objectives=None, distributions=DISTRIBUTIONS, extra=()):
    """An experiment directory with a study of completed trials, as `tuner search` leaves it."""
    src = tmp_path / "src"
    src.mkdir()
    config = {"name": "src", "objectives": objectives}
    (src / "provenance.json").write_text(json.dumps({"config": config}))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{src / 'optuna.db'}", study_name="src",
                                direction="maximize")  # fmt: skip
    for i, params in enumerate(params_list):
        dists = {k: distributions[k] for k in params}
        study.add_trial(create_trial(params=params, distributions=dists, value=0.1 * i,
                                     intermediate_values={1: 0.05 * i, 2: 0.1 * i}))  # fmt: skip
    for trial in extra:
        study.add_trial(trial)
    return src


def _planned(cfg):
    """warm_start.plan's first two arguments: the config and its space."""
    return cfg, cfg.search_space()


def _config(tmp_path, src, **kw):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    return SearchConfig(space=str(space), warm_start=str(src), name="new",
                        out=str(tmp_path / "out"), **kw)  # fmt: skip


SGD = {"channels_b0": 8, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9}
ADAM = {"channels_b0": 16, "lr": 0.003, "optimizer": "adam"}


def test_completed_trials_are_told_to_the_new_study_marked_imported(tmp_path):
    rejected = create_trial(params=SGD, distributions={k: DISTRIBUTIONS[k] for k in SGD},
                            value=0.0, user_attrs={REJECTED_ATTR: "over budget"})  # fmt: skip
    pruned = create_trial(params=ADAM, distributions={k: DISTRIBUTIONS[k] for k in ADAM},
                          state=TrialState.PRUNED, intermediate_values={1: 0.3})  # fmt: skip
    src = _source(tmp_path, [SGD, ADAM, SGD], extra=[rejected, pruned])
    cfg = _config(tmp_path, src)
    plan = warm_start.plan(cfg, cfg.search_space(), (1, 8, 8), 10)
    assert [t.number for t in plan.trials] == [0, 1, 2]  # neither refused nor stopped trials
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'new.db'}")
    assert warm_start.tell(plan, storage, "new", warm_start.directions_of(cfg)) == 3
    study = optuna.load_study(study_name="new", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert [t.user_attrs[IMPORTED_ATTR] for t in study.trials] == ["src"] * 3
    assert [t.params for t in study.trials] == [SGD, ADAM, SGD]
    assert [t.value for t in study.trials] == pytest.approx([0.0, 0.1, 0.2])
    assert study.trials[2].intermediate_values == {1: pytest.approx(0.1), 2: pytest.approx(0.2)}
    assert plan.record()["trials"] == 3 and plan.record()["best_value"] == pytest.approx(0.2)

    # TPE learns from them: past its startup trials, the same seed suggests otherwise than on
    # an empty study
    def first_lr(target):
        target.sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=3)
        return target.ask({"lr": DISTRIBUTIONS["lr"]}).params["lr"]

    assert first_lr(study) != first_lr(optuna.create_study(direction="maximize"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra_param": True}, r"parameter 'width' of its trials is not in this search's space"),
        (
            {"lr_range": True},
            r"parameter 'lr' has another range: log-float 0\.0001\.\.0\.1 "
            r"there, log-float 0\.001\.\.0\.1 here",
        ),
        ({"missing": True}, r"parameter 'channels_b0' of this search's space is missing"),
        (
            {"objectives": "val_acc:max,params:min"},
            r"scored on val_acc:max,params:min, this "
            r"search on val_acc:max",
        ),
    ],
)
def test_a_mismatch_is_one_line_naming_the_parameter(tmp_path, change, message):
    dists = dict(DISTRIBUTIONS)
    trials = [dict(SGD), dict(ADAM)]
    if change.get("extra_param"):
        dists["width"] = IntDistribution(1, 4)
        trials[0]["width"] = 2
    if change.get("lr_range"):
        dists["lr"] = FloatDistribution(0.0001, 0.1, log=True)
    if change.get("missing"):
        for t in trials:
            del t["channels_b0"]
    src = _source(tmp_path, trials, objectives=change.get("objectives"), distributions=dists)
    with pytest.raises(ConfigError, match=message) as info:
        warm_start.plan(*_planned(_config(tmp_path, src)), (1, 8, 8), 10)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_sources_that_are_not_experiments_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="no such experiment directory"):
        warm_start.check_source(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not an experiment directory"):
        warm_start.plan(*_planned(_config(tmp_path, tmp_path / "empty")), (1, 8, 8), 10)
    src = _source(tmp_path, [])
    with pytest.raises(ConfigError, match="its study has no completed trials"):
        warm_start.plan(*_planned(_config(tmp_path, src)), (1, 8, 8), 10)
    (src / "optuna.db").write_bytes(b"not a database")
    with pytest.raises(ConfigError, match="cannot read its study"):
        warm_start.plan(*_planned(_config(tmp_path, src)), (1, 8, 8), 10)


def test_trials_over_this_searchs_budget_are_left_out(tmp_path):
    big = {**ADAM, "channels_b0": 16}
    small = {**SGD, "channels_b0": 4}
    src = _source(tmp_path, [big, small, big])
    # one block on 1x8x8: 5,050 params at 16 channels, 838 at 4 (tuner.train.cost)
    plan = warm_start.plan(*_planned(_config(tmp_path, src, max_params=1000)), (1, 8, 8), 10)
    assert [t.params["channels_b0"] for t in plan.trials] == [4] and plan.over_budget == 2
    with pytest.raises(ConfigError, match="none of its 3 completed trials fits"):
        warm_start.plan(*_planned(_config(tmp_path, src, max_params=100)), (1, 8, 8), 10)


def test_the_source_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert SearchConfig(warm_start="old").warm_start == str(tmp_path / "old")


def test_old_trials_whose_range_is_inside_this_spaces_are_accepted():
    """A bound that depends on another choice (dropout_layers up to fc_layers) spans less over
    a few old trials than over this space's samples: inside is fine, wider or another kind not."""
    from optuna.distributions import FloatDistribution, IntDistribution

    from tuner.driver.warm_start import _within

    assert _within(IntDistribution(1, 1), IntDistribution(1, 2))
    assert not _within(IntDistribution(0, 2), IntDistribution(1, 2))
    assert not _within(
        FloatDistribution(1e-4, 0.1, log=True), FloatDistribution(1e-3, 0.1, log=True)
    )
    assert not _within(FloatDistribution(0.01, 0.1), FloatDistribution(1e-3, 0.1, log=True))


def test_trials_from_a_space_with_fewer_choices_are_told_with_this_spaces_choices(tmp_path):
    # resnet_cnn's batches gained 32 and 64 on 2026-12-07: its older experiments must still
    # warm-start a new search, and Optuna refuses a study whose trials disagree on a choice list
    fewer = {**DISTRIBUTIONS, "channels_b0": CategoricalDistribution([8, 16])}
    src = _source(tmp_path, [SGD, ADAM], distributions=fewer)
    cfg = _config(tmp_path, src)
    plan = warm_start.plan(cfg, cfg.search_space(), (1, 8, 8), 10)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'new.db'}")
    assert warm_start.tell(plan, storage, "new", warm_start.directions_of(cfg)) == 2
    study = optuna.load_study(study_name="new", storage=storage)
    assert [t.distributions["channels_b0"] for t in study.trials] == [
        DISTRIBUTIONS["channels_b0"]
    ] * 2
    # and the new search's own trials, sampled from [4, 8, 16], go into the same study
    trial = study.ask({"channels_b0": DISTRIBUTIONS["channels_b0"]})
    assert trial.params["channels_b0"] in (4, 8, 16)


def test_a_choice_the_space_no_longer_has_is_one_line(tmp_path):
    more = {**DISTRIBUTIONS, "channels_b0": CategoricalDistribution([4, 8, 16, 32])}
    src = _source(tmp_path, [{**SGD, "channels_b0": 32}], distributions=more)
    cfg = _config(tmp_path, src)
    with pytest.raises(ConfigError, match=r"parameter 'channels_b0' has another range: one of "
                       r"\[4, 8, 16, 32\] there, one of \[4, 8, 16\] here"):  # fmt: skip
        warm_start.plan(cfg, cfg.search_space(), (1, 8, 8), 10)
