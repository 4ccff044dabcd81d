"""--time-budget's split between the search and the confirm stage, on scripted results (no
Ray): what confirm_reserve keeps back, when ClockGuard stops the search for it, and that a
restored copy of the guard (Tune unpickles it from tuner.pkl) behaves the same."""

from __future__ import annotations

import io
import pickle
import time
from types import SimpleNamespace

import pytest

from tuner.driver.guards import CONFIRM_MARGIN, ClockGuard, ConfirmShape, confirm_reserve
from tuner.driver.interrupt import Interrupts

SHAPE = ConfirmShape(top=2, seeds=3, epochs=10, baseline=False)


def result(acc: float, seconds: float) -> dict:
    return {"best_val_acc": acc, "time_this_iter_s": seconds}


def test_the_reserve_is_the_top_configurations_runs_over_the_slots():
    results = [result(0.5, 1.0), result(0.9, 2.0), result(0.7, 4.0), result(0.1, 100.0)]
    # The top 2 by accuracy (0.9 at 2 s, 0.7 at 4 s an epoch) x 10 epochs x 3 seeds, 2 at once.
    expected = (2.0 + 4.0) * 10 * 3 * CONFIRM_MARGIN / 2
    assert confirm_reserve(SHAPE, results, slots=2, budget=10_000) == pytest.approx(expected)
    # One slot: the runs one after the other.
    assert confirm_reserve(SHAPE, results, slots=1, budget=10_000) == pytest.approx(2 * expected)


def test_the_baseline_is_always_confirmed_and_is_the_first_trial():
    shape = ConfirmShape(top=1, seeds=2, epochs=5, baseline=True)
    results = [result(0.2, 30.0), result(0.9, 1.0), result(0.8, 2.0)]
    # The baseline (30 s an epoch, however poor) and the best other trial (1 s).
    expected = (30.0 + 1.0) * 5 * 2 * CONFIRM_MARGIN / 1
    assert confirm_reserve(shape, results, slots=1, budget=10_000) == pytest.approx(expected)


def test_the_reserve_is_at_least_the_longest_run_and_at_most_half_the_budget():
    results = [result(0.9, 10.0), result(0.8, 1.0)]
    # 8 slots for 6 runs: the stage still takes the 10-s-an-epoch run's 100 s.
    assert confirm_reserve(SHAPE, results, slots=8, budget=10_000) == pytest.approx(
        10.0 * 10 * CONFIRM_MARGIN
    )
    assert confirm_reserve(SHAPE, results, slots=1, budget=300) == 150


def test_no_reserve_before_a_trial_has_reported():
    assert confirm_reserve(SHAPE, [{}, {"best_val_acc": 0.5}], slots=2, budget=100) is None


def trial(acc: float, seconds: float, status: str = "RUNNING") -> SimpleNamespace:
    return SimpleNamespace(status=status, last_result=result(acc, seconds))


def run_guard(guard: ClockGuard, spent: float, budget: float, shape, trials) -> Interrupts:
    """One step of Tune's loop with `spent` seconds of the run gone (scripted: the run's
    start is set back, nothing waits)."""
    stream = io.StringIO()
    interrupts = Interrupts(stream, lambda in_fit: "", time_budget=budget, confirm_shape=shape)
    with interrupts:
        interrupts.in_fit = True
        interrupts.entered = time.monotonic() - spent
        guard.on_step_end(0, trials)
    return interrupts


# Two trials running at 1 s an epoch: the stage needs 2 x 10 x 3 x 1.1 / 2 = 33 s.
TRIALS = [trial(0.9, 1.0), trial(0.8, 1.0)]


def test_the_search_stops_when_what_is_left_is_the_stages():
    stopped = run_guard(ClockGuard(leave_for_confirm=True), 70.0, 100.0, SHAPE, TRIALS)
    assert stopped.stop_kind == "confirm-reserve"
    assert "the confirm stage needs about 33 s" in stopped.stream.getvalue()
    # With more than the stage's time left, the search goes on.
    going = run_guard(ClockGuard(leave_for_confirm=True), 60.0, 100.0, SHAPE, TRIALS)
    assert going.stop_kind is None


def test_the_budget_spent_stops_with_its_own_kind():
    spent = run_guard(ClockGuard(leave_for_confirm=True), 100.0, 100.0, SHAPE, TRIALS)
    assert spent.stop_kind == "time-budget"


def test_no_stop_for_the_stage_in_its_own_fit_nor_without_one():
    # The confirm stage's own guard, and a search with --no-confirm (no shape), only stop
    # when the budget is spent.
    assert run_guard(ClockGuard(), 90.0, 100.0, SHAPE, TRIALS).stop_kind is None
    assert (
        run_guard(ClockGuard(leave_for_confirm=True), 90.0, 100.0, None, TRIALS).stop_kind is None
    )


def test_a_restored_guard_keeps_its_role_and_counts_the_run_afresh():
    guard = ClockGuard(leave_for_confirm=True)
    run_guard(guard, 1.0, 100.0, SHAPE, [*TRIALS, trial(0.5, 1.0), trial(0.4, 1.0)])
    assert guard.peak_running == 4
    restored = pickle.loads(pickle.dumps(guard))
    restored.setup()
    assert restored.leave_for_confirm and restored.peak_running == 0
    # Two running now: the stage is 33 s, as above, and the search stops at 70 s of 100.
    assert run_guard(restored, 70.0, 100.0, SHAPE, TRIALS).stop_kind == "confirm-reserve"
    # A guard pickled before the split existed (no leave_for_confirm) never stops for it.
    old = ClockGuard()
    del old.leave_for_confirm
    assert run_guard(old, 90.0, 100.0, SHAPE, TRIALS).stop_kind is None
