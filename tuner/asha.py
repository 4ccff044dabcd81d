"""ASHA whose rungs survive a crash.

Ray keeps ASHA's rungs in memory only: the experiment state drops the scheduler and a restore
unpickles the copy written at start-up, with empty rungs (see ray-optuna-notes.md). After a
resume every trial would then pass its next rung unopposed. This subclass writes the rungs to
`<experiment>/asha_state.json` after every decision and reads them back the first time the
restored scheduler is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler

from tuner.io import atomic_write_text

STATE_FILE = "asha_state.json"


class PersistentASHA(ASHAScheduler):
    def __init__(self, *, state_path: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state_path = str(state_path)
        self._loaded = False

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        path = Path(self._state_path)
        if not path.exists():
            return
        state = json.loads(path.read_text())
        for bracket, rungs in zip(self._brackets, state["brackets"], strict=True):
            bracket._rungs = [(milestone, dict(recorded)) for milestone, recorded in rungs]
        self._num_stopped = int(state.get("num_stopped", 0))

    def _save(self) -> None:
        state = {
            "brackets": [[[m, rec] for m, rec in b._rungs] for b in self._brackets],
            "num_stopped": self._num_stopped,
        }
        # Python's json writes and reads back -Infinity (a diverged trial's reward).
        atomic_write_text(self._state_path, json.dumps(state))

    def rungs(self) -> list[list[tuple[float, dict[str, float]]]]:
        self._ensure_loaded()
        return [list(b._rungs) for b in self._brackets]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._ensure_loaded()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._ensure_loaded()
        if trial.trial_id not in self._trial_info:  # restored trials may skip on_trial_add
            super().on_trial_add(tune_controller, trial)
        action = super().on_trial_result(tune_controller, trial, result)
        self._save()
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._ensure_loaded()
        if trial.trial_id not in self._trial_info:
            super().on_trial_add(tune_controller, trial)
        super().on_trial_complete(tune_controller, trial, result)
        self._save()
