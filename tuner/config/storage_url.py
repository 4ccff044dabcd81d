"""`--storage URL` read as SQLAlchemy reads it, and refused in one line where it cannot be
used (not a URL, a password in it, a database kind SQLAlchemy does not know or whose driver is
not installed). Checked with the rest of the config, before anything connects; the server
itself is tried by tuner/driver/study_storage.py."""

from __future__ import annotations

from typing import Any

from tuner.errors import ConfigError

_DRIVERS = {"postgresql": 'pip install "psycopg[binary]"', "mysql": "pip install pymysql"}


def parse_storage(url: str) -> Any:
    """The URL as SQLAlchemy reads it; ConfigError (one line) for one that cannot be used."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"--storage {url!r} is not a database URL (e.g. postgresql://user@host:5432/db)"
        ) from None
    if parsed.password is not None:
        raise ConfigError(
            "--storage must not hold a password (it is recorded in the experiment): leave it "
            "out of the URL and set PGPASSWORD, or put it in ~/.pgpass (PostgreSQL)"
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError("--storage sqlite:// needs a file: sqlite:////path/to/studies.db")
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise ConfigError(
            f"--storage {url}: SQLAlchemy knows no database {parsed.drivername!r} "
            "(postgresql://, mysql://, sqlite:///...)"
        ) from None
    except ImportError as e:
        hint = _DRIVERS.get(parsed.get_backend_name(), "install its Python driver")
        raise ConfigError(f"--storage {url}: its driver is not installed ({e}); {hint}") from None
    return parsed
