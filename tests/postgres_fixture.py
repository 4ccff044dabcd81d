"""A real PostgreSQL server for a test session: Debian's initdb and postgres binaries, a data
directory in a temporary folder, listening on 127.0.0.1 only at a free port, run as the
`postgres` user (PostgreSQL refuses root), stopped by its process id however the session ends.

Password authentication over TCP (scram-sha-256), as a team's server would have it: the tests'
user `tuner` logs in with PASSWORD, given to the search through PGPASSWORD (libpq reads it), never
in the URL.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD, DATABASE = "tuner", "s3cret-test-only", "studies"


@dataclass
class PostgresServer:
    port: int
    process: subprocess.Popen
    bin_dir: Path
    data: Path
    sockets: Path
    log: Path

    def kill(self) -> None:
        """The server lost: SIGKILL to the postmaster and its backends (its session)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def start(self) -> None:
        """Start it (again) on its data directory and port; returns once it accepts
        connections (after the crash recovery a kill left it)."""
        ready = self.log.read_text().count("ready to accept connections")
        with open(self.log, "a") as out:
            self.process = _as_postgres(
                [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-k", str(self.sockets), "-c", "listen_addresses=127.0.0.1"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        # Ready once the server says so in its log (an event, not a guess at a delay).
        deadline = time.monotonic() + 120
        while self.log.read_text().count("ready to accept connections") == ready:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def url(self, database: str = DATABASE) -> str:
        """The --storage URL: user, host and port, no password."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def env(self, password: str = PASSWORD) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": password}


def binaries() -> Path | None:
    """Debian's server binaries (not on PATH): /usr/lib/postgresql/<version>/bin."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(["runuser", "-u", "postgres", "--", *args], **kwargs)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = binaries()
    assert bin_dir is not None, "PostgreSQL's server is not installed (.ci/run installs it)"
    root = Path(tempfile.mkdtemp(prefix="pg-test-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    shutil.chown(root, "postgres")
    for path in (sockets, pwfile):
        shutil.chown(path, "postgres")
    server = None
    try:
        init = _as_postgres(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
             "--auth-host=scram-sha-256", f"--pwfile={pwfile}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _, err = init.communicate(timeout=120)
        assert init.returncode == 0, err
        port = _free_port()
        log.touch()
        shutil.chown(log, "postgres")
        server = PostgresServer(port, None, bin_dir, data, sockets, log)  # type: ignore[arg-type]
        server.start()
        sql = f"CREATE USER {USER} PASSWORD '{PASSWORD}'; "
        for statement in (sql, f"CREATE DATABASE {DATABASE} OWNER {USER}",
                          f"CREATE DATABASE second OWNER {USER}"):  # fmt: skip
            psql = _as_postgres(
                [str(bin_dir / "psql") if (bin_dir / "psql").exists() else "psql", "-h",
                 str(sockets), "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1",
                 "-c", statement],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            _, err = psql.communicate(timeout=60)
            assert psql.returncode == 0, err
        yield server
    finally:
        process = server.process if server is not None else None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # a fast shutdown, by its process id
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(root, ignore_errors=True)
