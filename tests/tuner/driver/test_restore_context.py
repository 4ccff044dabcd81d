"""The resume's context (tuner/driver/restore_context.py): set for one span, put back after it,
also when the span fails, so that a second search in the same process restores nothing."""

from __future__ import annotations

import pytest

from tuner.driver.restore_context import RestoreContext, current, restoring


def test_a_context_holds_for_its_span_only_and_nests():
    assert current() == RestoreContext()
    outer = RestoreContext(study_url="sqlite:////x/optuna.db", raised_samples=30,
                           raised_trial_cap=30)  # fmt: skip
    with restoring(outer):
        assert current() is outer
        inner = RestoreContext(retry_tune_ids=frozenset({"t1"}))
        with pytest.raises(RuntimeError), restoring(inner):
            assert current().retry_tune_ids == {"t1"}
            raise RuntimeError("the fit failed")
        assert current() is outer
    assert current() == RestoreContext()
