"""The experiment directory's files: their names, where they are, and reading them back.

    <out>/<name>/
        provenance.json          the search's settings, machine, dataset, timings
        search.toml              the same settings as an experiment file (tuner search --config)
        trials.csv, epochs.csv   the tables (tuner.experiment.tables)
        best.json                the best trial, scored on the test split
        report.html              analysis.write_report
        model.pt                 the winner's weights and everything needed to use them
        retrain.json             `tuner train`'s own directory only: its seeds and test interval
        confirm.csv              the confirm stage: the top configurations retrained over seeds
        confirm/                 its Tune experiment (trial dirs as below; resumed like the search)
        optuna.journal           the Optuna study (Optuna's JournalStorage file), unless the search
                                 was given --storage (study_url); refused configs carry
                                 REJECTED_ATTR. Experiments made before 2026-12-07 have
                                 optuna.db (SQLite) instead, and keep it
        asha_state.json          ASHA's rungs (tuner/driver/fence/asha.py); while a search
                                 runs, asha_state.jsonl beside it holds the decisions since
        rejected.csv             configurations over --max-params / --max-macs, never trained
        .tuner-state-backup/     whole copies of Tune's state files (tuner/driver/fence/recovery.py)
        tuner.pkl, experiment_state-*.json, search_gen_state-*.json, searcher-state-*.pkl
                                 Tune's own state, read back by a resume
        trial_0003_<id>/         one per trial (Tune writes params.json, result.json, error.txt)
            checkpoint_000001/state.pt, history.json

Standard library and pandas only: the driver writes these files, `analysis` reads them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

# --- what the search writes ----------------------------------------------------------------
TRIALS_CSV = "trials.csv"
EPOCHS_CSV = "epochs.csv"
BEST_JSON = "best.json"
PROVENANCE_JSON = "provenance.json"
REPORT_HTML = "report.html"
OPTUNA_DB = "optuna.db"  # the study of an experiment made before 2026-12-07 (SQLite)
# The study of a newer one: Optuna's JournalStorage, an append-only file of operations. The
# driver's calls cost 4.9 ms a trial on it against 28.4 ms on SQLite through SQLAlchemy
# (bench/optuna_storage.py), and the storage was half of the driver's time a trial.
OPTUNA_JOURNAL = "optuna.journal"
JOURNAL_SCHEME = "journal://"  # study_url's form for it: journal:///abs/path/optuna.journal
ASHA_STATE_JSON = "asha_state.json"
REJECTED_CSV = "rejected.csv"  # configurations over --max-params / --max-macs, never trained
REJECTED_ATTR = "rejected"  # their Optuna user attribute in the study: the reason
IMPORTED_ATTR = "imported_from"  # --warm-start: trials of another experiment, told to Optuna
TUNE_TRIAL_ID = "tune_trial_id"  # user attribute of every Optuna trial Tune runs: its trial id
STATE_BACKUP_DIR = ".tuner-state-backup"
# Trial directories a resume found that Tune's saved state never heard of (started after its
# last save, or its save cut short by a full disk): kept here, out of the tables, and run again.
SET_ASIDE_DIR = "set-aside"
SEARCH_TOML = "search.toml"  # the resolved options: `tuner search --config DIR/search.toml`
MODEL_FILE = "model.pt"  # the winner, standing alone (tuner.deploy.model_file)
RETRAIN_JSON = "retrain.json"  # `tuner train`: its configuration, seeds and test interval
CONFIRM_DIR = "confirm"  # the confirm stage's own Tune experiment: the top configs over seeds
CONFIRM_CSV = "confirm.csv"  # one row per confirm run: configuration, seed, val and test accuracy

# --- Tune's own state files, which a resume reads back -------------------------------------
TUNER_PKL = "tuner.pkl"
EXPERIMENT_STATE_GLOB = "experiment_state-*.json"
SEARCH_GEN_STATE_GLOB = "search_gen_state-*.json"  # a pickle, despite its name
SEARCHER_STATE_GLOB = "searcher-state-*.pkl"
STATE_PATTERNS = (EXPERIMENT_STATE_GLOB, SEARCH_GEN_STATE_GLOB, SEARCHER_STATE_GLOB)

# --- one trial's directory -----------------------------------------------------------------
TRIAL_PREFIX = "trial_"  # trial_0003_<id>
PARAMS_JSON = "params.json"  # the flat config (Tune writes it, in place)
RESULT_JSON = "result.json"  # one JSON line per report
ERROR_TXT = "error.txt"  # the traceback of the trial's last failure
# How the trial ended, {"status": "TERMINATED" | "ERROR"}: written by the driver the moment Tune
# ends the trial, removed when the trial starts again. A trial directory without it has not ended
# (or ended in a search older than this file, whose Tune state says how).
TRIAL_END_JSON = "trial_end.json"
CHECKPOINT_PREFIX = "checkpoint_"  # checkpoint_000000, checkpoint_000001, ...
CHECKPOINT_FILE = "state.pt"  # the training state (torch)
HISTORY_FILE = "history.json"  # every epoch's reported metrics up to the checkpoint


def trial_number(trial: Any) -> int | None:
    """A Tune trial's number in its search, 0 first, in creation order (None without one).

    Ray's experiment tag starts with a 1-based counter; trial 0 is the first suggestion (the
    lab's baseline). Its Optuna trial is found by the `tune_trial_id` user attribute, not by
    number: a --warm-start study holds the imported trials first.
    """
    head = str(getattr(trial, "experiment_tag", "")).split("_", 1)[0]
    return int(head) - 1 if head.isdigit() else None


def trial_dir_name(trial: Any) -> str:
    """Short trial directory names, `trial_0003_<id>`, numbered by `trial_number`."""
    number = trial_number(trial)
    if number is None:
        raise ValueError(f"no trial counter in Ray's experiment tag {trial.experiment_tag!r}")
    return f"{TRIAL_PREFIX}{number:04d}_{trial.trial_id}"


CONFIRM_RUN_PREFIX = "run_"  # confirm/run_0002_seed1000: trial 2 of the search, seed 1000


def confirm_run_dir_name(trial: Any) -> str:
    """A confirm run's directory: which search trial it repeats, under which seed."""
    run = trial.config["confirm"]
    return f"{CONFIRM_RUN_PREFIX}{int(run['trial_index']):04d}_seed{int(run['seed'])}"


def trial_index(trial_dir: str | Path) -> int:
    """The number in a `trial_0003_<id>` directory name, -1 for any other name."""
    parts = Path(trial_dir).name.split("_")
    if len(parts) >= 3 and parts[0] == TRIAL_PREFIX.rstrip("_") and parts[1].isdigit():
        return int(parts[1])
    return -1


def trial_id_of(trial_dir: str | Path) -> str:
    """Tune's trial id: the last part of a `trial_0003_<id>` directory name."""
    return Path(trial_dir).name.rsplit("_", 1)[-1]


def trial_dirs(experiment_dir: str | Path) -> list[Path]:
    """Every directory of the experiment that holds a params.json, sorted by name."""
    return sorted(p.parent for p in Path(experiment_dir).glob(f"*/{PARAMS_JSON}"))


def has_trial_dirs(experiment_dir: str | Path) -> bool:
    return any(Path(experiment_dir).glob(f"*/{PARAMS_JSON}"))


def dirs_of_trial(experiment_dir: str | Path, trial_id: str) -> list[Path]:
    """The directories of the trial Tune calls `trial_id` (one, unless copied by hand)."""
    return sorted(Path(experiment_dir).glob(f"{TRIAL_PREFIX}*_{trial_id}"))


def checkpoint_number(checkpoint_dir: str | Path) -> int:
    """The number in a `checkpoint_000003` directory name (a path or a name), -1 for any other
    name."""
    name = Path(checkpoint_dir).name
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if name.startswith(CHECKPOINT_PREFIX) and tail.isdigit() else -1


def checkpoint_dirs(trial_dir: str | Path) -> list[Path]:
    """The trial's checkpoint directories, newest first."""
    found = [p for p in Path(trial_dir).glob(f"{CHECKPOINT_PREFIX}*") if checkpoint_number(p) >= 0]
    return sorted(found, key=checkpoint_number, reverse=True)


def tune_state_files(experiment_dir: str | Path) -> list[Path]:
    """Tune's experiment_state-*.json files, oldest first (the last one is current)."""
    return sorted(Path(experiment_dir).glob(EXPERIMENT_STATE_GLOB))


def read_history(checkpoint_dir: str | Path) -> list[dict[str, Any]] | None:
    """The epochs' metrics a checkpoint's history.json holds, or None when it is missing or
    cannot be read (older checkpoints have only state.pt). No torch."""
    try:
        return json.loads((Path(checkpoint_dir) / HISTORY_FILE).read_text())
    except (OSError, ValueError):
        return None


def last_result(trial_dir: str | Path) -> dict[str, Any] | None:
    """The last whole report in a trial's result.json, or None (none yet, or none whole)."""
    try:
        lines = (Path(trial_dir) / RESULT_JSON).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:  # the line a crash cut off
            continue
        if isinstance(row, dict):
            return row
    return None


def epochs_trained(trial_dir: str | Path) -> int:
    """How many epochs a trial has trained, from its own files: its last report, or the
    history of its newest checkpoint when that is further on (saved, not yet reported)."""
    reported = int((last_result(trial_dir) or {}).get("epoch") or 0)
    newest = checkpoint_dirs(trial_dir)
    history = read_history(newest[0]) if newest else None
    saved = max((int(m.get("epoch") or 0) for m in history or []), default=0)
    return max(reported, saved)


def read_json(path: str | Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when it is missing, cut short or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_storage(experiment_dir: str | Path) -> str | None:
    """The database URL the experiment's search keeps its Optuna study in (--storage, as
    provenance.json records it: never with a password), or None for optuna.db inside it."""
    record = read_json(Path(experiment_dir) / PROVENANCE_JSON) or {}
    storage = (record.get("config") or {}).get("storage")
    return str(storage) if storage else None


def study_url(experiment_dir: str | Path, storage: str | None = None) -> str:
    """Where the experiment's Optuna study is: `storage` when given, else the recorded
    --storage, else the file in the directory where it is now (a moved experiment's study
    moves with it; a server's stays where it is): optuna.db's sqlite:/// URL for an experiment
    made before 2026-12-07, else optuna.journal's journal:/// (journal_path reads it back)."""
    storage = storage or recorded_storage(experiment_dir)
    if storage:
        return storage
    directory = Path(experiment_dir).absolute()
    if (directory / OPTUNA_DB).is_file():
        return f"sqlite:///{directory / OPTUNA_DB}"
    return f"{JOURNAL_SCHEME}{directory / OPTUNA_JOURNAL}"


def journal_path(url: str) -> Path | None:
    """The file of a study_url that names a JournalStorage file, else None (a database)."""
    return Path(url[len(JOURNAL_SCHEME) :]) if url.startswith(JOURNAL_SCHEME) else None


# libpq waits for a server that drops packets as long as the OS does (minutes): ask for 10 s.
CONNECT_TIMEOUT_S = 10


def study_engine_kwargs(url: str) -> dict[str, Any]:
    """What Optuna's RDBStorage passes to SQLAlchemy's create_engine for the study at `url`:
    for a PostgreSQL or MySQL server a connect timeout and a check that a pooled connection
    still works; nothing for a SQLite file. Used by every reader of a study, the driver's and
    the report's, so that a server that is down is said in seconds, not minutes."""
    if url.startswith(("sqlite", JOURNAL_SCHEME)):
        return {}
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:  # the driver refuses such a URL before it is ever recorded
        return {}
    if backend in ("postgresql", "mysql"):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    return {}


def has_study(experiment_dir: str | Path) -> bool:
    """Whether the experiment has a study to read: on its server, or its file on disk."""
    directory = Path(experiment_dir)
    return (
        recorded_storage(experiment_dir) is not None
        or (directory / OPTUNA_DB).is_file()
        or (directory / OPTUNA_JOURNAL).is_file()
    )


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV table, or an empty DataFrame when the file is missing or empty."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def read_params(trial_dir: Path) -> dict[str, Any] | None:
    """A trial's params.json, or None when it is missing or was cut short."""
    return read_json(Path(trial_dir) / PARAMS_JSON)


def trial_config(experiment_dir: str | Path, row: pd.Series) -> dict[str, Any]:
    """The exact flat config a trial ran (from its params.json; CSV columns lose int types)."""
    return json.loads((Path(experiment_dir) / row["trial_dir"] / PARAMS_JSON).read_text())


def trial_end(trial_dir: str | Path) -> str | None:
    """How the trial ended, "TERMINATED" or "ERROR", from its TRIAL_END_JSON; None while it has
    not (or the file is from no driver that writes it)."""
    record = read_json(Path(trial_dir) / TRIAL_END_JSON)
    status = (record or {}).get("status")
    return status if status in ("TERMINATED", "ERROR") else None


def ray_trial_states(experiment_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Tune's own record of each trial: status (TERMINATED, ERROR, RUNNING, ...) and failures.

    Read from the newest experiment_state-*.json (plain JSON; no unpickling). Empty if there is
    none, e.g. for a directory copied without it.
    """
    files = tune_state_files(experiment_dir)
    if not files:
        return {}
    try:
        data = json.loads(files[-1].read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    states = {}
    for item in data.get("trial_data", []):
        try:
            trial, runtime = (json.loads(x) if isinstance(x, str) else x for x in item[:2])
        except (ValueError, TypeError):
            continue
        states[str(trial.get("trial_id"))] = {
            "status": trial.get("status"),
            "num_failures": int(runtime.get("num_failures") or 0),
            "config": trial.get("config") if isinstance(trial.get("config"), dict) else None,
        }
    return states
