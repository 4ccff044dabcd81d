"""Where an experiment's Optuna study is (tuner.experiment.study_url): optuna.journal inside
the directory (optuna.db in an older experiment's), wherever it was moved, or the --storage
server its provenance.json records."""

from __future__ import annotations

import json

import pytest

from tuner.errors import ConfigError
from tuner.experiment import has_study, journal_path, recorded_storage, study_url


def test_a_journal_in_the_directory_unless_a_server_is_recorded(tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    url = study_url(exp)
    assert url == f"journal://{exp / 'optuna.journal'}" and not has_study(exp)
    assert journal_path(url) == exp / "optuna.journal"
    (exp / "optuna.journal").write_bytes(b"")
    assert has_study(exp) and recorded_storage(exp) is None
    server = "postgresql://tuner@db:5432/studies"
    (exp / "provenance.json").write_text(json.dumps({"config": {"storage": server}}))
    assert (study_url(exp), recorded_storage(exp)) == (server, server)
    assert journal_path(server) is None


def test_an_older_experiment_keeps_its_sqlite_study(tmp_path):
    """Made before 2026-12-07: optuna.db is its study, found wherever the directory moved."""
    exp = tmp_path / "moved"
    exp.mkdir()
    (exp / "optuna.db").write_bytes(b"")
    assert study_url(exp) == f"sqlite:///{exp / 'optuna.db'}" and has_study(exp)
    assert journal_path(study_url(exp)) is None
    server = "postgresql://tuner@db:5432/studies"
    (exp / "provenance.json").write_text(json.dumps({"config": {"storage": server}}))
    assert (study_url(exp), recorded_storage(exp)) == (server, server)


@pytest.mark.parametrize(
    "url, says",
    [
        ("postgresql://me:pw@db/studies", "must not hold a password"),
        ("nosuch://db/studies", "SQLAlchemy knows no database 'nosuch'"),
        ("sqlite://", "needs a file"),
        ("::", "is not a database URL"),
    ],
)
def test_a_storage_url_that_cannot_be_used_is_one_line(url, says):
    from tuner.config.search_config import SearchConfig

    with pytest.raises(ConfigError, match=says) as info:
        SearchConfig(storage=url).validate()
    assert "\n" not in str(info.value)


def test_a_lost_server_is_told_from_other_errors_however_deep_it_is_wrapped():
    from sqlalchemy.exc import OperationalError

    from tuner.driver.study_storage import server_lost, server_lost_error

    class Gone(Exception):  # what psycopg raised, as SQLAlchemy keeps it in .orig
        pass

    db_error = OperationalError("COMMIT", {}, Gone("server closed the connection unexpectedly"))
    try:
        try:
            raise db_error
        except OperationalError as e:
            raise RuntimeError("Tune: a callback failed") from e
    except RuntimeError as wrapped:
        assert server_lost(wrapped) is db_error
    assert server_lost(ValueError("a bad value")) is None
    message = str(server_lost_error("postgresql://u@db:5432/s", "/x/exp", db_error))
    assert message == (
        "lost the study's database at postgresql://u@db:5432/s (server closed the connection "
        "unexpectedly): the search stopped and kept what it had; run `tuner resume /x/exp` once "
        "the server answers again"
    )
