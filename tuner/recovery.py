"""Keeping Tune's experiment state and the Optuna study in agreement across crashes.

Optuna's SQLite study is written the moment each decision is made; Tune's experiment state is
saved every ~10 s. After a driver crash Tune's snapshot can lag: a trial that ASHA stopped (and
Optuna recorded as PRUNED) may still be RUNNING in it, and a plain `Tuner.restore` would train
it on, past its stop. The study is the durable record, so before a restore the trials it has
already finished are marked TERMINATED in Tune's state; after a search has ended, no Optuna
trial may be left RUNNING.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuner.io import atomic_write_text

OPTUNA_DB = "optuna.db"
TUNE_TRIAL_ID = "tune_trial_id"  # see tuner.searcher: set on every Optuna trial Tune runs
UNFINISHED = ("RUNNING", "PENDING", "PAUSED")


def _load_study(experiment_dir: Path, study_name: str | None):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(
        study_name=study_name, storage=f"sqlite:///{experiment_dir / OPTUNA_DB}"
    )


def settle_finished_trials(experiment_dir: str | Path, study_name: str | None) -> int:
    """Mark TERMINATED, in Tune's newest experiment state, every trial Optuna has finished.

    Returns how many trials were settled. The state file is rewritten atomically.
    """
    experiment_dir = Path(experiment_dir)
    states = sorted(experiment_dir.glob("experiment_state-*.json"))
    if not states or not (experiment_dir / OPTUNA_DB).exists():
        return 0
    study = _load_study(experiment_dir, study_name)
    finished = {
        t.user_attrs[TUNE_TRIAL_ID]
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and TUNE_TRIAL_ID in t.user_attrs
    }
    data = json.loads(states[-1].read_text())
    settled = 0
    for item in data.get("trial_data", []):
        trial = json.loads(item[0]) if isinstance(item[0], str) else item[0]
        if trial.get("trial_id") in finished and trial.get("status") in UNFINISHED:
            trial["status"] = "TERMINATED"
            item[0] = json.dumps(trial) if isinstance(item[0], str) else trial
            settled += 1
    if settled:
        atomic_write_text(states[-1], json.dumps(data))
    return settled


def reconcile_study(experiment_dir: str | Path, study_name: str | None) -> int:
    """After a search has ended, mark FAIL every Optuna trial still RUNNING: it was asked for
    but never run by Tune (e.g. the time budget ran out first). Returns how many."""
    from optuna.trial import TrialState

    study = _load_study(Path(experiment_dir), study_name)
    left = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for frozen in left:
        study.tell(frozen.number, state=TrialState.FAIL)
    return len(left)


def relocate_search_state(experiment_dir: str | Path) -> int:
    """Point Tune's saved search generator at the experiment directory where it is now.

    Tune keeps the Experiment its trials are created from (with the storage path and the
    experiment's directory name) in search_gen_state-*.json, a pickle despite its name. After
    the directory was moved or copied, Tune's restore (2.60) places the restored trials right
    but creates every new trial in the old place; each failed at once with "Unable to set up
    cluster storage". Rewritten here, atomically, before Tune reads it. Returns how many state
    files were changed. These are pickles of our own search, as tuner.pkl is: only resume
    directories you trust.
    """
    import pickle

    from tuner.io import atomic_write_bytes

    experiment_dir = Path(experiment_dir).resolve()
    changed = 0
    for path in sorted(experiment_dir.glob("search_gen_state-*.json")):
        state = pickle.loads(path.read_bytes())
        experiment = state.get("experiment") if isinstance(state, dict) else None
        storage = getattr(experiment, "storage", None)
        if storage is None or getattr(storage, "custom_fs_provided", False):
            continue  # cloud storage: not a directory that moves
        where = Path(storage.storage_fs_path) / storage.experiment_dir_name
        if where == experiment_dir:
            continue
        storage.storage_fs_path = experiment_dir.parent.as_posix()
        storage.experiment_dir_name = experiment_dir.name
        atomic_write_bytes(path, pickle.dumps(state))
        changed += 1
    return changed
