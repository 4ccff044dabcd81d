"""OptunaSearch that tells Optuna what really happened to each trial.

Ray's OptunaSearch (2.60) marks every trial with a result COMPLETE, including trials ASHA
stopped after one epoch, so TPE learns from truncated runs as if they had finished; it never
reports the result that triggered the stop; and a NaN metric makes `tell` raise, leaving the
Optuna trial RUNNING forever (see ../shared/design/ray-optuna-notes.md). Here:

- every epoch's value is an intermediate value, the last one included;
- a trial that ran its whole epoch budget is COMPLETE;
- a trial stopped early (by ASHA or the time budget) is PRUNED, so TPE ranks it by how far it
  got, as Optuna's own pruners would;
- a trial that diverged, errored or has no finite metric is FAIL.

With a size budget (--max-params, --max-macs) each suggestion is priced before Tune sees it
(tuner/train/cost.py, milliseconds). One over budget never trains: it is told to Optuna at once as a
COMPLETE trial with the worst value, user attribute `rejected` and its constraint violations
(Trial.set_constraint), and the searcher asks again. TPE ranks infeasible trials below every
feasible one, so the sampler learns where the budget ends and stops proposing past it.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import zlib
from typing import TYPE_CHECKING, Any, cast

from optuna.samplers import RandomSampler, TPESampler
from optuna.storages import RDBStorage
from optuna.trial import Trial, TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from tuner.driver import restore_context
from tuner.driver.fence.internals import (
    cached_storage_class,
    clear_storage_caches,
    reseed_sampler,
    study_storage,
)
from tuner.driver.fence.internals import trial_id as trial_id_of
from tuner.driver.study_storage import journal_class, open_storage
from tuner.errors import BudgetError, ConfigError
from tuner.experiment import REJECTED_ATTR, TUNE_TRIAL_ID, finite, is_finite
from tuner.train.budget import Budget, Cost

MAX_REJECTIONS = 200  # in a row: the budget cannot be met by this space


def _set_constraints(ot_trial: Any, names: list[str], violations: list[float]) -> None:
    """Optuna's convention: a value <= 0 is within the bound; TPE reads them itself."""
    for name, value in zip(names, violations, strict=True):
        ot_trial.set_constraint(name, value)


def outcome_state(
    result: dict | None, error: bool, metric: str | list[str], epoch_budget: int
) -> TrialState:
    """The Optuna state for a finished Tune trial (pure, so the rules are tested directly).
    `metric` may be a list (multi-objective): every one must be finite."""
    metrics = metric if isinstance(metric, list) else [metric]
    if error or not result or result.get("diverged"):
        return TrialState.FAIL
    if not all(is_finite(result.get(m)) for m in metrics):
        return TrialState.FAIL
    if int(result.get("epoch", 0)) >= epoch_budget:
        return TrialState.COMPLETE
    return TrialState.PRUNED


class TruthfulOptunaSearch(OptunaSearch):
    def __init__(
        self,
        *args: Any,
        epoch_budget: int,
        total_epochs: int | None = None,
        budget: Budget | None = None,
        pricer: Any = None,
        rejections: Any = None,
        **kwargs: Any,
    ) -> None:
        """budget: size bounds; pricer(config) -> Cost; rejections(config, cost, reason) records
        a configuration refused for the budget (both needed when the budget is active).
        total_epochs: the search's budget in epochs (see `spent`); None: no limit here."""
        super().__init__(*args, **kwargs)
        self._epoch_budget = epoch_budget
        self._total_epochs = total_epochs
        self._epochs_run: dict[str, int] = {}  # Tune trial id -> epochs it has trained
        self._reported: dict[str, set[int]] = {}  # steps already given to Optuna, per trial
        self._budget = budget or Budget()
        self._pricer = pricer
        self._rejections = rejections
        self._orphans: list[int] | None = None  # see _take_orphan
        self._unchecked: set[str] = set()  # see _finished

    # -- pickling: the study's database is found where the experiment is now -------------
    # Ray pickles this searcher twice: into tuner.pkl once (with the whole Tuner) and into
    # searcher-state-*.pkl at every experiment checkpoint. Pickled plainly, both hold
    # the study file's absolute path, so a moved or copied experiment was resumed against the old
    # place, or failed to open it. Here the storage is pickled as a reference and opened again
    # from the experiment directory it is restored from.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_orphans", None)  # found again in the restoring process
        state.pop("_unchecked", None)
        # A finished trial's Optuna Trial object (and its copy of params and intermediate
        # values, ~1.3 kB) is never used again: only its storage id is kept, so a save's size
        # follows the running trials, not the study (300 trials: 731 kB -> see BENCHMARKS.md).
        trials = state.get("_ot_trials")
        done = state.get("_completed_trials")
        if isinstance(trials, dict) and isinstance(done, set):
            state["_ot_trials"] = {k: v for k, v in trials.items() if k not in done}
            state[_FINISHED_IDS] = {k: trial_id_of(v) for k, v in trials.items() if k in done}
        buffer = io.BytesIO()
        _StoragePickler(buffer).dump(state)
        return {_PICKLED: buffer.getvalue()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if _PICKLED not in state:
            self.__dict__.update(state)
            return
        resume = restore_context.current()
        loaded = _StorageUnpickler(io.BytesIO(state[_PICKLED]), resume.study_url).load()
        finished: dict[str, int] = loaded.pop(_FINISHED_IDS, {})
        self.__dict__.update(loaded)
        self.__dict__.setdefault("_epochs_run", {})  # pickled before the epoch budget
        self.__dict__.setdefault("_total_epochs", None)
        if resume.total_epochs is not None:  # the resumed search's budget (`--samples` raised)
            self._total_epochs = resume.total_epochs
        self._orphans = None
        completed = self.__dict__.get("_completed_trials")
        if isinstance(completed, set):
            completed -= resume.retry_tune_ids
        # Optuna's in-memory cache of the study is as old as this pickle; the study may have
        # moved on since (trials told after Tune's last save, trials reopened for a retry).
        # Emptied, the cache reads everything from the database again.
        study: Any = self.__dict__.get("_ot_study")
        clear_storage_caches(study_storage(study))
        # A retried trial is listened to again: its Trial object comes back from the database
        # (reopened there by tuner.driver.fence.recovery.reopen_trials).
        for tune_id in resume.retry_tune_ids & finished.keys():
            self._ot_trials[tune_id] = Trial(study, finished[tune_id])
        # A trial that Tune's restored state does not hold will never run under its id again
        # (tuner.driver.fence.recovery.set_aside_unrecorded_trials): its Optuna trial is let go, an
        # orphan that _take_orphan proposes again.
        if resume.known_tune_ids is not None:
            for tune_id in set(self._ot_trials) - resume.known_tune_ids:
                del self._ot_trials[tune_id]
            # A trial this pickle predates, that Tune's restored state holds (made after
            # Tune's last save and added back by tuner.driver.fence.recovery.
            # adopt_unrecorded_trials): its Optuna trial is found by its Tune id, if still
            # running (a finished one is never run again).
            unseen = resume.known_tune_ids - self._ot_trials.keys() - finished.keys()
            if unseen and study is not None:
                for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    tune_id = frozen.user_attrs.get(TUNE_TRIAL_ID)
                    if tune_id in unseen:
                        self._ot_trials[tune_id] = Trial(study, trial_id_of(frozen))
        for tune_id, epochs in resume.epochs_trained.items():
            self._epochs_run[tune_id] = max(self._epochs_run.get(tune_id, 0), epochs)
        self._unchecked = set(self._ot_trials)

    @property
    def study(self) -> Any:
        """The Optuna study (there once Tune has set the searcher's metric and mode)."""
        assert self._ot_study is not None, "the searcher has no study before Tune sets it up"
        return self._ot_study

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Ray's restore, with the study opened where restoring_searcher (tuner_setup) says it
        is (Ray hands over a copy of the state file in its own temp dir, so the file's own
        directory says nothing about where the experiment is).

        A state that cannot be read is not raised here: Tune 2.60 logs a failed restore and
        goes on without the searcher's state, and then waited for a trial for ever (a CI run
        hung 600 s on a cut-short file). It is raised, as one line, at the searcher's first
        use instead (see _refuse_if_unrestored)."""
        try:
            with open(checkpoint_path, "rb") as f:
                state = pickle.load(f)
            self.__setstate__(state)
        except Exception as e:  # noqa: BLE001 - whatever it was, the resume must not go on
            self._unrestored = f"{os.path.basename(checkpoint_path)} could not be read ({e})"

    def _refuse_if_unrestored(self) -> None:
        problem = getattr(self, "_unrestored", None)
        if problem is not None:
            raise ConfigError(
                f"cannot resume: Tune's saved searcher state {problem}; put back a copy of the "
                "experiment directory, or start the search again under another --name"
            )

    def _report(self, trial_id: str, result: dict) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or isinstance(self.metric, list):  # Optuna: no intermediate values
            return  # for a multi-objective study
        value = finite(result.get(self.metric))
        if value is None:
            return
        if self._finished(trial_id):
            return
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        steps = self._reported.setdefault(trial_id, set())
        if step not in steps:  # a retried trial reports its epochs after the checkpoint again
            ot_trial.report(value, step)
            steps.add(step)

    def _finished(self, trial_id: str) -> bool:
        """Already finished in storage: told before a crash that Tune's saved state predates.
        Only a trial this searcher was restored with can be (a new one is told by this process
        alone, and then it is in _completed_trials), and once found running it stays so until
        told here: the database is read once per restored trial, not at every result (a read a
        result was 2.5 % of the driver's time at 300 trials, bench/scale.py under py-spy)."""
        if trial_id not in getattr(self, "_unchecked", ()):
            return False
        ot_trial = self._ot_trials[trial_id]
        told = study_storage(self._ot_study).get_trial(trial_id_of(ot_trial)).state.is_finished()
        if not told:
            self._unchecked.discard(trial_id)
        return told

    def _take_orphan(self) -> Any:
        """A RUNNING Optuna trial that no Tune trial owns: asked for just before a crash, after
        Tune's last saved state. Reusing it (its params are stored, so the define-by-run space
        returns them again) runs the configuration an uninterrupted search would have run, and
        leaves no trial RUNNING forever.

        Orphans are made only by an earlier process, so they are looked for once, at this
        process's first suggestion: a scan of the study at every one was ~10 % of each
        suggestion's time at 300 trials (bench/scale.py under py-spy)."""
        if getattr(self, "_orphans", None) is None:
            owned = {trial_id_of(t) for t in self._ot_trials.values()}
            running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            self._orphans = [trial_id_of(t) for t in running if trial_id_of(t) not in owned]
        assert self._orphans is not None
        return Trial(self.study, self._orphans.pop(0)) if self._orphans else None

    def spent(self) -> bool:
        """The epoch budget is spent: no new trial starts (the running ones finish). Only
        under --max-trials (SearchConfig.spends_savings), where, as in Hyperband, the budget is
        compute, not a trial count: what ASHA saves by stopping a trial early starts new ones
        (SearchConfig.trial_cap says why that is not the default)."""
        return (
            self._total_epochs is not None and sum(self._epochs_run.values()) >= self._total_epochs
        )

    def _count_epochs(self, trial_id: str, result: dict | None) -> None:
        if result:
            epoch = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
            if epoch > self._epochs_run.get(trial_id, 0):
                self._epochs_run[trial_id] = epoch

    def suggest(self, trial_id: str) -> dict | None:
        self._refuse_if_unrestored()
        if self.spent():
            # Ray's SearchGenerator ends the search on this marker (its annotation says dict).
            return cast(dict, Searcher.FINISHED)
        for _ in range(MAX_REJECTIONS):
            if callable(self._space) and trial_id not in self._ot_trials and self._ot_study:
                orphan = self._take_orphan()
                if orphan is not None:
                    self._ot_trials[trial_id] = orphan
            config = super().suggest(trial_id)
            if trial_id not in self._ot_trials or not isinstance(config, dict):
                return config
            ot_trial = self._ot_trials[trial_id]
            if self._budget.active and not self._within_budget(ot_trial, config):
                del self._ot_trials[trial_id]  # told already; ask Optuna for another
                continue
            ot_trial.set_user_attr(TUNE_TRIAL_ID, trial_id)  # lets a resume match the records
            return config
        raise BudgetError(
            f"{MAX_REJECTIONS} configurations in a row were over the size budget; raise "
            "--max-params / --max-macs or narrow the space"
        )

    def _within_budget(self, ot_trial: Any, config: dict) -> bool:
        """Price `config`; if it is over budget, tell Optuna and record it. Unbuildable configs
        pass: the trial reports the error itself."""
        from tuner.train.config import ConfigError

        names = self._budget.names
        try:
            cost: Cost = self._pricer(config)
        except (ConfigError, ValueError):
            _set_constraints(ot_trial, names, [0.0] * len(names))
            return True
        _set_constraints(ot_trial, names, self._budget.violations(cost))
        ot_trial.set_user_attr("params", cost.params)
        ot_trial.set_user_attr("macs", cost.macs)
        reason = self._budget.reason(cost)
        if reason is None:
            return True
        ot_trial.set_user_attr(REJECTED_ATTR, reason)
        self.study.tell(ot_trial, self._worst_values(), state=TrialState.COMPLETE)
        if self._rejections is not None:
            self._rejections(config, cost, reason)
        return False

    def _worst_values(self) -> float | list[float]:
        """What a configuration that cannot be trained scores: 0 accuracy, infinite cost."""
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        modes = self.mode if isinstance(self.mode, list) else [self.mode]
        worst = [0.0 if mode == "max" else math.inf for mode in modes]
        return worst if len(metrics) > 1 else worst[0]

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._refuse_if_unrestored()
        self._count_epochs(trial_id, result)
        if trial_id not in self._completed_trials:
            self._report(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        self._refuse_if_unrestored()
        self._count_epochs(trial_id, result)
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if self._finished(trial_id):  # told before a crash; telling again would raise
            self._completed_trials.add(trial_id)
            return
        if result:
            self._report(trial_id, result)  # Tune never passes the stopping result to on_result
        # The same rules for one objective or several (Optuna keeps no intermediate values for
        # a multi-objective study, but a trial stopped early is still PRUNED, not COMPLETE).
        state = outcome_state(result, error, self.metric, self._epoch_budget)
        value: Any = None
        if state == TrialState.COMPLETE:
            assert result is not None
            if isinstance(self.metric, list):
                value = [float(result[m]) for m in self.metric]
            else:
                value = float(result[self.metric])
        self.study.tell(self._ot_trials[trial_id], value, state=state)
        self._completed_trials.add(trial_id)


_PICKLED = "cnn_tuner_pickled"
_FINISHED_IDS = "cnn_tuner_finished_trial_ids"  # Tune trial id -> Optuna storage id, finished


class _StoragePickler(pickle.Pickler):
    """Pickles Optuna's storages as their URLs only, whatever refers to them.

    The cached storage too: its copy of every trial (params, intermediate values) is what the
    database holds, and pickling it made each of Tune's saves of the searcher grow with the
    study (py-spy, 300 trials: 10.5 % of the driver's samples in __getstate__, 70 % of that
    here); __setstate__ emptied that copy on a restore anyway. persistent_id runs for every
    object pickled, so it does two type checks and nothing else.
    """

    _cached: Any = cached_storage_class()
    _journal: Any = journal_class()

    def persistent_id(self, obj: Any) -> tuple[str, str] | None:
        if isinstance(obj, (RDBStorage, self._journal)):
            return ("optuna-storage", obj.url)
        if isinstance(obj, self._cached) and isinstance(obj._backend, RDBStorage):
            return ("optuna-cached-storage", obj._backend.url)
        return None


class _StorageUnpickler(pickle.Unpickler):
    """Opens the storage again, at `study_url` when given, else at the URL it was pickled
    with."""

    def __init__(self, file: Any, study_url: str | None) -> None:
        super().__init__(file)
        self._study_url = study_url
        self._storages: dict[tuple[str, str], Any] = {}

    def persistent_load(self, pid: Any) -> Any:
        kind, url = pid
        if kind not in ("optuna-storage", "optuna-cached-storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        if (kind, url) not in self._storages:  # one storage per URL, as when it was pickled
            if ("optuna-storage", url) not in self._storages:
                self._storages["optuna-storage", url] = open_storage(self._study_url or url)
            backend = self._storages["optuna-storage", url]
            if kind == "optuna-cached-storage":
                self._storages[kind, url] = cached_storage_class()(backend)
        return self._storages[kind, url]


# For the type checker only: the mixin's super() is the sampler it is mixed into.
_SamplerBase: Any = TPESampler if TYPE_CHECKING else object


class _SeedPerTrial(_SamplerBase):
    """Draw every parameter from an RNG seeded by (seed, trial number, parameter name).

    A plain seeded sampler draws from one stream, so a resume (which restores the sampler as
    it was at Tune's last save) would replay draws already used by trials asked for after that
    save. Reseeding once per trial (in `before_trial`) was not enough either: a kill can land
    while the driver stores a new trial's parameters (one write each); the resume then
    reuses that RUNNING trial (TruthfulOptunaSearch._take_orphan), whose stored parameters come
    back, but `before_trial` never runs for it, so the missing ones were drawn from whatever
    state the stream was in (seen: one trial's momentum 0.0943 against 0.0582 uninterrupted).
    Seeding each draw by (seed, trial number, name) makes it a function of those alone, however
    many draws came before it in this process.
    """

    def __init__(self, *args: Any, seed: int, **kwargs: Any) -> None:
        super().__init__(*args, seed=seed, **kwargs)
        self._base_seed = int(seed)

    def _draw_seed(self, number: int, param_name: str) -> int:
        # crc32, not hash(): str hashes change from process to process (PYTHONHASHSEED).
        name = zlib.crc32(param_name.encode("utf-8"))
        return (self._base_seed * 1_000_003 + number * 7_919 + name) % 2**32

    def _reseed(self, seed: int) -> None:
        reseed_sampler(self, seed)

    def sample_independent(
        self, study: Any, trial: Any, param_name: str, param_distribution: Any
    ) -> Any:
        self._reseed(self._draw_seed(trial.number, param_name))
        return super().sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
        self._reseed(self._draw_seed(trial.number, "\0relative"))
        return super().sample_relative(study, trial, search_space)


class SeededTPE(_SeedPerTrial, TPESampler):
    pass


class SeededRandom(_SeedPerTrial, RandomSampler):
    pass


def make_sampler(kind: str, seed: int) -> TPESampler | RandomSampler:
    """'tpe' or 'random', seeded per trial (see _SeedPerTrial)."""
    return SeededTPE(seed=seed) if kind == "tpe" else SeededRandom(seed=seed)
