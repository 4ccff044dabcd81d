"""bench/replay_searchers.py: the nearest recorded configuration, and what a replayed Optuna
study is told. No Ray, no training: an in-memory study on scripted curves."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
from bench_loader import load_bench
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

DISTS = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "blocks": IntDistribution(1, 4),
    "pool": CategoricalDistribution(["max", "avg"]),
    "width": CategoricalDistribution([16, 32]),  # conditional: only with blocks > 1
}


def define(trial: optuna.Trial) -> dict:
    config = {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
              "blocks": trial.suggest_int("blocks", 1, 4),
              "pool": trial.suggest_categorical("pool", ["max", "avg"])}  # fmt: skip
    if config["blocks"] > 1:
        config["width"] = trial.suggest_categorical("width", [16, 32])
    return config


@pytest.fixture(scope="module")
def searchers():
    return load_bench("replay_searchers")


def test_the_nearest_configuration_uses_each_parameters_scale(searchers):
    params = {
        0: {"lr": 1e-3, "blocks": 2, "pool": "max", "width": 16},
        1: {"lr": 1e-2, "blocks": 2, "pool": "max", "width": 16},  # 1 decade of 3 away
        2: {"lr": 1e-3, "blocks": 2, "pool": "avg", "width": 16},  # another pool: 1
        3: {"lr": 1e-3, "blocks": 1, "pool": "max"},  # 1/3 in blocks, width missing: 1
    }
    nearest = searchers.Nearest(DISTS, params)
    point = {"lr": 1e-3, "blocks": 2, "pool": "max", "width": 16}
    assert nearest.distance(point, 0) == 0
    assert nearest.distance(point, 1) == pytest.approx(1 / 3)  # log scale: 1 of 3 decades
    assert nearest.distance(point, 2) == 1
    assert nearest.distance(point, 3) == pytest.approx(1 + 1 / 3)
    assert nearest.pick(point, {1, 2, 3}) == 1
    # Values read back from a CSV are floats: 16.0 is the choice 16.
    assert nearest.distance({**point, "width": 16.0}, 0) == 0


def curve(index: int, losses: list[float]):
    replay = load_bench("replay")
    return replay.Curve(index, [1 - v if math.isfinite(v) else 0.0 for v in losses], losses,
                        [1.0] * len(losses))  # fmt: skip


def test_the_study_is_told_what_a_search_tells_it(searchers, tmp_path: Path):
    rows = [{"trial_index": i, "config/lr": 10 ** (-4 + 3 * i / 7), "config/blocks": 1 + i % 4,
             "config/pool": "max" if i % 2 else "avg", "config/width": 16 if i % 4 else None}
            for i in range(8)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "trials.csv", index=False)
    params = searchers.recorded_params(tmp_path, list(DISTS))
    assert "width" not in params[4] and params[5]["width"] == 16  # NaN: not set
    curves = {i: curve(i, [1.0, 0.8, 0.6]) for i in range(8)}
    curves[3] = curve(3, [math.inf])  # diverged in its first epoch
    proposer = searchers.OptunaProposer(
        curves, list(curves), searchers.Nearest(DISTS, params), define,
        optuna.samplers.RandomSampler(seed=0), max_t=3, baseline=0,
    )  # fmt: skip
    first = proposer.next()
    assert first.index == 0  # the baseline first, whatever the sampler says
    proposer.done(first, 3)  # ran the budget: COMPLETE, with its recorded parameters
    baseline = proposer.study.get_trials()[-1]
    assert baseline.state == TrialState.COMPLETE and baseline.value == pytest.approx(0.6)
    assert baseline.params["lr"] == pytest.approx(1e-4) and baseline.params["blocks"] == 1
    seen = {0}
    told, expected = [], []
    for epochs in (1, 2, 3, 3, 1, 2, 3):  # every other configuration once
        got = proposer.next()
        assert got.index not in seen
        seen.add(got.index)
        number = proposer.asked[got.index].number
        ran = min(epochs, len(got.loss))
        proposer.done(got, ran)
        frozen = proposer.study.get_trials()[number]
        told.append((frozen.state, frozen.intermediate_values))
        # Every epoch it ran is an intermediate value; the budget run is COMPLETE, one stopped
        # early PRUNED, the diverged one (3) FAIL, as a search tells them.
        diverged = got.index == 3
        state = TrialState.COMPLETE if ran == 3 else TrialState.PRUNED
        values = {e: got.loss[e - 1] for e in range(1, ran + 1)}
        expected.append((TrialState.FAIL, {}) if diverged else (state, values))
    assert told == expected
    assert (TrialState.FAIL, {}) in told and (TrialState.PRUNED, {1: 1.0}) in told
    assert seen == set(range(8)) and proposer.next() is None  # none trained twice
    assert len(proposer.study.get_trials()) == 8


def test_a_peers_jobs_are_recorded_curves_cut_at_their_fidelity(searchers, tmp_path: Path):
    """bench/replay_peers.py without the peer libraries: a scripted ask/tell. A job trains its
    configuration from scratch to its fidelity; the same configuration asked again (a promotion
    to a higher fidelity) keeps its recorded curve; what is told back is the val_loss there."""
    peers = load_bench("replay_peers")
    replay = load_bench("replay")
    rows = [{"trial_index": i, "config/lr": 10 ** (-4 + i), "config/blocks": 1,
             "config/pool": "max"} for i in range(3)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "trials.csv", index=False)
    curves = [curve(i, [1.0 - 0.1 * i - 0.05 * e for e in range(4)]) for i in range(3)]
    learning = peers.Learning.__new__(peers.Learning)
    learning.curves = {c.index: c for c in curves}
    learning.nearest = searchers.Nearest(DISTS, searchers.recorded_params(tmp_path, list(DISTS)))
    asks = iter(
        [
            ("a", {"lr": 1e-3, "blocks": 1, "pool": "max"}, 1),  # nearest: trial 1
            ("b", {"lr": 2e-4, "blocks": 1, "pool": "max"}, 2),  # nearest: trial 0
            ("c", {"lr": 1e-3, "blocks": 1, "pool": "max"}, 4),
        ]
    )  # a promotion of "a"
    told = []

    def tell(handle, loss, epochs):
        told.append((handle, loss, epochs))

    proposer = peers.PeerProposer(learning, lambda: next(asks), tell)
    run = replay.simulate([], proposer, replay.Fifo(), concurrency=1, overhead=0.0, limit=3)
    assert told == [("a", curves[1].loss[0], 1), ("b", curves[0].loss[1], 2),
                    ("c", curves[1].loss[3], 4)]  # fmt: skip
    assert run.epochs == 1 + 2 + 4  # each job from scratch, as the peers run their jobs
    assert run.best == pytest.approx(curves[1].acc[3])
