"""Optuna is told the truth: COMPLETE only for full runs, PRUNED for early stops, FAIL else."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from tuner.searcher import outcome_state

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
