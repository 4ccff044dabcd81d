"""Where the search's Optuna study is kept, and opening it.

By default the study is optuna.journal in the experiment directory: Optuna's JournalStorage,
an append-only file of operations that every reader replays (StudyJournal below). An experiment
made before 2026-12-07 keeps its SQLite optuna.db. `--storage URL` puts the study on a database
server instead (PostgreSQL, MySQL, any URL Optuna's RDBStorage takes), so that a team's
searches share one database and one optuna-dashboard shows them all.

The URL is recorded in provenance.json and search.toml as given, so it must not hold a
password: the driver's libpq (PostgreSQL) reads PGPASSWORD or ~/.pgpass (PGPASSFILE), as
psql does. Everything here is checked before Ray starts, each failure one line (exit 2): a URL
that is not one, a password in it, a database kind SQLAlchemy does not know or whose driver is
not installed, a server that does not answer within 10 s, refused credentials,
and a new search whose name another experiment's study already has on that server.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from tuner.config.storage_url import parse_storage
from tuner.errors import ConfigError
from tuner.experiment import JOURNAL_SCHEME, journal_path, study_engine_kwargs


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
    """The study's storage at `url` (tuner.experiment.study_url): a StudyJournal for
    optuna.journal, Optuna's RDBStorage for optuna.db's sqlite URL or a --storage server's."""
    path = journal_path(url)
    if path is not None:
        return journal_class()(path)
    import optuna

    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url) or None)


@functools.cache
def _lock_class() -> type:
    from optuna.storages.journal import JournalFileSymlinkLock

    class TailRepairingLock(JournalFileSymlinkLock):
        """Optuna's symlink lock (the one optuna-dashboard takes too), which, once held, cuts
        off a last line left without its newline: a write cut short by a SIGKILL or a full
        disk. Optuna's reader skips such a line while it is last, but the next write would
        be appended to it, and the file would no longer read ("Invalid log format")."""

        def __init__(self, filepath: str) -> None:
            super().__init__(filepath)
            self.target = filepath

        def acquire(self) -> bool:
            held = super().acquire()
            if held:
                _cut_torn_tail(self.target)
            return held

    return TailRepairingLock


def journal_lock(path: str | Path) -> Any:
    """The lock every writer of optuna.journal takes (acquire / release)."""
    return _lock_class()(str(path))


@functools.cache
def journal_class() -> type:
    """StudyJournal: Optuna's JournalStorage on optuna.journal (built on first use, so that
    importing this module imports no Optuna: `tuner --help` stays light)."""
    from optuna.storages.journal import JournalStorage

    from tuner.driver.fence.journal import backend

    class StudyJournal(JournalStorage):
        """Optuna's JournalStorage on the experiment's optuna.journal, remembering its
        study_url (`url`): the searcher is pickled with the URL, not the storage."""

        def __init__(self, path: str | Path) -> None:
            self.url = f"{JOURNAL_SCHEME}{Path(path).absolute()}"
            super().__init__(backend(str(path), journal_lock(path)))

    return StudyJournal


def _cut_torn_tail(path: str) -> None:
    """Truncate `path` after its last newline when its last byte is not one."""
    try:  # the common case, a whole last line, in three system calls: this runs at every write
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
    finally:
        os.close(fd)
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            keep = 0
            step = 1 << 16
            end = size
            while end > 0:  # the last newline, read backwards a block at a time
                start = max(0, end - step)
                f.seek(start)
                block = f.read(end - start)
                at = block.rfind(b"\n")
                if at >= 0:
                    keep = start + at + 1
                    break
                end = start
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    except FileNotFoundError:
        return


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
