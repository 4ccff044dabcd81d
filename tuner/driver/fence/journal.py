"""optuna.journal fsynced where a trial is handed to Tune and where it ends, not at every line.

Optuna's JournalFileBackend fsyncs every append, and Optuna appends each operation on its own:
a trial of the default space writes about 20 lines (its creation, one a parameter, one a
report, its attributes, its outcome), so 20 fsyncs. In a search of 1,000 tiny trials the
fsyncs were 4.5 ms of the driver's ~45 ms a trial (bench/scale.py under py-spy, 2026-12-07).

Here two kinds of line are fsynced, as before: a trial's user attributes (among them its Tune
trial id, set as the driver hands the trial to Tune, which ties the trial to its directory),
and a trial's outcome (its state and values); so are the study's own lines. An fsync makes every
earlier line of the file durable with it, so a trial's creation and parameters are durable
once it is handed to Tune. The other lines (a trial's creation, a parameter, a reported value,
a system attribute) are written and handed to the operating system, not fsynced. What that
changes:

- a killed driver (SIGKILL, out of memory, Ctrl-C) loses nothing: the lines are in the
  kernel's page cache the moment append_logs returns, and every reader sees them;
- a power cut or a kernel crash can lose the reports of trials still running (never a
  finished trial's outcome, nor which Tune trial an Optuna trial is): the same state as a
  driver killed before it wrote them, which a resume handles (the trial goes on from its
  newest checkpoint and reports that epoch again); a trial created but not yet handed to Tune
  can be lost with its lines, which no one had run;
- on a network filesystem the lines reach the server when the file is closed (close-to-open
  consistency), as before.

In bench/scale.py's space that is 2 fsyncs a trial, where there were 9. Under a size budget
(--max-params, --max-macs) each proposal also carries its price as two attributes (and a
refused one its reason): 4 a proposal. A resnet_cnn search on CIFAR-10 JPEGs under --max-macs
5M made 22 proposals in 394 lines, and 90 fsyncs where there were 394.

The operation codes are Optuna's journal format (optuna.storages.journal._storage
.JournalOperation, a private enum): internals.check() fails when Optuna numbers them otherwise.
"""

from __future__ import annotations

import functools
import json
from typing import Any

# JournalOperation's lines left to the next fsync. Everything else (the study's lines, a
# trial's user attributes, its state and values, discarded trials) is fsynced.
UNSYNCED_OPS: dict[str, int] = {
    "CREATE_TRIAL": 4,
    "SET_TRIAL_PARAM": 5,
    "SET_TRIAL_INTERMEDIATE_VALUE": 7,
    "SET_TRIAL_SYSTEM_ATTR": 9,
}
_UNSYNCED = frozenset(UNSYNCED_OPS.values())


def backend(path: str, lock: Any) -> Any:
    """Optuna's JournalFileBackend on `path` under `lock` (acquire / release), with the fsync
    only where a line sets a trial's user attribute (its Tune trial id among them), finishes a
    trial or changes the study."""
    return _backend_class()(path, lock)


@functools.cache
def _backend_class() -> type:
    from optuna.storages.journal import JournalFileBackend

    class OutcomeSyncedBackend(JournalFileBackend):
        def __init__(self, path: str, lock: Any) -> None:
            super().__init__(path, lock_obj=lock)
            self.path, self.writer_lock = path, lock

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            if any(log.get("op_code") not in _UNSYNCED for log in logs):
                super().append_logs(logs)
                return
            data = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            self.writer_lock.acquire()  # as Optuna's append_logs: one writer at a time
            try:
                with open(self.path, "ab") as f:
                    f.write(data.encode("utf-8"))
            finally:
                self.writer_lock.release()

    return OutcomeSyncedBackend


def check() -> list[str]:
    """One line for each operation Optuna now numbers otherwise than UNSYNCED_OPS says."""
    from optuna.storages.journal._storage import JournalOperation

    problems = []
    for name, code in UNSYNCED_OPS.items():
        op = JournalOperation.__members__.get(name)
        if op is None:
            problems.append(f"optuna's journal has no operation {name}")
        elif int(op) != code:
            problems.append(f"optuna's journal numbers {name} {int(op)}, not {code}")
    return problems
