"""`--storage URL`: the search's Optuna study on a database server (PostgreSQL, MySQL, any URL
Optuna's RDBStorage takes) instead of optuna.db in the experiment directory, so that a team's
searches share one database and one optuna-dashboard shows them all.

The URL is recorded in provenance.json and search.toml as given, so it must not hold a
password: the driver's libpq (PostgreSQL) reads PGPASSWORD or ~/.pgpass (PGPASSFILE), as
psql does. Everything here is checked before Ray starts, each failure one line (exit 2): a URL
that is not one, a password in it, a database kind SQLAlchemy does not know or whose driver is
not installed, a server that does not answer within 10 s, refused credentials,
and a new search whose name another experiment's study already has on that server.
"""

from __future__ import annotations

from typing import Any

from tuner.config.storage_url import parse_storage
from tuner.errors import ConfigError
from tuner.experiment import study_engine_kwargs


def engine_kwargs(url: str) -> dict[str, Any]:
    """What Optuna's RDBStorage (and the checks here) pass to SQLAlchemy's create_engine
    (tuner.experiment.study_engine_kwargs), for a URL parse_storage accepts (optuna.db's own
    URL is not parsed: its path is the experiment's, not the user's)."""
    if not url.startswith("sqlite"):
        parse_storage(url)
    return study_engine_kwargs(url)


def check_storage(url: str, study_name: str | None) -> None:
    """Connect once (ConfigError, one line, when the server does not answer or refuses the
    credentials). With `study_name` (a new search), refuse a name the server already holds: the
    search would add its trials to another experiment's study."""
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    parse_storage(url)
    engine = sqlalchemy.create_engine(url, **engine_kwargs(url))
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as e:
        raise ConfigError(f"--storage {url}: cannot connect: {_first_line(e)}") from None
    finally:
        engine.dispose()
    if study_name is None:
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    try:
        names = set(optuna.get_all_study_names(storage=storage))  # names only: one query
    finally:
        storage.engine.dispose()
    if study_name in names:
        raise ConfigError(
            f"--storage {url} already holds a study named {study_name!r} (another "
            "experiment's): give this search another --name"
        )


def open_storage(url: str) -> Any:
    """Optuna's RDBStorage at `url` (optuna.db's sqlite URL, or a --storage server's)."""
    import optuna

    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url) or None)


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return " ".join(text.split())[:300]


class StudyServerLost(OSError):
    """The --storage server stopped answering mid-search; the message is one line for the
    user. Like a full disk: the search stops, keeps what it has, and resumes once it is back."""


def server_lost(error: BaseException) -> BaseException | None:
    """The database error behind `error` (itself, or what caused it, as far down as Tune's and
    Optuna's wrappers go), when it says that the connection failed or the server went away:
    SQLAlchemy's OperationalError or InterfaceError (psycopg's "server closed the connection",
    "connection refused"). None for any other error."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OperationalError, InterfaceError)):
            return current
        current = current.__cause__ or current.__context__
    return None


def server_lost_error(url: str, exp: Any, cause: BaseException) -> StudyServerLost:
    return StudyServerLost(
        f"lost the study's database at {url} ({_first_line(cause)}): the search stopped and "
        f"kept what it had; run `tuner resume {exp}` once the server answers again"
    )
