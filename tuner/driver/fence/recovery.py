"""Keeping Tune's experiment state and the Optuna study in agreement across crashes.

The Optuna study (optuna.journal) is written the moment each decision is made; Tune's
experiment state is saved every ~10 s. After a driver crash Tune's snapshot can lag: a trial
that ASHA stopped (and Optuna recorded as PRUNED) may still be RUNNING in it, and a plain
`Tuner.restore` would train it on, past its stop. The study is the durable record, so before a
restore the trials it has already finished are marked TERMINATED in Tune's state; after a
search has ended, no Optuna trial may be left RUNNING.
"""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.errors import ConfigError
from tuner.experiment import (
    ERROR_TXT,
    EXPERIMENT_STATE_GLOB,
    PARAMS_JSON,
    SEARCH_GEN_STATE_GLOB,
    SEARCH_TOML,
    SET_ASIDE_DIR,
    STATE_BACKUP_DIR,
    STATE_PATTERNS,
    TRIAL_PREFIX,
    TUNE_TRIAL_ID,
    checkpoint_dirs,
    checkpoint_number,
    has_study,
    last_result,
    ray_trial_states,
    read_params,
    study_url,
    trial_id_of,
    trial_index,
    tune_state_files,
)
from tuner.io import atomic_write_bytes, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from tuner.config.search_config import SearchConfig
    from tuner.experiment.records import ProvenanceRecord

UNFINISHED = ("RUNNING", "PENDING", "PAUSED")


def _load_study(experiment_dir: Path, study_name: str | None):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from tuner.driver.study_storage import open_storage

    return optuna.load_study(study_name=study_name, storage=open_storage(study_url(experiment_dir)))


def settle_finished_trials(experiment_dir: str | Path, study_name: str | None) -> int:
    """Mark TERMINATED, in Tune's newest experiment state, every trial Optuna has finished.

    Returns how many trials were settled. The state file is rewritten atomically.
    """
    experiment_dir = Path(experiment_dir)
    states = tune_state_files(experiment_dir)
    if not states or not has_study(experiment_dir):
        return 0
    study = _load_study(experiment_dir, study_name)
    finished = {
        t.user_attrs[TUNE_TRIAL_ID]
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and TUNE_TRIAL_ID in t.user_attrs
    }
    return _set_unfinished_status(states[-1], finished, "TERMINATED")


def _set_unfinished_status(state_file: Path, tune_ids: set[str], status: str) -> int:
    """In one of Tune's experiment_state files, give `status` to those of `tune_ids` that it
    holds as unfinished; rewritten atomically. Returns how many changed."""
    data = json.loads(state_file.read_text())
    changed = 0
    for item in data.get("trial_data", []):
        trial = json.loads(item[0]) if isinstance(item[0], str) else item[0]
        if trial.get("trial_id") in tune_ids and trial.get("status") in UNFINISHED:
            trial["status"] = status
            item[0] = json.dumps(trial) if isinstance(item[0], str) else trial
            changed += 1
    if changed:
        atomic_write_text(state_file, json.dumps(data))
    return changed


def record_errors(experiment_dir: str | Path, tune_ids: set[str]) -> int:
    """Mark ERROR, in Tune's newest experiment state, the trials Tune ended in error but saved
    as unfinished (a trial whose worker died with no retries left, Ray 2.60). Without this a
    plain `tuner resume` would quietly run them again, and the tables would call them running.
    Returns how many were changed."""
    experiment_dir = Path(experiment_dir)
    states = tune_state_files(experiment_dir)
    if not states or not tune_ids:
        return 0
    return _set_unfinished_status(states[-1], tune_ids, "ERROR")


def reconcile_study(experiment_dir: str | Path, study_name: str | None) -> int:
    """After a search has ended, mark FAIL every Optuna trial still RUNNING: it was asked for
    but never run by Tune (e.g. the time budget ran out first). Returns how many."""
    from optuna.trial import TrialState

    study = _load_study(Path(experiment_dir), study_name)
    left = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for frozen in left:
        study.tell(frozen.number, state=TrialState.FAIL)
    return len(left)


def prepare_search_state(experiment_dir: str | Path, retry: AbstractSet[str] = frozenset()) -> int:
    """Rewrite Tune's saved search generator (search_gen_state-*.json, a pickle despite its
    name) for the resume about to start. Returns how many state files were changed.

    - The Experiment its trials are created from holds the storage path and the directory's
      name. After the directory was moved or copied, Tune's restore (2.60) placed the restored
      trials right but created every new trial in the old place, and each failed at once with
      "Unable to set up cluster storage". It is pointed at the directory where it is now.
    - With --concurrency, Tune's ConcurrencyLimiter passes a trial's outcome on to the searcher
      only while the trial is in its `live_trials`; an errored trial left that set, so a trial
      retried by `--retry-errored` would finish without Optuna ever being told. `retry` (Tune
      trial ids) are put back.
    - The generator's count of trials made, and the limiter's live trials, are brought into
      line with the trials of Tune's experiment state. Both files are saved together, but a
      full disk can cut one of them short, and repair_state then puts back an older copy of
      it: restored with a count of 3 beside a state of 2 trials, Tune made one trial too few
      and the search ended "1 of 4 trials still to run"; a live trial that no state holds
      would take a concurrency slot for ever.

    These are pickles of our own search, as tuner.pkl is: only resume directories you trust.
    """
    import pickle

    experiment_dir = Path(experiment_dir).resolve()
    trials = ray_trial_states(experiment_dir)
    unfinished = {tid for tid, s in trials.items() if s["status"] in UNFINISHED}
    changed = 0
    for path in sorted(experiment_dir.glob(SEARCH_GEN_STATE_GLOB)):
        state = pickle.loads(path.read_bytes())
        if not isinstance(state, dict):
            continue
        edited = False
        if trials and isinstance(state.get("counter"), int) and state["counter"] != len(trials):
            state["counter"] = len(trials)  # every trial in the state was made by the generator
            edited = True
        storage = getattr(state.get("experiment"), "storage", None)
        if storage is not None and not getattr(storage, "custom_fs_provided", False):
            if Path(storage.storage_fs_path) / storage.experiment_dir_name != experiment_dir:
                storage.storage_fs_path = experiment_dir.parent.as_posix()
                storage.experiment_dir_name = experiment_dir.name
                edited = True
        limiter = state.get("name:ConcurrencyLimiter")
        if isinstance(limiter, dict) and not limiter.get("batch"):
            live = set(limiter.get("live_trials", ()))
            # Live: every trial the state leaves to run, none that it has finished (a trial
            # settled by settle_finished_trials would otherwise hold its slot for ever).
            wanted = (unfinished if trials else live) | set(retry)
            if wanted != live:
                # Not batched, the limiter counts each live trial once (concurrency_limiter.py)
                limiter["live_trials"] = wanted
                limiter["num_unfinished_live_trials"] = len(wanted)
                edited = True
        if edited:
            atomic_write_bytes(path, pickle.dumps(state))
            changed += 1
    return changed


def adopt_unrecorded_trials(experiment_dir: str | Path, study_name: str | None) -> list[str]:
    """Add to Tune's newest experiment state every trial directory it does not hold, from the
    files this project owns: the trial's config (params.json), its number and id (the
    directory's name), its last report (result.json), its checkpoints, and its outcome (the
    Optuna trial that carries its Tune id). Returns a line for each.

    Such a trial was started after Tune's last saved state (Tune saves it on its own clock,
    not after every checkpoint), or that save was cut short by a full disk and an older copy
    put back. Added, it is restored like any other: one that Optuna has finished stays as it
    is, and one still running continues from its newest checkpoint, under its own directory
    and id (ASHA's rungs and the study already know it by that id). A trial that cannot be
    added (its params.json cut short, no Optuna trial with its id, no other trial in the state
    to copy Tune's settings from) is left to set_aside_unrecorded_trials."""
    from optuna.trial import TrialState

    from tuner.driver.fence.internals import trial_entry_like

    experiment_dir = Path(experiment_dir)
    states = tune_state_files(experiment_dir)
    if not states or not has_study(experiment_dir):
        return []
    data = json.loads(states[-1].read_text())
    items = data.get("trial_data") or []
    known = set(ray_trial_states(experiment_dir))
    unrecorded = {d: params for d in sorted(experiment_dir.glob(f"{TRIAL_PREFIX}*_*"))
                  if d.is_dir() and trial_id_of(d) not in known and trial_index(d) >= 0
                  and (params := read_params(d)) is not None}  # fmt: skip
    if not items or not unrecorded:
        return []
    study = _load_study(experiment_dir, study_name)
    by_tune_id = {t.user_attrs[TUNE_TRIAL_ID]: t for t in study.get_trials(deepcopy=False)
                  if TUNE_TRIAL_ID in t.user_attrs}  # fmt: skip
    notes = []
    for trial_dir, config in unrecorded.items():
        ot_trial = by_tune_id.get(trial_id_of(trial_dir))
        if ot_trial is None:
            continue
        if ot_trial.state == TrialState.RUNNING:
            status = "PENDING"
        elif ot_trial.state == TrialState.FAIL and (trial_dir / ERROR_TXT).is_file():
            status = "ERROR"
        else:
            status = "TERMINATED"
        saved = checkpoint_dirs(trial_dir)
        items.append(
            trial_entry_like(
                items[0],
                trial_id=trial_id_of(trial_dir),
                dir_name=trial_dir.name,
                tag=str(trial_index(trial_dir) + 1),  # Tune's tags count from 1
                config=config,
                status=status,
                last_result=last_result(trial_dir),
                checkpoint_index=checkpoint_number(saved[0]) if saved else -1,
            )
        )
        then = ("it continues from its newest checkpoint" if status == "PENDING" and saved
                else "it starts again from epoch 1" if status == "PENDING"
                else "Optuna had its outcome; kept as it is")  # fmt: skip
        notes.append(f"{trial_dir.name} started after Tune's last saved state; {then}")
    if notes:
        data["trial_data"] = items
        atomic_write_text(states[-1], json.dumps(data))
    return notes


def continue_checkpoint_numbers(experiment_dir: str | Path) -> int:
    """In Tune's newest experiment state, number each unfinished trial's next checkpoint after
    the newest one in its directory. Returns how many trials were changed.

    Tune numbers a trial's checkpoints from the count in its saved state, which is as old as
    Tune's last save; the trial may have written newer ones since (it continues from its newest,
    tuner/driver/trainable.py). Restored as saved, the next checkpoint took a number already
    on disk, or one below the newest: the two were merged in one directory, or the newest by
    number was no longer the newest epoch, and a later resume went back to an older epoch and
    trained it again."""
    from tuner.driver.fence.internals import continue_checkpoint_numbers as renumber

    experiment_dir = Path(experiment_dir)
    states = tune_state_files(experiment_dir)
    if not states:
        return 0
    data = json.loads(states[-1].read_text())
    changed = 0
    for item in data.get("trial_data", []):
        trial = json.loads(item[0]) if isinstance(item[0], str) else item[0]
        if trial.get("status") not in (*UNFINISHED, "ERROR"):
            continue
        name = trial.get("relative_logdir") or ""
        saved = checkpoint_dirs(experiment_dir / name) if name else []
        if not saved:
            continue
        newer = renumber(item[0], checkpoint_number(saved[0]))
        if newer is not None:
            item[0] = newer
            changed += 1
    if changed:
        atomic_write_text(states[-1], json.dumps(data))
    return changed


def set_aside_unrecorded_trials(experiment_dir: str | Path) -> tuple[list[str], set[str]]:
    """Move into SET_ASIDE_DIR every trial directory that Tune's experiment state does not
    hold and adopt_unrecorded_trials could not add. Returns a line for each, and their Tune
    trial ids.

    Such a trial was started after Tune's last saved state (a driver killed between saves), or
    that save was cut short by a full disk and an older copy put back. Tune restores only the
    trials its state holds, so this one would never run again, and its directory (the same
    number as the trial that takes its place, its params.json perhaps cut short) would be read
    as a trial of its own. Its Optuna trial, running (or reopened by the caller, when it had
    finished after Tune's last save), is proposed again by the restored searcher
    (TruthfulOptunaSearch._take_orphan): the configuration runs again from epoch 1, under its
    number, and the study keeps one trial for it."""
    experiment_dir = Path(experiment_dir)
    known = ray_trial_states(experiment_dir)
    if not known:  # no state to compare with (a directory copied without it): leave all
        return [], set()
    notes, ids = [], set()
    for trial_dir in sorted(experiment_dir.glob(f"{TRIAL_PREFIX}*_*")):
        if not trial_dir.is_dir() or trial_id_of(trial_dir) in known:
            continue
        aside = experiment_dir / SET_ASIDE_DIR / trial_dir.name
        aside.parent.mkdir(exist_ok=True)
        trial_dir.rename(aside)
        ids.add(trial_id_of(trial_dir))
        kept = f"{SET_ASIDE_DIR}/{trial_dir.name}"
        notes.append(f"{trial_dir.name} started after Tune's last saved state; it runs "
                     f"again from epoch 1 (what it had is kept in {kept})")  # fmt: skip
    return notes, ids


def forget_pending_decisions(experiment_dir: str | Path, tune_ids: AbstractSet[str]) -> int:
    """Drop, in Tune's newest experiment state, the decisions its controller still held for
    `tune_ids` (errored trials about to be retried). Returns how many were dropped.

    Tune (2.60) holds a trial's next decision aside while the trial's checkpoint is being
    saved, and acts on it once the save comes back. A trial whose worker died during that save,
    with no retries left, ended in ERROR with a STOP set aside that no save would ever take
    up, and the controller saved it with its state. `--retry-errored` restored it, and the
    retried trial's first checkpoint save then carried it out: the trial trained one epoch and
    ended TERMINATED (read as "stopped", and told to Optuna as PRUNED).
    """
    from tuner.driver.fence.internals import forget_pending_decisions as forget

    states = tune_state_files(Path(experiment_dir))
    if not states or not tune_ids:
        return 0
    data = json.loads(states[-1].read_text())
    runner = data.get("runner_data")
    dropped = forget(runner, tune_ids) if isinstance(runner, dict) else 0
    if dropped:
        atomic_write_text(states[-1], json.dumps(data))
    return dropped


def errored_trials(experiment_dir: str | Path) -> set[str]:
    """Tune's ids of the trials that ended in ERROR (after their retries)."""
    return {tid for tid, s in ray_trial_states(experiment_dir).items() if s["status"] == "ERROR"}


def reopen_trials(experiment_dir: str | Path, study_name: str | None, tune_ids: set[str]) -> int:
    """Mark RUNNING again the Optuna trials of Tune trials about to be retried, so that their
    new outcome is told (internals.reopen_finished_trials: no Optuna API does). Returns how
    many."""
    if not tune_ids:
        return 0
    from tuner.driver.fence.internals import reopen_finished_trials, trial_id

    study = _load_study(Path(experiment_dir), study_name)
    ids = [
        trial_id(t)
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(TUNE_TRIAL_ID) in tune_ids and t.state.is_finished()
    ]
    if not ids:
        return 0
    reopen_finished_trials(study_url(experiment_dir), ids)
    return len(ids)


# Tune's state files (STATE_PATTERNS), which a resume reads back. Tune copies them from its
# staging dir into the experiment directory in place (not atomically), so a disk that fills
# mid-copy leaves them cut short, and the resume then died on a JSONDecodeError. The disk guard
# keeps a copy of each one that was whole when it last changed (in STATE_BACKUP_DIR), and a
# resume puts the copy back over a cut one.


def _whole(path: Path, data: bytes) -> bool:
    """Whether a state file reads to its end: JSON that parses, or a pickle whose opcodes run
    to its STOP at the file's last byte (walked with pickletools, which builds no object)."""
    if path.match(EXPERIMENT_STATE_GLOB):
        try:
            json.loads(data)
        except ValueError:
            return False
        return True
    return _whole_pickle(data)


def _whole_pickle(data: bytes) -> bool:
    # Checking only that the last byte is STOP (b".") let a searcher pickle cut at a full
    # disk's page boundary pass when that byte happened to be a "." inside the data (1 CI run
    # of ~10); its restore then failed inside Tune, which went on without a searcher and
    # waited for a trial forever. Walking the opcodes costs ~90 ns a byte (0.17 s for a
    # 1.8 MB pickle), paid only when Tune has saved anew.
    import pickletools

    try:
        for opcode, _arg, position in pickletools.genops(data):
            if opcode.name == "STOP":
                return position is not None and position + 1 == len(data)
    except Exception:  # noqa: BLE001 - any malformed or cut-short opcode stream is not whole
        return False
    return False


def back_up_state(experiment_dir: str | Path, seen: dict[str, float]) -> None:
    """Copy each of Tune's state files that changed since `seen` (name -> mtime) and is whole
    into STATE_BACKUP_DIR, atomically. A failure (the disk is full) keeps the older copy."""
    experiment_dir = Path(experiment_dir)
    for pattern in STATE_PATTERNS:
        for path in experiment_dir.glob(pattern):
            try:
                mtime = path.stat().st_mtime
                if seen.get(path.name) == mtime:
                    continue
                data = path.read_bytes()
                if _whole(path, data):
                    atomic_write_bytes(experiment_dir / STATE_BACKUP_DIR / path.name, data)
                    seen[path.name] = mtime
            except OSError:
                continue


def refuse_without_tune_state(experiment_dir: str | Path) -> None:
    """ConfigError (one line) for an experiment that holds no state of Tune's: its driver
    stopped before Tune first saved it (in its first seconds), or that first save was cut
    short. Tune would start a new experiment over the old one's files, and the run ended as
    if interrupted with trials left."""
    exp = Path(experiment_dir)
    if not tune_state_files(exp):
        raise ConfigError(
            f"{exp} holds no saved state of Ray Tune (the search stopped in its first seconds, "
            f"before Tune first saved it): there is nothing to resume; run the search again "
            f"with `tuner search --config {exp / SEARCH_TOML} --name NEW_NAME`"
        )


def repair_state(experiment_dir: str | Path) -> list[str]:
    """Put the backed-up copy back over each of Tune's state files that was cut short, and
    write a trial's params.json again from Tune's record of its config when it was cut short.
    Returns one line for each file repaired (or that could not be)."""
    experiment_dir = Path(experiment_dir)
    notes = []
    for pattern in STATE_PATTERNS:
        for path in experiment_dir.glob(pattern):
            if _whole(path, path.read_bytes()):
                continue
            backup = experiment_dir / STATE_BACKUP_DIR / path.name
            if backup.is_file():
                atomic_write_bytes(path, backup.read_bytes())
                notes.append(f"{path.name} was cut short (a full disk?); restored the copy of "
                             "its last whole version: the trials go on from there")  # fmt: skip
            else:
                path.rename(path.with_name(path.name + ".cut-short"))
                notes.append(f"{path.name} was cut short and there is no copy; set aside as "
                             f"{path.name}.cut-short")  # fmt: skip
    states = ray_trial_states(experiment_dir)
    for params in experiment_dir.glob(f"{TRIAL_PREFIX}*/{PARAMS_JSON}"):
        config = states.get(trial_id_of(params.parent), {}).get("config")
        if read_params(params.parent) is None and config is not None:
            atomic_write_json(params, config)
            notes.append(f"{params.parent.name}/{PARAMS_JSON} was cut short; written again from "
                         "Tune's record of the trial")  # fmt: skip
    return notes


def forget_missing_checkpoints(experiment_dir: str | Path) -> list[str]:
    """In Tune's newest experiment state, drop every checkpoint of an unfinished trial whose
    directory is not on disk, and point the trial at its newest one that is (or at none).

    A checkpoint Tune registered but could not copy (the disk filled mid-copy, or the user
    deleted it) made Ray 2.60's restore fail the trial with "Could not recover from checkpoint
    as it does not exist on storage anymore", on every retry. The trial now continues from the
    checkpoint before it, or starts again. Returns one line for each trial changed.

    The checkpoint bookkeeping is a cloudpickle inside Tune's JSON, as tuner.pkl is: only
    resume directories you trust.
    """
    from tuner.driver.fence.internals import (
        checkpoint_results,
        dump_tune_json,
        latest_checkpoint_result,
        load_tune_json,
        set_checkpoint_results,
    )

    experiment_dir = Path(experiment_dir)
    states = tune_state_files(experiment_dir)
    if not states:
        return []
    data = json.loads(states[-1].read_text())
    notes = []

    def on_disk(result) -> bool:
        # By the trial directory's and the checkpoint's names: a moved experiment keeps its
        # old absolute paths here until Tune's restore rewrites them.
        where = Path(result.checkpoint.path)
        return (experiment_dir / where.parent.name / where.name).is_dir()

    def number(result) -> int:
        return checkpoint_number(result.checkpoint.path)

    changed = False
    for item in data.get("trial_data", []):
        trial = json.loads(item[0]) if isinstance(item[0], str) else item[0]
        if trial.get("status") not in (*UNFINISHED, "ERROR") or len(item) < 2:
            continue
        metadata = load_tune_json(item[1]) if isinstance(item[1], str) else item[1]
        manager = metadata.get("checkpoint_manager")
        latest = latest_checkpoint_result(manager) if manager is not None else None
        if latest is None or on_disk(latest):
            continue
        kept = [r for r in checkpoint_results(manager) if on_disk(r)]
        newest = max(kept, key=number) if kept else None
        set_checkpoint_results(manager, kept, newest)
        metadata.pop("_cached_json", None)
        item[1] = dump_tune_json(metadata)
        changed = True
        name = Path(latest.checkpoint.path).parent.name
        saved = checkpoint_dirs(experiment_dir / name)
        if saved and checkpoint_number(saved[0]) > number(latest):
            # Deleted for a newer one that Tune's last save did not know of yet
            # (tuner/driver/newest_checkpoint.py): the trial continues from that one and
            # says so itself (tuner/driver/trainable.py). Nothing was lost.
            continue
        then = (f"it continues from {Path(newest.checkpoint.path).name}" if newest is not None
                else "it starts again from epoch 1")  # fmt: skip
        notes.append(f"{name}: checkpoint {Path(latest.checkpoint.path).name} never reached "
                     f"the disk; {then}")  # fmt: skip
    if changed:
        atomic_write_text(states[-1], json.dumps(data))
    return notes


def study_name(record: ProvenanceRecord, cfg: SearchConfig) -> str:
    """The Optuna study's name: the experiment's name when it was created. A moved or copied
    experiment directory may have another name now; the study inside its file keeps its own."""
    return str((record.get("config") or {}).get("name") or cfg.name)
