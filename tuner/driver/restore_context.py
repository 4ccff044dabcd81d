"""What a resume tells the objects that Tune rebuilds from its pickles, in one explicit object.

Tune restores the searcher (tuner.pkl, searcher-state-*.pkl), the search generator and ASHA by
unpickling them: no constructor runs and no argument reaches them. What they need to know about
the resume (where the experiment's study is now, which trials are retried, which trials Tune's
restored state holds, a raised --samples) is set here by `restoring()` for the span of one
restore and fit, and read with `current()`. One typed object with one setter, instead of six
module globals in three modules that no signature showed: a reader finds every field and
every writer in this file. Set only for that span, and put back after it: a process may run
several searches (tests, notebooks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestoreContext:
    """The resume in progress; the default (no resume) changes nothing that was pickled.

    study_url: the experiment's study where it is now: its file in the directory (wherever the
        directory was moved) or its --storage server (None: the URL it was pickled with).
    retry_tune_ids: Tune trials that `tuner resume --retry-errored` runs again; their Optuna
        trials were reopened (internals.reopen_finished_trials), so the restored searcher
        listens to them again.
    known_tune_ids: the Tune trials in the experiment state being restored (None: no state,
        nothing to match); any other trial the searcher still waits for is let go.
    total_epochs: the resumed search's epoch budget under --max-trials (None: as pickled).
    raised_samples, raised_trial_cap: `tuner resume --samples N` raised the search: the trial
        count the displays and ASHA's judged rungs use, and the count the search generator
        runs to (None: as the search had them).
    epochs_trained: Tune trial id -> the epochs it has trained, from its own files
        (tuner.experiment.epochs_trained): the searcher's pickled count is as old as Tune's
        last save, and an epoch budget (--max-trials) counts on from the files.
    """

    study_url: str | None = None
    retry_tune_ids: frozenset[str] = frozenset()
    known_tune_ids: frozenset[str] | None = None
    total_epochs: int | None = None
    raised_samples: int | None = None
    raised_trial_cap: int | None = None
    epochs_trained: Mapping[str, int] = field(default_factory=dict)


_CURRENT = RestoreContext()


def current() -> RestoreContext:
    """The resume in progress (RestoreContext() outside one)."""
    return _CURRENT


@contextlib.contextmanager
def restoring(context: RestoreContext) -> Iterator[RestoreContext]:
    """Within: `current()` is `context`; the one before is put back on the way out."""
    global _CURRENT
    before, _CURRENT = _CURRENT, context
    try:
        yield context
    finally:
        _CURRENT = before
