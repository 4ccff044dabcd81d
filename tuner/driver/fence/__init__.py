"""The fence: every reach into Ray's and Optuna's private parts, and nothing else.

internals.py lists each reach (REACHES) and checks it (check(), run by
tests/tuner/driver/test_internals.py on every install): patches, accessors, Tune's state save,
the memory monitor's message, Tune's graceful stop. asha.py and searcher.py subclass Ray's
ASHA and OptunaSearch and work on their private state; recovery.py edits Tune's saved
experiment state (a private file format) and Optuna's tables through internals. journal.py
writes optuna.journal with fewer fsyncs, by the numbers of Optuna's journal operations. tests/
test_layout.py fails when a private name of Ray or Optuna is used outside this package, so a
move to another Ray or Optuna release starts and ends here.
"""
