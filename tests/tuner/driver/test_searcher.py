"""Optuna is told the truth: COMPLETE only for full runs, PRUNED for early stops, FAIL else."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from tuner.driver.fence.searcher import outcome_state

M = "best_val_acc"


@pytest.mark.parametrize(
    "result, error, expected",
    [
        ({"epoch": 10, M: 0.9}, False, TrialState.COMPLETE),
        ({"epoch": 3, M: 0.7}, False, TrialState.PRUNED),  # ASHA stopped it at epoch 3
        ({"epoch": 1, M: 0.1, "diverged": True}, False, TrialState.FAIL),
        ({"epoch": 10, M: float("nan")}, False, TrialState.FAIL),
        ({"epoch": 4, M: 0.5}, True, TrialState.FAIL),  # errored after its retries
        (None, True, TrialState.FAIL),
        ({"epoch": 2}, False, TrialState.FAIL),  # no metric at all
    ],
)
def test_outcome_rules(result, error, expected):
    assert outcome_state(result, error, M, epoch_budget=10) == expected


class _Killed(Exception):
    pass


class _DiesAfter:
    """A trial whose driver is killed after `n` parameters were stored (one commit each)."""

    def __init__(self, trial, n: int) -> None:
        self._trial, self._left = trial, n

    def __getattr__(self, name):
        attr = getattr(self._trial, name)
        if not name.startswith("suggest_"):
            return attr

        def suggest(*args, **kwargs):
            if self._left == 0:
                raise _Killed
            self._left -= 1
            return attr(*args, **kwargs)

        return suggest


@pytest.mark.parametrize("kind", ["tpe", "random"])
@pytest.mark.parametrize("space", ["seed_cnn", "resnet_cnn"])
@pytest.mark.parametrize("stored", [0, 1, 3])
def test_a_resumed_half_stored_trial_draws_what_an_uninterrupted_run_draws(kind, space, stored):
    """The resume case behind a flaky CI run: a kill lands while a new trial's parameters are
    being stored; the resumed driver reuses that trial (TruthfulOptunaSearch._take_orphan)
    with a fresh sampler. The parameters it draws then are the uninterrupted run's."""
    import optuna

    from search_spaces import get_space
    from tuner.driver.fence.searcher import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    define = get_space(space).for_input(8)

    reference_study = optuna.create_study(sampler=make_sampler(kind, seed=7))
    reference = []
    for _ in range(4):
        trial = reference_study.ask()
        define(trial)
        reference.append(dict(trial.params))
        reference_study.tell(trial, 0.5)

    study = optuna.create_study(sampler=make_sampler(kind, seed=7))
    for _ in range(3):
        trial = study.ask()
        define(trial)
        study.tell(trial, 0.5)
    with pytest.raises(_Killed):
        define(_DiesAfter(study.ask(), stored))
    study.sampler = make_sampler(kind, seed=7)  # the resumed driver's, never asked before
    orphan = optuna.trial.Trial(study, study.trials[3]._trial_id)
    define(orphan)
    assert [t.params for t in study.trials[:3]] == reference[:3]
    assert orphan.params == reference[3]


@pytest.fixture(params=["optuna.journal", "optuna.db"])
def db(request, tmp_path):
    """The study's file: a new experiment's journal, and an older experiment's SQLite."""
    return tmp_path / request.param


def _url(db):
    from tuner.experiment import JOURNAL_SCHEME

    return f"{JOURNAL_SCHEME}{db}" if db.suffix == ".journal" else f"sqlite:///{db}"


def _study(db):
    import optuna

    from tuner.driver.study_storage import open_storage

    return optuna.load_study(study_name="s", storage=open_storage(_url(db)))


def _searcher(db, study_name="s", total_epochs=None):
    import functools

    import optuna

    from search_spaces import get_space
    from tuner.driver.fence.searcher import TruthfulOptunaSearch, make_sampler
    from tuner.driver.study_storage import open_storage
    from tuner.train.cost import Budget, model_cost

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = TruthfulOptunaSearch(
        epoch_budget=2, space=get_space("seed_cnn").for_input(8), metric="m", mode="max",
        total_epochs=total_epochs,
        sampler=make_sampler("tpe", 0), storage=open_storage(_url(db)),
        study_name=study_name, budget=Budget(None, None),
        pricer=functools.partial(model_cost, input_shape=(1, 8, 8), num_classes=10),
    )  # fmt: skip
    searcher.set_search_properties(None, None, {})
    return searcher


def _run(searcher, tune_id, finish=True):
    assert isinstance(searcher.suggest(tune_id), dict)
    for epoch in (1, 2):
        searcher.on_trial_result(tune_id, {"m": 0.1 * epoch, "epoch": epoch})
    if finish:
        searcher.on_trial_complete(tune_id, {"m": 0.2, "epoch": 2})


def _restored(state, db, **resume):
    """The searcher as Tune unpickles it in a resume (tuner_setup.restoring_searcher)."""
    from tuner.driver.fence import searcher as searcher_module
    from tuner.driver.restore_context import RestoreContext, restoring

    with restoring(RestoreContext(study_url=_url(db), **resume)):
        restored = searcher_module.TruthfulOptunaSearch.__new__(
            searcher_module.TruthfulOptunaSearch
        )
        restored.__setstate__(state)
        return restored


def test_a_saved_searcher_keeps_the_running_trials_and_not_the_study(tmp_path, db):
    """Tune saves the searcher every few seconds: the save holds the running trials' Optuna
    Trial objects and the storage's URL, never Optuna's cached copy of the study nor the
    finished trials' objects, so its size does not grow with the study; a restore goes on
    telling the running trial and opens the database where the experiment now is."""
    import pickle

    from optuna.trial import TrialState

    from tuner.driver.fence.internals import cached_storage_class, study_storage

    searcher = _searcher(db)
    for i in range(3):
        _run(searcher, f"t{i}")
    _run(searcher, "running", finish=False)
    small = len(pickle.dumps(searcher.__getstate__()))
    for i in range(3, 23):
        _run(searcher, f"t{i}")
    state = searcher.__getstate__()
    # 20 more finished trials cost their ids only (a Trial object and its params: ~1.3 kB).
    assert len(pickle.dumps(state)) - small < 20 * 200
    moved = tmp_path / f"copied{db.suffix}"
    moved.write_bytes(db.read_bytes())
    restored = _restored(state, moved)
    assert set(restored._ot_trials) == {"running"}
    storage = study_storage(restored.study)
    if db.suffix == ".db":  # Optuna wraps an RDBStorage in its cache
        storage = storage._backend
        assert type(study_storage(restored.study)) is cached_storage_class()
    assert storage.url == _url(moved)
    restored.on_trial_complete("running", {"m": 0.9, "epoch": 2})

    told = _study(moved).trials
    assert [t.state for t in told].count(TrialState.COMPLETE) == 24
    assert max(t.value for t in told) == 0.9
    # The first database was left as it was.
    before = _study(db).trials
    assert [t.state for t in before].count(TrialState.RUNNING) == 1


def test_a_restored_searcher_listens_again_to_a_retried_trial(tmp_path, db):
    """`tuner resume --retry-errored`: the Optuna trial of a finished Tune trial is reopened in
    the database, and the restored searcher (whose save kept only that trial's id) tells its
    new outcome."""
    from optuna.trial import TrialState

    from tuner.driver.fence.recovery import TUNE_TRIAL_ID

    searcher = _searcher(db)
    _run(searcher, "t0")
    assert isinstance(searcher.suggest("t1"), dict)
    searcher.on_trial_complete("t1", None, error=True)
    state = searcher.__getstate__()
    study = _study(db)
    failed = next(t for t in study.trials if t.user_attrs[TUNE_TRIAL_ID] == "t1")
    assert failed.state == TrialState.FAIL
    from tuner.driver.fence.internals import reopen_finished_trials, trial_id

    reopen_finished_trials(_url(db), [trial_id(failed)])  # as recovery.reopen_trials
    restored = _restored(state, db, retry_tune_ids=frozenset({"t1"}))
    assert "t1" in restored._ot_trials and "t1" not in restored._completed_trials
    restored.on_trial_complete("t1", {"m": 0.7, "epoch": 2})
    study = _study(db)
    retried = next(t for t in study.trials if t.user_attrs[TUNE_TRIAL_ID] == "t1")
    assert retried.state == TrialState.COMPLETE and retried.value == 0.7


def test_orphans_from_before_a_crash_are_reused_once_each_then_new_trials_are_asked(tmp_path, db):
    """Two Optuna trials were asked just after Tune's last save, and the driver died: the
    restored searcher hands each to one new Tune trial (their stored params come back), then
    asks Optuna for new ones; no trial is handed out twice or left RUNNING."""
    from optuna.trial import TrialState

    searcher = _searcher(db)
    _run(searcher, "t0")
    state = searcher.__getstate__()  # Tune's last save
    orphaned = [searcher.suggest(f"lost{i}") for i in range(2)]  # then the crash
    restored = _restored(state, db)
    configs = [restored.suggest(f"t{i}") for i in (1, 2, 3)]
    assert configs[:2] == orphaned
    for tune_id in ("t1", "t2", "t3"):
        restored.on_trial_complete(tune_id, {"m": 0.5, "epoch": 2})
    trials = _study(db).trials
    assert len(trials) == 4
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4


def test_a_trial_told_after_the_last_save_is_not_told_again_after_the_restore(tmp_path, db):
    """Tune saved the searcher while "t1" ran; the driver then told Optuna t1's outcome and
    died. Tune restores t1 as running and replays its last result and its completion: the
    restored searcher, checking the database once, tells Optuna nothing twice (Optuna would
    raise), and still tells a trial it starts itself."""
    from optuna.trial import TrialState

    searcher = _searcher(db)
    assert isinstance(searcher.suggest("t1"), dict)
    searcher.on_trial_result("t1", {"m": 0.1, "epoch": 1})
    state = searcher.__getstate__()
    searcher.on_trial_complete("t1", {"m": 0.3, "epoch": 2})
    restored = _restored(state, db)
    restored.on_trial_result("t1", {"m": 0.3, "epoch": 2})
    restored.on_trial_complete("t1", {"m": 0.3, "epoch": 2})
    _run(restored, "t2")
    trials = _study(db).trials
    assert [(t.state, t.value) for t in trials] == [
        (TrialState.COMPLETE, 0.3),
        (TrialState.COMPLETE, 0.2),
    ]
    assert trials[0].intermediate_values == {1: 0.1, 2: 0.3}


def test_the_epoch_budget_starts_trials_until_it_is_spent_and_survives_a_restore(tmp_path, db):
    """With ASHA the budget is epochs (SearchConfig.spends_savings): trials stopped early leave
    theirs to new ones, the searcher says FINISHED once the budget is trained (the running
    ones finish), a save keeps the count, and `tuner resume --samples` raises the budget."""
    from ray.tune.search import Searcher

    searcher = _searcher(db, total_epochs=6)
    for i in range(4):  # four trials stopped at epoch 1: 4 of 6 epochs
        assert isinstance(searcher.suggest(f"s{i}"), dict)
        searcher.on_trial_result(f"s{i}", {"m": 0.1, "epoch": 1})
        searcher.on_trial_complete(f"s{i}", {"m": 0.1, "epoch": 1})
    assert not searcher.spent()
    assert isinstance(searcher.suggest("r"), dict)  # a fifth starts: 2 epochs left
    searcher.on_trial_result("r", {"m": 0.1, "epoch": 1})
    assert isinstance(searcher.suggest("q"), dict)  # 5 of 6: a sixth starts too
    searcher.on_trial_result("r", {"m": 0.2, "epoch": 2})
    searcher.on_trial_result("r", {"m": 0.2, "epoch": 2})  # a retry reports an epoch again
    assert searcher.spent() and searcher.suggest("late") == Searcher.FINISHED
    state = searcher.__getstate__()
    assert _restored(state, db).suggest("late") == Searcher.FINISHED  # the count was saved
    raised = _restored(state, db, total_epochs=12)  # `tuner resume --samples`: twice the budget
    assert not raised.spent() and isinstance(raised.suggest("more"), dict)
    # Without an epoch budget (FIFO, or --max-trials at --samples) the searcher never ends it.
    unlimited = _searcher(tmp_path / f"other{db.suffix}")
    for i in range(4):
        _run(unlimited, f"u{i}")
    assert not unlimited.spent() and isinstance(unlimited.suggest("u4"), dict)


def test_a_searcher_whose_saved_state_cannot_be_read_stops_the_resume_in_one_line(tmp_path, db):
    """Tune 2.60 logs a failed searcher restore and goes on without its state; the resume then
    waited for a trial for ever. The searcher refuses its first use instead, in one line."""

    from tuner.errors import ConfigError

    searcher = _searcher(db)
    _run(searcher, "t0")
    saved = tmp_path / "searcher-state-x.pkl"
    searcher.save(str(saved))
    whole = saved.read_bytes()
    saved.write_bytes(whole[: len(whole) // 2])
    restored = _searcher(db)

    restored.restore(str(saved))  # Tune would log what this raised and go on

    for use in (lambda: restored.suggest("t1"),
                lambda: restored.on_trial_result("t0", {"m": 0.1, "epoch": 1}),
                lambda: restored.on_trial_complete("t0", {"m": 0.1, "epoch": 1})):  # fmt: skip
        with pytest.raises(ConfigError) as refused:
            use()
        message = str(refused.value)
        assert message.startswith("cannot resume: Tune's saved searcher state searcher-state-x.pkl")
        assert "\n" not in message and "truncated" in message
    saved.write_bytes(whole)  # the whole file restores as before
    again = _searcher(db)
    again.restore(str(saved))
    assert isinstance(again.suggest("t1"), dict)
