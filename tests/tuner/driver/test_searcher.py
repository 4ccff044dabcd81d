"""Optuna is told the truth: COMPLETE only for full runs, PRUNED for early stops, FAIL else."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from tuner.driver.searcher import outcome_state

M = "best_val_acc"


@pytest.mark.parametrize(
    "result, error, expected",
    [
        ({"epoch": 10, M: 0.9}, False, TrialState.COMPLETE),
        ({"epoch": 3, M: 0.7}, False, TrialState.PRUNED),  # ASHA stopped it at epoch 3
        ({"epoch": 1, M: 0.1, "diverged": True}, False, TrialState.FAIL),
        ({"epoch": 10, M: float("nan")}, False, TrialState.FAIL),
        ({"epoch": 4, M: 0.5}, True, TrialState.FAIL),  # errored after its retries
        (None, True, TrialState.FAIL),
        ({"epoch": 2}, False, TrialState.FAIL),  # no metric at all
    ],
)
def test_outcome_rules(result, error, expected):
    assert outcome_state(result, error, M, epoch_budget=10) == expected


class _Killed(Exception):
    pass


class _DiesAfter:
    """A trial whose driver is killed after `n` parameters were stored (one commit each)."""

    def __init__(self, trial, n: int) -> None:
        self._trial, self._left = trial, n

    def __getattr__(self, name):
        attr = getattr(self._trial, name)
        if not name.startswith("suggest_"):
            return attr

        def suggest(*args, **kwargs):
            if self._left == 0:
                raise _Killed
            self._left -= 1
            return attr(*args, **kwargs)

        return suggest


@pytest.mark.parametrize("kind", ["tpe", "random"])
@pytest.mark.parametrize("space", ["seed_cnn", "resnet_cnn"])
@pytest.mark.parametrize("stored", [0, 1, 3])
def test_a_resumed_half_stored_trial_draws_what_an_uninterrupted_run_draws(kind, space, stored):
    """The resume case behind a flaky CI run: a kill lands while a new trial's parameters are
    being stored; the resumed driver reuses that trial (TruthfulOptunaSearch._take_orphan)
    with a fresh sampler. The parameters it draws then are the uninterrupted run's."""
    import optuna

    from search_spaces import get_space
    from tuner.driver.searcher import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    define = get_space(space).for_input(8)

    reference_study = optuna.create_study(sampler=make_sampler(kind, seed=7))
    reference = []
    for _ in range(4):
        trial = reference_study.ask()
        define(trial)
        reference.append(dict(trial.params))
        reference_study.tell(trial, 0.5)

    study = optuna.create_study(sampler=make_sampler(kind, seed=7))
    for _ in range(3):
        trial = study.ask()
        define(trial)
        study.tell(trial, 0.5)
    with pytest.raises(_Killed):
        define(_DiesAfter(study.ask(), stored))
    study.sampler = make_sampler(kind, seed=7)  # the resumed driver's, never asked before
    orphan = optuna.trial.Trial(study, study.trials[3]._trial_id)
    define(orphan)
    assert [t.params for t in study.trials[:3]] == reference[:3]
    assert orphan.params == reference[3]
