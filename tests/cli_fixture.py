"""Child processes of the end-to-end tests: the CLI run to its end, or started and watched
through a log file (never a pipe nobody reads while the child runs: past 64 KiB of output a
child blocks on it). A child that hangs fails its test with the child's output, inside
pytest's own limit per test."""

from __future__ import annotations

import atexit
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

# Under pytest's 600 s per test (pyproject.toml): a hung child is ended here and its output
# reaches the report, before pytest-timeout ends the whole test with only a stack dump.
CHILD_TIMEOUT_S = 480


def tuner(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuner.cli", *args]


def tail(text: str | bytes | None, chars: int = 3000) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return (text or "")[-chars:]


def run(command: Sequence[str], *, timeout: float = CHILD_TIMEOUT_S,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """subprocess.run with stdout and stderr captured as text; a child still running after
    `timeout` is killed and the test fails with what it had printed."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"{' '.join(map(str, command))} ran past {timeout:.0f} s\n--- its stdout:\n"
            f"{tail(e.stdout)}\n--- its stderr:\n{tail(e.stderr)}",
            pytrace=False,
        )


def run_here(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`tuner ARGS` run in this process, like run(tuner(*args)): the CLI's own code from its
    argument parsing to its exit code, on the Ray the test started (the shared_ray fixture),
    without a new interpreter and a new Ray for each command. Not for what only a process
    shows: signals, or Ray's own start-up. `cwd`: where relative paths start, for the span."""
    import contextlib
    import io

    from tuner.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's refusals
            code = e.code if isinstance(e.code, int) else 2
    return subprocess.CompletedProcess(["tuner", *args], code, out.getvalue(), err.getvalue())


class Child:
    """A started child whose stdout and stderr go to `log`; killed when the test fails on
    it, and at the latest when pytest exits."""

    def __init__(self, command: Sequence[str], log: Path, **kwargs: Any) -> None:
        self.command = [str(c) for c in command]
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                         **kwargs)  # fmt: skip
        atexit.register(self.kill)  # a test ended by pytest-timeout leaves no child behind

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _fail(self, why: str) -> None:
        self.kill()
        pytest.fail(f"{' '.join(self.command)}: {why}\n--- its output:\n{tail(self.output())}",
                    pytrace=False)  # fmt: skip

    def wait_for(self, condition: Callable[[], bool], what: str,
                 timeout: float = CHILD_TIMEOUT_S) -> None:  # fmt: skip
        """Until `condition` holds (an event on disk or in the log). Fails the test when the
        child ends first, or when `timeout` passes (that only ends a test whose event never
        comes)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None and not condition():
                self._fail(f"ended with {self.proc.returncode} before {what}")
            if time.monotonic() > deadline:
                self._fail(f"no {what} in {timeout:.0f} s")
            time.sleep(0.05)

    def wait_for_output(self, text: str, timeout: float = CHILD_TIMEOUT_S) -> None:
        self.wait_for(lambda: text in self.output(), repr(text), timeout)

    def wait(self, timeout: float = CHILD_TIMEOUT_S) -> int:
        """The child's exit code; fails the test with its output if it runs past `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._fail(f"still running after {timeout:.0f} s")
            raise  # not reached: _fail raises

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
