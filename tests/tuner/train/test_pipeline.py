"""EpochPipeline: the next epoch trains while the previous one is reported; reports stay in
order, errors reach the reporting thread, and a stop ends the training thread within a batch."""

from __future__ import annotations

import threading

import pytest

from tuner.train.pipeline import EpochPipeline

WAIT = 10.0  # seconds; only reached if the behaviour under test is broken


def test_the_next_epoch_trains_while_the_last_one_is_reported():
    epoch_two_started = threading.Event()
    reported: list[int] = []

    def report(metrics, state):
        if metrics["epoch"] == 1:
            # A synchronous trainable would never start epoch 2 before this returns.
            assert epoch_two_started.wait(WAIT), "epoch 2 did not start during epoch 1's report"
        reported.append(metrics["epoch"])

    pipeline = EpochPipeline(report)

    def epochs():
        for epoch in (1, 2, 3):
            if epoch == 2:
                epoch_two_started.set()
            pipeline.hand_over({"epoch": epoch}, state=None)

    pipeline.run(epochs)
    assert reported == [1, 2, 3]


def test_training_runs_at_most_one_report_ahead():
    epoch_two_handed = threading.Event()
    handed_during_first_report: list[bool] = []

    def report(metrics, state):
        if metrics["epoch"] == 1:
            # Epoch 2 may train now, but must not be handed over before this report returns.
            handed_during_first_report.append(epoch_two_handed.wait(0.5))

    pipeline = EpochPipeline(report)

    def epochs():
        for epoch in (1, 2, 3):
            pipeline.hand_over({"epoch": epoch})
            if epoch == 2:
                epoch_two_handed.set()

    pipeline.run(epochs)
    assert handed_during_first_report == [False]


def test_where_the_scheduler_may_stop_the_trial_training_waits_for_the_verdict():
    epoch_two_started = threading.Event()
    started_during_report: list[bool] = []

    def report(metrics, state):
        if metrics["epoch"] == 1:
            started_during_report.append(epoch_two_started.wait(0.5))

    pipeline = EpochPipeline(report)

    def epochs():
        pipeline.hand_over({"epoch": 1}, wait=True)  # an ASHA rung
        epoch_two_started.set()
        pipeline.hand_over({"epoch": 2})

    pipeline.run(epochs)
    assert started_during_report == [False]


def test_a_stop_at_a_rung_never_starts_the_next_epoch():
    epochs_started: list[int] = []

    def report(metrics, state):
        raise SystemExit(0)  # ASHA stops the trial at this rung

    pipeline = EpochPipeline(report)

    def epochs():
        for epoch in (1, 2):
            epochs_started.append(epoch)
            pipeline.hand_over({"epoch": epoch}, wait=True)

    with pytest.raises(SystemExit):
        pipeline.run(epochs)
    assert epochs_started == [1]


def test_states_reach_the_report_with_their_epoch():
    seen = []
    pipeline = EpochPipeline(lambda metrics, state: seen.append((metrics["epoch"], state)))

    def epochs():
        pipeline.hand_over({"epoch": 1}, state=None)
        pipeline.hand_over({"epoch": 2}, state={"weights": 2})

    pipeline.run(epochs)
    assert seen == [(1, None), (2, {"weights": 2})]


def test_an_error_in_training_is_raised_where_tune_watches():
    pipeline = EpochPipeline(lambda metrics, state: None)

    def epochs():
        pipeline.hand_over({"epoch": 1})
        raise RuntimeError("trial ran out of GPU memory")

    with pytest.raises(RuntimeError, match="out of GPU memory"):
        pipeline.run(epochs)


def test_a_stop_from_tune_ends_the_training_thread_within_a_batch():
    batches_after_stop: list[int] = []
    stopped = threading.Event()
    training_threads: list[threading.Thread] = []

    def report(metrics, state):
        stopped.set()
        raise SystemExit(0)  # what tune.report does when the scheduler stops the trial

    pipeline = EpochPipeline(report)

    def endless_batches():
        n = 0
        while True:
            n += 1
            if stopped.is_set():
                batches_after_stop.append(n)
            yield n

    def epochs():
        training_threads.append(threading.current_thread())
        pipeline.hand_over({"epoch": 1})
        for _ in pipeline.batches(endless_batches()):  # epoch 2 never ends on its own
            pass

    with pytest.raises(SystemExit):
        pipeline.run(epochs)
    assert not training_threads[0].is_alive()  # joined: a reused worker starts clean
    assert len(batches_after_stop) <= 1  # at most the batch being drawn when the stop came
