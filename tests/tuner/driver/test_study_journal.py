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
