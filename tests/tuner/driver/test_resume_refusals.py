"""`tuner resume` (and `tuner confirm`, which continues an experiment the same way) refuses, in
one line with exit 2, a directory or a pickle in it that users other than its owner can write
to, or that belongs to another user (README, "Security"), and changes nothing there. The
refusal comes before Ray is imported; these tests would fail at Ray's start if it did not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from analysis_fixture import write_experiment

from tuner.cli import main
from tuner.stages.preflight import refuse_writable_by_others

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    """A finished experiment, as far as a resume reads it before Ray: provenance.json and
    Ray's tuner.pkl (and a searcher state pickle), writable by their owner alone."""
    exp = write_experiment(tmp_path / "exp", trials=4, epochs=3)
    (exp / "tuner.pkl").write_bytes(b"\x80\x04N.")  # pickle of None
    (exp / "searcher-state-2026-12-01_10-00-00.pkl").write_bytes(b"\x80\x04N.")
    for path in [exp, *exp.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    refuse_writable_by_others(exp)  # as it is: accepted
    return exp


def _snapshot(exp: Path) -> dict[str, tuple]:
    files = {}
    for path in [exp, *sorted(exp.rglob("*"))]:
        st = path.lstat()
        content = path.read_bytes() if path.is_file() else None
        files[str(path.relative_to(exp))] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
                                             content)  # fmt: skip
    return files


def _refused(exp: Path, capsys, needle: str) -> None:
    before = _snapshot(exp)
    for command in ("resume", "confirm"):
        assert main([command, str(exp)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith(f"tuner: error: refusing to resume {exp.resolve()}: ")
        assert needle in err
        assert _snapshot(exp) == before  # nothing changed, not even provenance.json's resumes


@pytest.mark.parametrize("name", [".", "tuner.pkl", "searcher-state-2026-12-01_10-00-00.pkl"])
def test_writable_by_others_is_refused(exp, capsys, name):
    target = exp / name
    target.chmod(target.stat().st_mode | 0o002)  # chmod o+w
    shown = exp.name if name == "." else name
    _refused(exp, capsys, f"{shown} is writable by other users (mode")


@as_root
def test_writable_by_a_shared_group_is_refused(exp, capsys):
    pkl = exp / "tuner.pkl"
    os.chown(pkl, 0, NOBODY)  # nogroup: not the owner's private group
    pkl.chmod(0o664)
    _refused(exp, capsys, "tuner.pkl is writable by other users (mode 664)")


@as_root
@pytest.mark.parametrize("name", [".", "tuner.pkl"])
def test_owned_by_another_user_is_refused(exp, capsys, name):
    target = exp / name
    os.chown(target, NOBODY, NOBODY)
    shown = exp.name if name == "." else name
    _refused(exp, capsys, f"{shown} belongs to another user (uid {NOBODY})")
