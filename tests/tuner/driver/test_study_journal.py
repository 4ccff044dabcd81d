"""optuna.journal, the study of a new experiment (tuner.driver.study_storage): a write cut
short by a kill or a full disk leaves a last line without its newline; the next writer cuts it
off under Optuna's lock, so the file goes on reading. No Ray."""

from __future__ import annotations

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

from tuner.driver.study_storage import journal_class, open_storage
from tuner.experiment import study_url


def test_a_torn_last_line_is_cut_before_the_next_write(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = study_url(tmp_path)
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    study.tell(study.ask(), 1.0)
    journal = tmp_path / "optuna.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 4, "worker_id": "cut-')  # the kill, mid-line
    again = optuna.load_study(storage=open_storage(url), study_name="s")
    again.tell(again.ask(), 2.0)
    assert journal.read_bytes().startswith(whole) and b"cut-" not in journal.read_bytes()
    plain = JournalStorage(JournalFileBackend(str(journal)))  # Optuna's own reader
    values = [t.value for t in optuna.load_study(storage=plain, study_name="s").trials]
    assert values == [1.0, 2.0]


def test_the_journal_remembers_where_it_is(tmp_path):
    url = study_url(tmp_path)
    storage = open_storage(url)
    assert isinstance(storage, journal_class()) and storage.url == url
    assert url == f"journal://{tmp_path / 'optuna.journal'}"


def _fsyncs_of(path, monkeypatch):
    """Every os.fsync of `path` from here on, as the list it appends to."""
    import os

    seen: list[int] = []
    real = os.fsync

    def fsync(fd):
        if os.path.samefile(f"/proc/self/fd/{fd}", path):
            seen.append(fd)
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_a_trials_tune_id_and_outcome_are_fsynced_and_every_line_is_written(tmp_path, monkeypatch):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = study_url(tmp_path)
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    journal = tmp_path / "optuna.journal"
    fsyncs = _fsyncs_of(journal, monkeypatch)
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_categorical("k", [4, 8])
    assert fsyncs == []  # created, its parameters drawn: written, not fsynced
    trial.set_user_attr("tune_trial_id", "abc")  # handed to Tune: fsynced, with all before it
    assert len(fsyncs) == 1
    trial.report(0.25, 1)
    trial.report(0.5, 2)
    assert len(fsyncs) == 1
    study.tell(trial, 0.75)  # the outcome
    assert len(fsyncs) == 2
    plain = JournalStorage(JournalFileBackend(str(journal)))  # Optuna's own reader
    (back,) = optuna.load_study(storage=plain, study_name="s").trials
    assert back.params["x"] == x and back.params["k"] in (4, 8)
    assert back.intermediate_values == {1: 0.25, 2: 0.5}
    assert back.user_attrs == {"tune_trial_id": "abc"} and back.value == 0.75


def test_a_torn_last_line_is_cut_before_an_unsynced_write_too(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = study_url(tmp_path)
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    trial = study.ask()
    journal = tmp_path / "optuna.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "cut-')
    trial.report(0.5, 1)  # a line that is not fsynced, under the same lock
    assert journal.read_bytes().startswith(whole) and b"cut-" not in journal.read_bytes()
    plain = JournalStorage(JournalFileBackend(str(journal)))
    (back,) = optuna.load_study(storage=plain, study_name="s").trials
    assert back.intermediate_values == {1: 0.5}


def test_the_unsynced_operations_are_checked_against_optunas_numbers(monkeypatch):
    from tuner.driver.fence import internals, journal

    assert journal.check() == []
    monkeypatch.setitem(journal.UNSYNCED_OPS, "SET_TRIAL_PARAM", 6)
    assert any("SET_TRIAL_PARAM 5, not 6" in p for p in internals.check())
