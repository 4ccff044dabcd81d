"""Every reach into Ray's and Optuna's private parts, in one place, each with a check.

The search needs a few things neither library offers publicly: ASHA's rungs (to keep them
across a resume and to judge rungs by the paper's rule), OptunaSearch's trial map (to tell
Optuna the truth about stopped trials), Optuna's storage caches and sampler RNGs (seeded
draws that a resume replays), Tune's checkpoint bookkeeping (a checkpoint that never reached
the disk) and two of Ray's switches (loopback only, prestarted workers). Where the code
subclasses a library class (PersistentASHA, PeerJudgedBracket, TruthfulOptunaSearch) it uses
the inherited attributes directly; everything else goes through the accessors below.

`check()` returns one line for each internal that is not as this code expects; the test
tests/tuner/driver/test_internals.py fails with those lines, and pyproject.toml bounds ray[tune]
and optuna to the versions on which it passes (Ray 2.60, Optuna 5.0).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tuner.experiment import ASHA_STATE_JSON, BEST_JSON, PROVENANCE_JSON, RETRAIN_JSON, TUNER_PKL

# (library, internal, used by: a file under tuner/driver/): what check() verifies, listed for
# the reader.
REACHES: tuple[tuple[str, str, str], ...] = (
    ("ray", "tune.schedulers.async_hyperband._Bracket and its _rungs", "fence/asha.py"),
    ("ray", "ASHAScheduler._brackets, _trial_info, _num_stopped, _max_t", "fence/asha.py"),
    (
        "ray",
        "OptunaSearch._ot_trials, _ot_study, _space, _completed_trials",
        "fence/searcher.py",
    ),
    ("ray", "_private.ray_constants.ENABLE_RAY_CLUSTER", "ray_runtime.py"),
    ("ray", "tune.execution.class_cache.DEFAULT_ENV_VARS", "ray_runtime.py"),
    ("ray", "TUNE_DISABLE_SIGINT_HANDLER read by Tune's fit", "interrupt.py"),
    ("ray", "Tune's fit stops gracefully on SIGUSR1 (its handler, called)", "interrupt.py"),
    ("ray", "ASHAScheduler._reduction_factor, _stop_last_trials, _time_attr", "fence/asha.py"),
    ("ray", "exceptions.OutOfMemoryError, and its memory monitor's message text", "fit.py"),
    (
        "ray",
        "train._internal.checkpoint_manager._CheckpointManager fields",
        "fence/recovery.py",
    ),
    ("ray", "tune.utils.serialization._loads_with_cloudpickle", "fence/recovery.py"),
    (
        "ray",
        "ConcurrencyLimiter state: live_trials, num_unfinished_live_trials",
        "fence/recovery.py",
    ),
    (
        "ray",
        "SearchGenerator.set_state and its total_samples / finished",
        "fence/internals.py",
    ),
    (
        "ray",
        "tune.trainable.metadata._TrainingRunMetadata.update_metric",
        "fence/internals.py",
    ),
    (
        "ray",
        "tune.execution.tune_controller.TuneController.save_to_dir",
        "fence/internals.py",
    ),
    (
        "ray",
        "LoggerCallback._restore_from_remote(file_name, trial), called as Tune's JSON or CSV "
        "logger starts a trial; JsonLoggerCallback._trial_files and _trial_configs",
        "fence/loggers.py",
    ),
    (
        "ray",
        "Tune's restore copies the experiment's top-level *.json and *.pkl into its staging "
        "dir, and its saves copy them back (PROJECT_FILES, Tune's own pickle among them)",
        "fence/internals.py",
    ),
    (
        "ray",
        "TuneController._cached_trial_decisions, _queued_trial_decisions in runner_data",
        "fence/recovery.py",
    ),
    (
        "ray",
        "experiment_state's trial entry (Trial.__getstate__ fields, StorageContext's "
        "trial_dir_name and current_checkpoint_index, run metadata) copied for a trial",
        "fence/recovery.py",
    ),
    (
        "optuna",
        "Study._storage, _CachedStorage(backend) and its caches",
        "fence/searcher.py",
    ),
    (
        "optuna",
        "FrozenTrial._trial_id, Trial._trial_id",
        "fence/searcher.py, fence/recovery.py",
    ),
    (
        "optuna",
        "samplers._lazy_random_state.LazyRandomState, sampler _rng",
        "fence/searcher.py",
    ),
    (
        "optuna",
        "RDB schema: trials.state, trial_values (reopening a trial)",
        "fence/recovery.py",
    ),
    (
        "optuna",
        "JournalStorage's file: one JSON operation a line, op_code 6 (SET_TRIAL_STATE_VALUES) "
        "with trial_id and state (reopening a trial)",
        "fence/recovery.py",
    ),
    (
        "optuna",
        "JournalOperation's numbers for a trial's creation, param, intermediate value and "
        "system attribute (the lines written without an fsync)",
        "fence/journal.py",
    ),
)


def killed_by_memory_monitor(error: BaseException | None) -> bool:
    """A Ray OutOfMemoryError (its memory monitor killed a worker) anywhere in the chain.
    Tune 2.60 wraps it in its actor manager's "Caught unexpected exception", so the class is
    matched by name and, where only the text survives, by the monitor's message."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__name__ == "OutOfMemoryError" or (
            "killed due to the node running low on memory" in str(error)
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


def tune_graceful_stop(frame: Any = None) -> None:
    """Ask a running Tune fit to stop as after its own first Ctrl-C: it stops starting trials,
    lets the running ones end their current step and saves its state. Tune's fit installs
    that stop as its SIGUSR1 handler (ray/tune/tune.py); there is no public call for it."""
    import signal

    tune_stop = signal.getsignal(signal.SIGUSR1)
    if callable(tune_stop):
        tune_stop(signal.SIGUSR1, frame)


def install_sample_raise() -> None:
    """Let a restored search generator run to the raised trial cap of `tuner resume --samples`
    (RestoreContext.raised_trial_cap). Ray saves the trial count
    with the generator's state and restores it as it was ("resume can't generate new trials");
    this wraps SearchGenerator.set_state, once, to put the raised count in."""
    from ray.tune.search.search_generator import SearchGenerator

    if getattr(SearchGenerator.set_state, "_cnn_tuner_raise", False):
        return
    original = SearchGenerator.set_state

    def set_state(self: Any, state: dict) -> None:
        from tuner.driver.restore_context import current

        original(self, state)
        cap = current().raised_trial_cap
        if cap is not None:
            # Finished either way: all its trials made, or the searcher's epoch budget spent;
            # a raised --samples raises both (is_finished() still ends it at the trial cap).
            self._total_samples = max(self._total_samples, cap)
            self._finished = False

    set_state._cnn_tuner_raise = True  # type: ignore[attr-defined]
    SearchGenerator.set_state = set_state  # type: ignore[method-assign]


# The metrics whose running summaries (min, max, mean, last-5 and last-10 means) Tune keeps in
# each trial's saved state, while one of our fits runs (lean_tune_state); None: all of them,
# as Tune does. Tune summarises every number a trial reports (25 of ours) and writes all trials'
# summaries in every save of its experiment state, which Ray forces after each trial checkpoint:
# at 300 tiny trials that was 431 saves growing to 7.7 MB (25 kB a trial, 13 kB of it these
# summaries), 15 s of a 91 s search (bench/scale.py). Nothing in this project reads them: the
# tables come from result.json. The ones kept are those a user could ask of Tune's ResultGrid.
LEAN_METRICS: frozenset[str] | None = None


def install_lean_run_metadata() -> None:
    """Let Tune skip the summaries of metrics outside LEAN_METRICS (once per process)."""
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    if getattr(_TrainingRunMetadata.update_metric, "_cnn_tuner_lean", False):
        return
    original = _TrainingRunMetadata.update_metric

    def update_metric(self: Any, metric: str, value: Any, step: Any = 1) -> None:
        if LEAN_METRICS is not None and metric not in LEAN_METRICS:
            return
        original(self, metric, value, step)

    update_metric._cnn_tuner_lean = True  # type: ignore[attr-defined]
    _TrainingRunMetadata.update_metric = update_metric  # type: ignore[method-assign]


@contextlib.contextmanager
def lean_tune_state(metrics: Iterable[str]) -> Iterator[None]:
    """Within: Tune summarises only `metrics` (and training_iteration), and its state saves
    re-encode only the trials that changed (install_fast_state_save: the same bytes; it stays
    for the process). Set only around one fit: a process may run other Tune experiments."""
    global LEAN_METRICS
    install_lean_run_metadata()
    install_fast_state_save()
    before = LEAN_METRICS
    LEAN_METRICS = frozenset(metrics) | {"training_iteration"}
    try:
        yield
    finally:
        LEAN_METRICS = before


# Tune's save of its experiment state re-encodes every trial's (cached) JSON state at every
# save, and Ray forces a save after each trial checkpoint: at 1,000 tiny trials, 1,385 saves of
# up to 15 MB took 94 s of a 348 s search (bench/scale.py), most of it escaping the same strings
# again. The save below writes the same bytes, re-encoding only the trials that changed.
_ENCODED: Any = None  # weakref.WeakKeyDictionary: controller -> {trial id: (state, its JSON)}


# The project's own files at the top of the experiment directory, written in place there (not
# through Tune). Tune's restore copies every top-level *.json of the experiment into its staging
# dir, and each of its saves copies the staging dir back, in place: the copies from when the
# resume began went back over the live files (asha_state.json's rungs, written after every
# decision, reverted to the resume's first ones), and a kill during that copy left
# provenance.json empty, which the next `tuner resume` could not read. The save below drops them
# from the staging dir first. Tune's own tuner.pkl too (the restore copies the *.pkl as well):
# written once, when the search starts, it was copied back over itself at every save of a
# resumed run, and a kill during that copy left it empty (1 run of 14 of the SIGKILL loop,
# tests/e2e/test_resume.py): no later `tuner resume` could read the experiment.
PROJECT_FILES = (PROVENANCE_JSON, BEST_JSON, ASHA_STATE_JSON, RETRAIN_JSON, TUNER_PKL)


def install_fast_state_save() -> None:
    """Replace TuneController.save_to_dir (once per process) with one that writes the same
    file from each trial's encoded state, kept until the trial's state changes."""
    import weakref

    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.utils.serialization import TuneFunctionEncoder

    global _ENCODED
    if _ENCODED is not None:  # installed (a flag on the module: a wrapper may sit on top)
        return
    _ENCODED = weakref.WeakKeyDictionary()
    original = TuneController.save_to_dir

    def save_to_dir(self: Any) -> None:
        import os
        from pathlib import Path

        cache = _ENCODED.setdefault(self, {})
        trials = self._get_trial_checkpoints()  # trial id -> Tune's cached (state, metadata)
        parts = []
        for trial_id, pair in trials.items():
            hit = cache.get(trial_id)
            if hit is None or hit[0] is not pair:  # Tune makes a new pair when a trial changes
                hit = cache[trial_id] = (pair, json.dumps(pair, cls=TuneFunctionEncoder))
            parts.append(hit[1])
        for gone in cache.keys() - trials.keys():
            del cache[gone]
        # As Ray's own: {"trial_data": [...], "runner_data": ..., "stats": ...}, json.dump's
        # separators, keys in that order.
        text = "".join((
            '{"trial_data": [', ", ".join(parts), '], "runner_data": ',
            json.dumps(self.__getstate__(), cls=TuneFunctionEncoder), ', "stats": ',
            json.dumps({"start_time": self._start_time}, cls=TuneFunctionEncoder), "}",
        ))  # fmt: skip
        driver_staging_path = self._storage.experiment_driver_staging_path
        os.makedirs(driver_staging_path, exist_ok=True)
        with open(Path(driver_staging_path, self.experiment_state_file_name), "w") as f:
            f.write(text)
        for name in PROJECT_FILES:  # see PROJECT_FILES
            with contextlib.suppress(FileNotFoundError):
                os.unlink(Path(driver_staging_path, name))
        self._search_alg.save_to_dir(driver_staging_path, session_str=self._session_str)
        self._callbacks.save_to_dir(driver_staging_path, session_str=self._session_str)

    save_to_dir._cnn_tuner_original = original  # type: ignore[attr-defined]
    TuneController.save_to_dir = save_to_dir  # type: ignore[method-assign]


# What Ray's save_to_dir does, line by line, that the one above repeats.
_SAVE_TO_DIR_LINES = (
    '"trial_data": list(self._get_trial_checkpoints().values()),',
    '"runner_data": self.__getstate__(),',
    '"stats": {"start_time": self._start_time},',
    "driver_staging_path = self._storage.experiment_driver_staging_path",
    "Path(driver_staging_path, self.experiment_state_file_name),",
    "json.dump(runner_state, f, cls=TuneFunctionEncoder)",
    "self._search_alg.save_to_dir(driver_staging_path, session_str=self._session_str)",
    "self._callbacks.save_to_dir(driver_staging_path, session_str=self._session_str)",
)


# Optuna's in-memory copies of the study inside _CachedStorage (emptied after a restore).
STORAGE_CACHES = (
    "_studies",
    "_trial_id_to_study_id_and_number",
    "_study_id_and_number_to_trial_id",
)


def study_storage(study: Any) -> Any:
    """The storage object behind an optuna Study (Study._storage)."""
    return getattr(study, "_storage", None)


def trial_id(trial: Any) -> int:
    """Optuna's storage id of a Trial or FrozenTrial (not its number)."""
    return int(trial._trial_id)


def cached_storage_class() -> type:
    """Optuna's _CachedStorage, which every Study opened on an RDBStorage wraps it in."""
    from optuna.storages._cached_storage import _CachedStorage

    return _CachedStorage


def clear_storage_caches(storage: Any) -> None:
    """Empty _CachedStorage's copies, so the study is read again from its database."""
    if storage is None or not hasattr(storage, "_backend"):
        return
    for name in STORAGE_CACHES:
        cache = getattr(storage, name, None)
        if isinstance(cache, dict):
            cache.clear()


def reseed_sampler(sampler: Any, seed: int) -> None:
    """Give an Optuna sampler (and TPE's start-up random sampler) fresh RNGs from `seed`."""
    from optuna.samplers._lazy_random_state import LazyRandomState

    sampler._rng = LazyRandomState(seed)
    if hasattr(sampler, "_random_sampler"):  # TPE's start-up sampler
        sampler._random_sampler._rng = LazyRandomState(seed ^ 0x5EED)


def keep_ray_on_loopback() -> None:
    """Ray's "local only" switch for this process (read by Ray when it binds its ports)."""
    import ray._private.ray_constants as ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def tune_actor_env() -> dict[str, str] | None:
    """The environment Tune gives its trial actors (a dict to change in place), if found."""
    try:
        from ray.tune.execution import class_cache
    except ImportError:
        return None
    defaults = getattr(class_cache, "DEFAULT_ENV_VARS", None)
    return defaults if isinstance(defaults, dict) else None


def load_tune_json(text: str) -> Any:
    """Tune's JSON with cloudpickled objects inside (experiment_state's run metadata)."""
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    return _loads_with_cloudpickle(text)


def dump_tune_json(value: Any) -> str:
    from ray.tune.utils.serialization import TuneFunctionEncoder

    return json.dumps(value, indent=2, cls=TuneFunctionEncoder)


def checkpoint_results(manager: Any) -> list[Any]:
    """The checkpoints a Tune trial's _CheckpointManager keeps (ordered by score)."""
    return list(manager._checkpoint_results)


def latest_checkpoint_result(manager: Any) -> Any:
    return manager._latest_checkpoint_result


def set_checkpoint_results(manager: Any, kept: list[Any], latest: Any) -> None:
    manager._checkpoint_results = list(kept)
    manager._latest_checkpoint_result = latest


def trial_entry_like(
    template: list[Any],
    *,
    trial_id: str,
    dir_name: str,
    tag: str,
    config: dict[str, Any],
    status: str,
    last_result: dict[str, Any] | None,
    checkpoint_index: int,
) -> list[str]:
    """An entry of experiment_state's "trial_data" (Trial.get_json_state: the trial's state,
    its run metadata) for a trial that Tune's saved state does not hold, made from `template`,
    another trial's entry in the same experiment: the same trainable, resources, storage and
    failure settings, and this trial's own id, directory, tag, config and status. Its run
    metadata holds no checkpoint (the trainable continues from the newest one in its directory,
    tuner/driver/trainable.py) and the next checkpoint is written as `checkpoint_index` + 1."""
    import copy

    state = load_tune_json(template[0])
    storage = copy.copy(state["storage"])
    storage.trial_dir_name = dir_name
    storage.current_checkpoint_index = checkpoint_index
    evaluated = state.get("evaluated_params") or {}
    state.update(
        trial_id=trial_id,
        storage=storage,
        config=config,
        _Trial__unresolved_config=config,
        evaluated_params={k: config[k] for k in evaluated if k in config},
        experiment_tag=tag,
        relative_logdir=dir_name,
        custom_dirname=dir_name,
        status=status,
        restore_path=None,
        _restore_checkpoint_result=None,
        _state_json=None,
    )
    metadata = load_tune_json(template[1])
    manager = copy.deepcopy(metadata["checkpoint_manager"])
    set_checkpoint_results(manager, [], None)
    metadata.update(
        checkpoint_manager=manager,
        num_failures=0,
        num_failures_after_restore=0,
        error_filename=None,
        pickled_error_filename=None,
        last_result=dict(last_result or {}),
        metric_analysis={},
        metric_n_steps={},
    )
    metadata.pop("_cached_json", None)
    return [dump_tune_json(state), dump_tune_json(metadata)]


def continue_checkpoint_numbers(trial_state: str, newest_on_disk: int) -> str | None:
    """A trial's entry state (experiment_state's trial_data[i][0]) with its StorageContext's
    current_checkpoint_index raised to `newest_on_disk` (the next checkpoint is written as the
    one after it); None when it is there already."""
    state = load_tune_json(trial_state)
    storage = state.get("storage")
    current = getattr(storage, "current_checkpoint_index", None)
    if not isinstance(current, int) or current >= newest_on_disk:
        return None
    storage.current_checkpoint_index = newest_on_disk
    return dump_tune_json(state)


# The decisions (CONTINUE, STOP, PAUSE) Tune's controller holds for a trial until the trial's
# pending checkpoint save, or the result in hand, is processed: trial id -> decision, saved
# with the rest of the controller's attributes in experiment_state's "runner_data" and put
# back as they were by a restore.
PENDING_DECISIONS = ("_cached_trial_decisions", "_queued_trial_decisions")


def forget_pending_decisions(runner_data: dict[str, Any], trial_ids: Iterable[str]) -> int:
    """Drop the decisions `runner_data` (experiment_state's) holds for `trial_ids`. Returns
    how many were dropped."""
    dropped = 0
    for name in PENDING_DECISIONS:
        decisions = runner_data.get(name)
        if isinstance(decisions, dict):
            for trial_id in trial_ids:
                dropped += decisions.pop(trial_id, None) is not None
    return dropped


# --- the checks ------------------------------------------------------------------------------


def _has(obj: Any, *names: str) -> list[str]:
    return [name for name in names if not hasattr(obj, name)]


def _check_asha() -> list[str]:
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.schedulers import async_hyperband as ah

    bracket_class = getattr(ah, "_Bracket", None)
    if bracket_class is None:
        return ["ray.tune.schedulers.async_hyperband._Bracket is gone"]
    scheduler = ASHAScheduler(time_attr="training_iteration", metric="m", mode="max", max_t=9)
    problems = [f"ASHAScheduler has no {n}" for n in
                _has(scheduler, "_brackets", "_trial_info", "_num_stopped", "_max_t")]  # fmt: skip
    rungs = getattr(scheduler._brackets[0], "_rungs", None) if not problems else None
    if not (isinstance(rungs, list) and rungs and isinstance(rungs[0], tuple)
            and isinstance(rungs[0][1], dict)):  # fmt: skip
        problems.append("ASHA's _Bracket._rungs is no longer a list of (milestone, dict)")
    return problems


def _check_optuna_search() -> list[str]:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    def space(trial: Any) -> None:
        trial.suggest_float("x", 0.0, 1.0)

    searcher = OptunaSearch(space=space, metric="m", mode="max", storage=None)
    searcher.set_search_properties("m", "max", {})
    missing = _has(searcher, "_ot_trials", "_ot_study", "_space", "_completed_trials")
    if missing:
        return [f"OptunaSearch has no {', '.join(missing)}"]
    if not isinstance(searcher._ot_trials, dict) or not isinstance(searcher._ot_study,
                                                                    optuna.Study):  # fmt: skip
        return ["OptunaSearch._ot_trials / _ot_study changed type"]
    return []


def _check_optuna() -> list[str]:
    import optuna
    from optuna.samplers import RandomSampler, TPESampler

    problems = []
    study = optuna.create_study(storage=optuna.storages.RDBStorage("sqlite:///:memory:"))
    storage = study_storage(study)
    if storage is None:
        problems.append("optuna.Study has no _storage")
    elif not hasattr(storage, "_backend") or _has(storage, *STORAGE_CACHES):
        problems.append(f"optuna's _CachedStorage lost _backend or one of {STORAGE_CACHES}")
    elif type(storage) is not cached_storage_class():
        problems.append("optuna's Study no longer wraps an RDBStorage in _CachedStorage")
    trial = study.ask()
    if not hasattr(trial, "_trial_id") or not hasattr(study.trials[0], "_trial_id"):
        problems.append("optuna's Trial / FrozenTrial have no _trial_id")
    try:
        from optuna.samplers._lazy_random_state import LazyRandomState  # noqa: F401
    except ImportError:
        problems.append("optuna.samplers._lazy_random_state.LazyRandomState is gone")
    if not hasattr(RandomSampler(seed=0), "_rng"):
        problems.append("optuna's RandomSampler has no _rng")
    if not hasattr(getattr(TPESampler(seed=0), "_random_sampler", None), "_rng"):
        problems.append("optuna's TPESampler has no _random_sampler._rng")
    return problems


def _check_ray_switches() -> list[str]:
    import inspect

    import ray._private.ray_constants as ray_constants

    problems = []
    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        problems.append("ray._private.ray_constants.ENABLE_RAY_CLUSTER is gone (loopback)")
    if tune_actor_env() is None:
        problems.append("ray.tune.execution.class_cache.DEFAULT_ENV_VARS is gone")
    from ray.tune import tune as tune_module

    if "TUNE_DISABLE_SIGINT_HANDLER" not in inspect.getsource(tune_module):
        problems.append("Tune no longer reads TUNE_DISABLE_SIGINT_HANDLER (Ctrl-C handling)")
    return problems


def _check_checkpoint_manager() -> list[str]:
    try:
        from ray.train import Checkpoint, CheckpointConfig
        from ray.train._internal.checkpoint_manager import _CheckpointManager
        from ray.train._internal.session import _TrainingResult
    except ImportError as e:
        return [f"Tune's checkpoint bookkeeping moved: {e}"]
    manager = _CheckpointManager(CheckpointConfig(num_to_keep=1))
    manager.register_checkpoint(_TrainingResult(checkpoint=Checkpoint("/x/c_0"), metrics={}))
    missing = _has(manager, "_checkpoint_results", "_latest_checkpoint_result")
    if missing:
        return [f"_CheckpointManager has no {', '.join(missing)}"]
    again = load_tune_json(dump_tune_json({"checkpoint_manager": manager}))
    if latest_checkpoint_result(again["checkpoint_manager"]).checkpoint.path != "/x/c_0":
        return ["Tune's JSON no longer round-trips a _CheckpointManager"]
    return []


def _check_trial_entry() -> list[str]:
    """trial_entry_like's entry is read back by Tune as the trial it describes."""
    import tempfile

    try:
        from ray.train._internal.storage import StorageContext
        from ray.tune import PlacementGroupFactory
        from ray.tune.experiment import Trial
    except ImportError as e:
        return [f"Tune's Trial or StorageContext moved: {e}"]
    with tempfile.TemporaryDirectory() as root:
        storage = StorageContext(storage_path=root, experiment_dir_name="e",
                                 trial_dir_name="trial_0000_a")  # fmt: skip
        trial: Any = Trial("cnn_tuner_check", config={"lr": 0.1}, trial_id="a", storage=storage,
                      evaluated_params={"lr": 0.1}, experiment_tag="1_lr=0.1",
                      stub=True)  # fmt: skip
        trial.placement_group_factory = PlacementGroupFactory([{"CPU": 1}])  # a stub has none
        try:
            entry = trial_entry_like(list(trial.get_json_state()), trial_id="b",
                                     dir_name="trial_0001_b", tag="2", config={"lr": 0.2},
                                     status="PENDING", last_result={"epoch": 2},
                                     checkpoint_index=4)  # fmt: skip
            raised = continue_checkpoint_numbers(entry[0], 7)
            back: Any = Trial.from_json_state(raised, stub=True) if raised else None
            if back is None or back.storage.current_checkpoint_index != 7:
                return ["a trial entry's checkpoint count can no longer be raised"]
            made: Any = Trial.from_json_state(entry[0], stub=True)
            made.restore_run_metadata(entry[1])
            got = (made.trial_id, made.config, made.evaluated_params, made.status,
                   made.experiment_tag, made.storage.trial_dir_name,
                   made.storage.current_checkpoint_index, made.last_result.get("epoch"),
                   made.checkpoint)  # fmt: skip
        except Exception as e:  # any break in the format
            return [f"a trial entry made from another's no longer reads back: {e!r}"]
    want = ("b", {"lr": 0.2}, {"lr": 0.2}, "PENDING", "2", "trial_0001_b", 4, 2, None)
    if got != want:
        return [f"a trial entry made from another's reads back as {got}, not {want}"]
    return []


def _check_concurrency_limiter() -> list[str]:
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    limiter = ConcurrencyLimiter(OptunaSearch(metric="m", mode="max"), max_concurrent=2)
    state = limiter.get_state()
    missing = [k for k in ("live_trials", "num_unfinished_live_trials") if k not in state]
    return [f"ConcurrencyLimiter's saved state has no {', '.join(missing)}"] if missing else []


def _check_search_generator() -> list[str]:
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.search_generator import SearchGenerator

    generator = SearchGenerator(OptunaSearch(metric="m", mode="max"))
    state = generator.get_state()
    missing = [k for k in ("total_samples", "finished", "counter") if k not in state]
    if missing:
        return [f"SearchGenerator's state has no {', '.join(missing)}"]
    generator.set_state(state)
    gone = _has(generator, "_total_samples", "_finished")
    return [f"SearchGenerator has no {', '.join(gone)}"] if gone else []


def _check_run_metadata() -> list[str]:
    import inspect

    try:
        from ray.tune.experiment.trial import Trial
        from ray.tune.trainable.metadata import _TrainingRunMetadata
    except ImportError as e:
        return [f"Tune's run metadata moved: {e}"]
    if "update_metric" not in inspect.getsource(Trial.update_last_result):
        return ["Trial.update_last_result no longer summarises through update_metric"]
    metadata: Any = _TrainingRunMetadata()
    with lean_tune_state(["kept"]):
        metadata.update_metric("kept", 1.0)
        metadata.update_metric("skipped", 2.0)
    metadata.update_metric("outside", 3.0)
    if set(metadata.metric_analysis) != {"kept", "outside"}:
        return ["_TrainingRunMetadata.update_metric no longer fills metric_analysis"]
    return []


def _check_state_save() -> list[str]:
    import inspect

    from ray.tune.execution.tune_controller import TuneController

    save = TuneController.save_to_dir
    source = inspect.getsource(getattr(save, "_cnn_tuner_original", save))
    missing = [line for line in _SAVE_TO_DIR_LINES if line not in source]
    if missing or source.count("\n") > 40:
        return [f"TuneController.save_to_dir changed (no longer has: {missing})"]
    return []


def _check_pending_decisions() -> list[str]:
    """Tune's controller keeps PENDING_DECISIONS as dicts and saves them with its state."""
    import inspect

    from ray.tune.execution.tune_controller import TuneController

    init = inspect.getsource(TuneController.__init__)
    dropped = inspect.getsource(TuneController.__getstate__)
    problems = [f"TuneController no longer sets {name} = {{}}" for name in PENDING_DECISIONS
                if f"self.{name} = {{}}" not in init]  # fmt: skip
    problems += [f"TuneController's saved state no longer holds {name}" for name in
                 PENDING_DECISIONS if f'"{name}"' in dropped]  # fmt: skip
    return problems


def reopen_finished_trials(study_url: str, trial_ids: list[int]) -> None:
    """Set finished Optuna trials (storage ids) RUNNING again, their values gone, so that a
    retried trial's new outcome can be told: in one transaction on the study's database
    (optuna.db, or a --storage server), or in one atomic rewrite of optuna.journal. A FAIL or
    COMPLETE is final to Optuna: no public API reopens a trial, and a new trial would take a
    new number, where trial N of the study must stay trial N of the experiment."""
    from tuner.experiment import journal_path

    path = journal_path(study_url)
    if path is not None:
        _reopen_in_journal(path, set(trial_ids))
        return
    import sqlalchemy

    from tuner.driver.study_storage import engine_kwargs

    engine = sqlalchemy.create_engine(study_url, **engine_kwargs(study_url))
    rows = [{"id": i} for i in trial_ids]
    try:
        with engine.begin() as db:  # commits on success, rolls back on an error
            db.execute(sqlalchemy.text(
                "UPDATE trials SET state = 'RUNNING', datetime_complete = NULL WHERE trial_id = :id"
            ), rows)  # fmt: skip
            db.execute(sqlalchemy.text("DELETE FROM trial_values WHERE trial_id = :id"), rows)
    finally:
        engine.dispose()


JOURNAL_SET_TRIAL_STATE = 6  # optuna.storages.journal._storage.JournalOperation
JOURNAL_RUNNING, JOURNAL_WAITING = 0, 4  # optuna.trial.TrialState: the unfinished states


def _reopen_in_journal(path: Any, trial_ids: set[int]) -> None:
    """Drop the operations that finished `trial_ids` from the journal file: replayed without
    them, each trial is RUNNING, as it was before its outcome was told. Written to a file beside
    it and renamed over it (nothing is lost if this stops half way), under Optuna's own lock so
    that no writer appends meanwhile. Every reader replays the file afresh: the caller opens the
    study after this."""
    import os
    import tempfile

    from tuner.driver.study_storage import journal_lock

    lock = journal_lock(path)
    lock.acquire()
    try:
        kept: list[bytes] = []
        with open(path, "rb") as f:
            for line in f:
                op = json.loads(line)
                finishing = (
                    op.get("op_code") == JOURNAL_SET_TRIAL_STATE
                    and op.get("trial_id") in trial_ids
                    and op.get("state") not in (JOURNAL_RUNNING, JOURNAL_WAITING)
                )
                if not finishing:
                    kept.append(line)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".optuna-journal-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.writelines(kept)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    finally:
        lock.release()


def _check_optuna_reopen() -> list[str]:
    """A FAILed trial reopened by reopen_finished_trials takes a new COMPLETE with its value,
    in an SQLite study and in a journal file; the journal's operation codes are as above."""
    import tempfile
    from pathlib import Path

    import optuna
    from optuna.storages.journal._storage import JournalOperation

    from tuner.driver.study_storage import open_storage
    from tuner.experiment import JOURNAL_SCHEME, OPTUNA_DB, OPTUNA_JOURNAL

    problems = []
    if JournalOperation.SET_TRIAL_STATE_VALUES != JOURNAL_SET_TRIAL_STATE:
        problems.append("optuna's journal numbers SET_TRIAL_STATE_VALUES differently")
    if (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING) != (
        JOURNAL_RUNNING, JOURNAL_WAITING,
    ):  # fmt: skip
        problems.append("optuna numbers TrialState.RUNNING / WAITING differently")
    with tempfile.TemporaryDirectory() as tmp:
        for url in (f"sqlite:///{Path(tmp) / OPTUNA_DB}",
                    f"{JOURNAL_SCHEME}{Path(tmp) / OPTUNA_JOURNAL}"):  # fmt: skip
            study = optuna.create_study(storage=open_storage(url), study_name="s",
                                        direction="maximize")  # fmt: skip
            trial = study.ask()
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            kind = url.split(":")[0]
            try:
                reopen_finished_trials(url, [trial_id(study.trials[0])])
            except Exception as e:  # noqa: BLE001  a table, column or field moved
                what = "RDB schema" if kind == "sqlite" else "journal file format"
                problems.append(f"optuna's {what} changed (reopening a trial): {e}")
                continue
            again = optuna.load_study(storage=open_storage(url), study_name="s")
            with contextlib.suppress(ValueError):  # "Cannot tell a FAIL trial": not reopened
                again.tell(trial.number, 0.5)
            done = again.trials[0]
            del study, again
            if kind == "sqlite":
                optuna.storages.RDBStorage(url).engine.dispose()
            if (done.state.name, done.value) != ("COMPLETE", 0.5):
                problems.append(f"a reopened Optuna trial ({kind}) no longer takes a new outcome")
    return problems


def _check_ray_behaviour() -> list[str]:
    """The reaches that are behaviour, not attributes: Tune's SIGUSR1 stop, ASHA's settings as
    the subclass reads them, Ray's out-of-memory error class."""
    import inspect

    import ray.exceptions
    from ray.tune import tune as tune_module
    from ray.tune.schedulers import ASHAScheduler

    problems = []
    if "signal.SIGUSR1, signal_interrupt_tune_run" not in inspect.getsource(tune_module):
        problems.append("Tune's fit no longer stops on SIGUSR1 (Ctrl-C's graceful stop)")
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    starts = ((JsonLoggerCallback.log_trial_start, "(EXPR_RESULT_FILE, trial)"),
              (CSVLoggerCallback._setup_trial, "(EXPR_PROGRESS_FILE, trial)"))  # fmt: skip
    problems += [f"JsonLoggerCallback has no {n}" for n in
                 _has(JsonLoggerCallback(), "_trial_files", "_trial_configs")]  # fmt: skip
    for logger, call in starts:
        if f"self._restore_from_remote{call}" not in inspect.getsource(logger):
            problems.append(f"{logger.__qualname__} no longer calls _restore_from_remote{call}")
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager as manager

    if 'path.endswith(".json") or path.endswith(".pkl")' not in inspect.getsource(
        manager.sync_down_experiment_state
    ):
        problems.append(
            "Tune's restore no longer copies the top-level *.json and *.pkl (PROJECT_FILES)"
        )
    scheduler = ASHAScheduler(time_attr="epoch", metric="m", mode="max", max_t=9,
                              reduction_factor=3, stop_last_trials=False)  # fmt: skip
    kept = tuple(getattr(scheduler, n, None) for n in
                 ("_reduction_factor", "_stop_last_trials", "_time_attr"))  # fmt: skip
    if kept != (3, False, "epoch"):
        problems.append(
            "ASHAScheduler no longer keeps _reduction_factor / _stop_last_trials / _time_attr"
        )
    if not hasattr(ray.exceptions, "OutOfMemoryError"):
        problems.append("ray.exceptions.OutOfMemoryError is gone (memory-monitor kills)")
    return problems


def _check_journal_ops() -> list[str]:
    from tuner.driver.fence import journal

    return journal.check()


CHECKS: tuple[Callable[[], list[str]], ...] = (
    _check_asha, _check_optuna_search, _check_optuna, _check_ray_switches,
    _check_checkpoint_manager, _check_trial_entry, _check_concurrency_limiter,
    _check_search_generator, _check_run_metadata, _check_state_save, _check_pending_decisions,
    _check_optuna_reopen, _check_ray_behaviour, _check_journal_ops,
)  # fmt: skip


def check() -> list[str]:
    """One line per internal this code relies on that is missing or changed; [] when all
    hold. Imports Ray and Optuna, starts neither."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    problems = []
    for one in CHECKS:
        try:
            problems += one()
        except Exception as e:  # noqa: BLE001  a changed signature is a finding too
            problems.append(f"{one.__name__[7:]}: {type(e).__name__}: {e}")
    return problems
