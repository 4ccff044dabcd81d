"""Report an epoch to Tune while the next epoch trains.

Tune's function trainables report synchronously: `tune.report` returns only once the driver
has processed the result (scheduler, searcher, loggers, checkpoint bookkeeping) and asked the
trial for the next one. bench/overhead.py measured that wait at ~25 ms per epoch with two
trials on two cores, 9 % of a quarter-second epoch. `EpochPipeline` runs the epochs in a thread
of their own: each epoch hands its metrics (and, when due, its checkpoint state) to the
trainable's thread, which writes the checkpoint and reports, while the next epoch trains.

- The training thread runs at most one report ahead: it hands epoch k+1 over only once epoch
  k's report has returned, so results reach Tune in order and a trial is never further
  ahead than Tune has seen by more than the epoch in flight.
- At the epochs where the scheduler may stop the trial (ASHA's rungs), the training thread
  waits for Tune's verdict before it starts the next epoch (`hand_over(..., wait=True)`), as a
  synchronous trainable would. A reused worker process must be free within 2 s of the stop
  (TUNE_FUNCTION_THREAD_TIMEOUT_S), and one batch of a big network can take longer than that:
  a trial stopped mid-epoch made the next trial on its worker fail.
- When Tune stops the trial anywhere else (a time budget, the search's end, Ctrl-C),
  `tune.report` exits the trainable's thread; the training thread stops at its next batch and
  is joined, so a reused worker process carries nothing over into its next trial.
- An exception in the training thread is raised again in the trainable's thread, where Tune
  records it as the trial's error.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


class TrialStopped(Exception):
    """Raised in the training thread once Tune has stopped the trial."""


class EpochPipeline:
    """Epochs in one thread, `tune.report` in the other (see the module docstring).

    report(metrics, state): called in the trainable's thread, in epoch order; state is the
    checkpoint state the epoch handed over, or None.
    """

    def __init__(self, report: Callable[[dict[str, Any], Any], None]) -> None:
        self._report = report
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slot = threading.Semaphore(1)  # one report in flight at a time
        self._stopped = threading.Event()

    def check(self) -> None:
        """In the training thread: raise TrialStopped if Tune has stopped the trial."""
        if self._stopped.is_set():
            raise TrialStopped

    def batches(self, source: Iterable[T]) -> Iterator[T]:
        """`source`, stopping within a batch once the trial is stopped."""
        for batch in source:
            self.check()
            yield batch

    def hand_over(self, metrics: dict[str, Any], state: Any = None, wait: bool = False) -> None:
        """In the training thread: queue one epoch's report; waits while the previous one is
        still being reported. wait: also wait until this one has been reported (Tune's verdict
        on it), for epochs where the scheduler may stop the trial."""
        self._slot.acquire()
        self.check()
        self._items.put((metrics, state))
        if wait:
            self._slot.acquire()
            self.check()
            self._slot.release()

    def run(self, epochs: Callable[[], None]) -> None:
        """In the trainable's thread: run `epochs` in a training thread and report what it
        hands over until it returns (or fails, or Tune stops the trial)."""

        def train() -> None:
            try:
                epochs()
                self._items.put(_DONE)
            except TrialStopped:
                pass
            except BaseException as e:  # re-raised below, in the thread Tune watches
                self._items.put(e)

        thread = threading.Thread(target=train, name="tuner-epochs", daemon=True)
        thread.start()
        try:
            while (item := self._items.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                self._report(*item)
                self._slot.release()
        finally:
            self._stopped.set()
            self._slot.release()  # a training thread waiting to hand over sees the stop
            thread.join()
