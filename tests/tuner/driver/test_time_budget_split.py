"""--time-budget's split between the search and the confirm stage, on scripted results (no
Ray): what confirm_reserve keeps back, when ClockGuard stops the search for it, that a
restored copy of the guard (Tune unpickles it from tuner.pkl) behaves the same, and how the
stage is cut to fit what the search left (confirm.fit_to_time)."""

from __future__ import annotations

import io
import pickle
import time
from types import SimpleNamespace

import pytest

from tuner.driver.guards import ClockGuard, confirm_reserve
from tuner.driver.interrupt import Interrupts
from tuner.stages.confirm_time import CONFIRM_MARGIN, RUN_START_S, ConfirmShape

SHAPE = ConfirmShape(top=2, seeds=3, epochs=10, baseline=False)


def result(acc: float, seconds: float) -> dict:
    return {"best_val_acc": acc, "time_this_iter_s": seconds}


def test_the_reserve_is_the_top_configurations_runs_over_the_slots():
    results = [result(0.5, 1.0), result(0.9, 2.0), result(0.7, 4.0), result(0.1, 100.0)]
    # The top 2 by accuracy (0.9 at 2 s, 0.7 at 4 s an epoch): runs of 10 epochs + the start,
    # 24 and 44 s, 3 seeds each, the slowest first on 2 slots: 44 + 44 + 24 | 44 + 24 + 24.
    fast, slow = 2.0 * 10 + RUN_START_S, 4.0 * 10 + RUN_START_S
    expected = (2 * slow + fast) * CONFIRM_MARGIN
    assert confirm_reserve(SHAPE, results, slots=2, budget=10_000) == pytest.approx(expected)
    # One slot: the runs one after the other.
    assert confirm_reserve(SHAPE, results, slots=1, budget=10_000) == pytest.approx(
        3 * (fast + slow) * CONFIRM_MARGIN
    )


def test_the_baseline_is_always_confirmed_and_is_the_first_trial():
    shape = ConfirmShape(top=1, seeds=2, epochs=5, baseline=True)
    results = [result(0.2, 30.0), result(0.9, 1.0), result(0.8, 2.0)]
    # The baseline (30 s an epoch, however poor) and the best other trial (1 s), 2 seeds each.
    runs = 2 * (30.0 * 5 + RUN_START_S) + 2 * (1.0 * 5 + RUN_START_S)
    assert confirm_reserve(shape, results, slots=1, budget=10_000) == pytest.approx(
        runs * CONFIRM_MARGIN
    )


def test_the_reserve_is_at_least_the_longest_run_and_fits_in_half_the_budget():
    results = [result(0.9, 10.0), result(0.8, 1.0)]
    slow, fast = 10.0 * 10 + RUN_START_S, 1.0 * 10 + RUN_START_S
    # 8 slots for 6 runs: the stage still takes its slowest run.
    assert confirm_reserve(SHAPE, results, slots=8, budget=10_000) == pytest.approx(
        slow * CONFIRM_MARGIN
    )
    # Not even the best with 2 seeds one after the other (229 s) fits in half of 300 s: no
    # reserve, the search runs to the end (and the stage is then left out, see below).
    assert confirm_reserve(SHAPE, results, slots=1, budget=300) is None
    # Half of 1,000 s holds the whole stage, both with 3 seeds, one after the other (389 s).
    assert confirm_reserve(SHAPE, results, slots=1, budget=1000) == pytest.approx(
        3 * (slow + fast) * CONFIRM_MARGIN
    )


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


# Two trials running at 1 s an epoch: 6 runs of 14 s on 2 slots, 42 s x 1.1 = 46 s.
TRIALS = [trial(0.9, 1.0), trial(0.8, 1.0)]


def test_the_search_stops_when_what_is_left_is_the_stages():
    stopped = run_guard(ClockGuard(leave_for_confirm=True), 70.0, 100.0, SHAPE, TRIALS)
    assert stopped.stop_kind == "confirm-reserve"
    assert "the confirm stage needs about 46 s" in stopped.stream.getvalue()
    # With more than the stage's time left, the search goes on.
    going = run_guard(ClockGuard(leave_for_confirm=True), 50.0, 100.0, SHAPE, TRIALS)
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
    # Two running now: the stage is 46 s, as above, and the search stops at 70 s of 100.
    assert run_guard(restored, 70.0, 100.0, SHAPE, TRIALS).stop_kind == "confirm-reserve"
    # A guard pickled before the split existed (no leave_for_confirm) never stops for it.
    old = ClockGuard()
    del old.leave_for_confirm
    assert run_guard(old, 90.0, 100.0, SHAPE, TRIALS).stop_kind is None


def candidate(index: int, seconds: float, baseline: bool = False):
    from tuner.driver.confirm import Candidate

    return Candidate(index, baseline, 0.5, {}, epoch_seconds=seconds)


def stage(*candidates, seeds=3, epochs=10):
    from tuner.driver.confirm import Plan

    return Plan(list(candidates), [1000 + s for s in range(seeds)], epochs)


# The top 3 at 1, 2 and 3 s an epoch and the baseline at 4 s: runs of 14, 24, 34 and 44 s
# (10 epochs and the start), 3 seeds each, slowest first on 2 slots: 174 s x 1.1 = 191 s.
FULL = stage(candidate(5, 1.0), candidate(2, 2.0), candidate(7, 3.0), candidate(0, 4.0, True))


def test_a_stage_that_fits_is_left_whole():
    from tuner.driver.confirm import fit_to_time

    plan, line = fit_to_time(FULL, seconds_left=191.5, slots=2)
    assert plan == FULL and line == ""


def indices(plan) -> list[int]:
    return [c.trial_index for c in plan.candidates]


def test_the_cut_keeps_three_seeds_and_a_runner_up_before_the_baseline():
    from tuner.driver.confirm import fit_to_time

    plan, line = fit_to_time(FULL, seconds_left=140.0, slots=2)  # top 2 + baseline: 139 s
    assert indices(plan) == [5, 2, 0] and len(plan.seeds) == 3
    assert "cut to fit the 140 s left" in line and "in full about 191 s" in line
    plan, line = fit_to_time(FULL, seconds_left=125.0, slots=2)  # top 3, no baseline: 121 s
    assert indices(plan) == [5, 2, 7] and len(plan.seeds) == 3
    assert "without the lab's baseline" in line
    plan, _ = fit_to_time(FULL, seconds_left=70.0, slots=2)  # top 2: 68 s
    assert indices(plan) == [5, 2] and len(plan.seeds) == 3
    plan, _ = fit_to_time(FULL, seconds_left=31.0, slots=2)  # the best alone: 31 s
    assert indices(plan) == [5] and len(plan.seeds) == 3
    plan, _ = fit_to_time(FULL, seconds_left=16.0, slots=2)  # ... with 2 seeds: 15 s
    assert indices(plan) == [5] and plan.seeds == [1000, 1001]


def test_no_stage_when_not_even_the_best_with_two_seeds_fits():
    from tuner.driver.confirm import fit_to_time

    plan, line = fit_to_time(FULL, seconds_left=15.0, slots=2)
    assert plan is None
    assert line.startswith("No confirm stage: it needs about 191 s")
    assert "the winner is the search's best single run" in line


def test_a_resume_continues_the_stage_it_cut_and_nothing_else():
    from tuner.driver.confirm import recorded_cut

    cut = stage(candidate(5, 1.0), candidate(2, 2.0), seeds=2)
    continued = recorded_cut(FULL, cut.key())
    assert indices(continued) == [5, 2] and continued.seeds == [1000, 1001]
    assert recorded_cut(FULL, FULL.key()) == FULL
    # Another plan's stage (another candidate, other seeds or epochs, nothing recorded) is not.
    assert recorded_cut(FULL, {**cut.key(), "trials": [5, 9]}) is None
    assert recorded_cut(FULL, {**cut.key(), "seeds": [1001, 1002]}) is None
    assert recorded_cut(FULL, {**cut.key(), "epochs": 5}) is None
    assert recorded_cut(FULL, None) is None


def test_budgeted_records_the_cut_and_a_resume_continues_it():
    from tuner.driver.confirm import budgeted

    record: dict = {"confirm_cut": "an earlier line"}
    assert budgeted(FULL, record, False, None, 2) == (FULL, "")  # no budget: the whole stage
    assert "confirm_cut" not in record
    cut, line = budgeted(FULL, record, False, 70.0, 2)
    assert indices(cut) == [5, 2] and record["confirm_cut"] == line
    # The run stops during that stage; its resume (unfinished) continues it, whatever is left.
    record.update(confirm=cut.key(), finished=None)
    assert budgeted(FULL, record, True, 500.0, 2) == (cut, "")
    # A finished run asked again (`tuner confirm DIR --time-budget`) cuts the stage anew.
    record["finished"] = "2026-12-06T00:00:00+00:00"
    assert budgeted(FULL, record, True, 500.0, 2) == (FULL, "") and "confirm_cut" not in record
    # Nothing fits: no stage, and the line says why.
    none, why = budgeted(FULL, record, False, 5.0, 2)
    assert none is None and why.startswith("No confirm stage")


# --- the test scoring after the search --------------------------------------------------------


def scored(acc: float, val_seconds: float) -> dict:
    return {"best_val_acc": acc, "time_this_iter_s": 1.0, "val_time_s": val_seconds}


def test_the_scoring_reserve_is_the_best_and_the_baselines_validation_scaled_to_the_test_split():
    from tuner.driver.guards import scoring_reserve

    results = [scored(0.1, 0.5), scored(0.9, 0.02), scored(0.8, 0.4)]
    # 10,000 test images against 220 validation images: each validation pass x 45.5.
    ratio = 10_000 / 220
    assert scoring_reserve(results, ratio, baseline=True) == pytest.approx((0.5 + 0.02) * ratio)
    assert scoring_reserve(results, ratio, baseline=False) == pytest.approx(0.02 * ratio)
    # The baseline is the best: scored once. No test split, or no result yet: nothing.
    assert scoring_reserve([scored(0.9, 0.5), scored(0.1, 0.1)], ratio, True) == pytest.approx(
        0.5 * ratio
    )
    assert scoring_reserve(results, 0.0, True) == 0.0 and scoring_reserve([{}], ratio, True) == 0


def test_without_a_confirm_stage_the_search_stops_early_enough_to_score_in_the_budget():
    # --no-confirm, a baseline whose validation pass takes 0.5 s on 220 images: scoring it and
    # the best on 10,000 test images takes about 24 s, so at 80 s of 100 the search stops.
    trials = [SimpleNamespace(status="RUNNING", last_result=scored(0.1, 0.5)),
              SimpleNamespace(status="RUNNING", last_result=scored(0.9, 0.02))]  # fmt: skip
    stream = io.StringIO()
    interrupts = Interrupts(stream, lambda in_fit: "", time_budget=100.0, confirm_shape=None,
                            test_per_val=10_000 / 220, has_baseline=True)  # fmt: skip
    with interrupts:
        interrupts.in_fit = True
        interrupts.entered = time.monotonic() - 70.0
        ClockGuard(leave_for_confirm=True).on_step_end(0, trials)
        assert interrupts.stop_kind is None  # 70 + 24 < 100
        interrupts.entered = time.monotonic() - 80.0
        ClockGuard(leave_for_confirm=True).on_step_end(0, trials)
    assert interrupts.stop_kind == "time-budget"
    assert "scoring on the test split needs about 24 s of the rest" in stream.getvalue()
    assert interrupts.scoring_s == pytest.approx(0.52 * 10_000 / 220)


def test_the_confirm_stage_is_planned_in_what_the_scoring_leaves():
    from tuner.driver.interrupt import left_for_stage

    interrupts = Interrupts(io.StringIO(), lambda in_fit: "", time_budget=100.0)
    with interrupts:
        interrupts.entered = time.monotonic() - 40.0
        interrupts.scoring_s = 15.0
        assert left_for_stage(interrupts) == pytest.approx(45.0, abs=0.5)
    assert left_for_stage(Interrupts(io.StringIO(), lambda in_fit: "")) is None


def test_the_scoring_reserve_leaves_out_a_baseline_the_stage_will_leave_out():
    # The baseline at 100 s an epoch cannot be confirmed in half of 200 s; the best trial at
    # 1 s can: the stage will run without the baseline, so it is not scored either.
    shape = ConfirmShape(top=1, seeds=3, epochs=10, baseline=True)
    slow_baseline = {**scored(0.1, 0.5), "time_this_iter_s": 100.0}
    trials = [SimpleNamespace(status="RUNNING", last_result=slow_baseline),
              SimpleNamespace(status="RUNNING", last_result=scored(0.9, 0.02))]  # fmt: skip
    ratio = 10_000 / 220
    for budget, expected in ((200.0, 0.02 * ratio), (100_000.0, 0.52 * ratio)):
        interrupts = Interrupts(
            io.StringIO(), lambda in_fit: "", time_budget=budget, confirm_shape=shape,
            test_per_val=ratio, has_baseline=True,
        )  # fmt: skip
        with interrupts:
            interrupts.in_fit = True
            interrupts.entered = time.monotonic() - 10.0
            ClockGuard(leave_for_confirm=True).on_step_end(0, trials)
        assert interrupts.scoring_s == pytest.approx(expected), budget
