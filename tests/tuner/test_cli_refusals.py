"""Names and folders the filesystem or a classifier cannot take: one line, exit 2, Ray never
imported and nothing written (the rule of tests/tuner/test_cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tuner.cli import main
from tuner.config.search_config import PATH_ROOM

RUN = """
import sys
from tuner.cli import main
rc = main(sys.argv[1:])
print("RAY_IMPORTED" if "ray" in sys.modules else "RAY_NOT_IMPORTED")
sys.exit(rc)
"""


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN, *args], cwd=cwd, capture_output=True, text=True,
        timeout=120, env={**os.environ},
    )  # fmt: skip


def one_line(err: str, needle: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tuner: error: ") and needle in lines[0], lines[0]
    return lines[0]


def test_a_name_too_long_for_the_filesystem_is_one_line(tmp_path):
    """Was OSError [Errno 36] File name too long, with two tracebacks."""
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("search", "--out", str(out), "--name", "a" * 300, "--samples", "1",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    one_line(proc.stderr, "--name: the name 'aaaa")
    assert "is 300 bytes long" in proc.stderr and "at most 255 bytes" in proc.stderr
    assert "RAY_NOT_IMPORTED" in proc.stdout
    assert list(out.iterdir()) == []


def test_a_name_at_the_limit_is_accepted(tmp_path):
    from tuner import SearchConfig

    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    SearchConfig(out=str(tmp_path), name="a" * limit).validate()


@pytest.mark.parametrize("case", ["out folder too long", "path too long", "out is a file"])
def test_out_paths_the_filesystem_cannot_take(tmp_path, capsys, case):
    if case == "out folder too long":  # one new folder of --out over NAME_MAX
        out, needle = tmp_path / ("b" * 256) / "c", "--out: the name 'bbbb"
    elif case == "path too long":  # every part fits, the whole path (and its trials) does not
        parts = (os.pathconf(tmp_path, "PC_PATH_MAX") - PATH_ROOM) // 200 + 1
        out, needle = tmp_path.joinpath(*["d" * 199] * parts), "the trial files inside it need"
    else:
        (tmp_path / "file").write_text("not a folder")
        out, needle = tmp_path / "file" / "sub", "is not a directory"
    before = sorted(tmp_path.iterdir())
    assert main(["search", "--out", str(out), "--name", "x", "--samples", "1"]) == 2
    one_line(capsys.readouterr().err, needle)
    assert sorted(tmp_path.iterdir()) == before


def test_train_refuses_a_name_too_long_too(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"n_blocks": 1, "channels_b0": 8, "lr": 0.1, "epochs": 1}))
    out = tmp_path / "out"
    assert main(["train", str(config), "--out", str(out), "--name", "t" * 256]) == 2
    one_line(capsys.readouterr().err, "is 256 bytes long")
    assert not out.exists()


def _pngs(folder: Path) -> None:
    folder.mkdir(parents=True)
    for k in range(4):
        Image.fromarray(np.full((8, 8, 3), 10 * k, dtype=np.uint8)).save(folder / f"{k}.png")


@pytest.mark.parametrize("layout", ["one class", "train/test"])
def test_an_image_folder_of_one_class_is_refused_before_ray(tmp_path, layout):
    """Was a search run to "100 %": every trial scores perfectly on a single class."""
    tree = tmp_path / "tree"
    if layout == "one class":
        _pngs(tree / "cat")
    else:
        _pngs(tree / "train" / "cat")
        _pngs(tree / "test" / "cat")
    out = tmp_path / "out"
    proc = run_cli("search", "--dataset", "imagefolder", "--data-dir", str(tree), "--out",
                   str(out), "--samples", "1", "--epochs", "1", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr, "1 class folder (cat): a classifier needs at least 2 class")
    assert str(tree) in line
    assert "RAY_NOT_IMPORTED" in proc.stdout
    assert not out.exists()


def test_resume_of_a_search_that_tune_never_saved_is_refused(tmp_path):
    """A driver stopped in its first seconds, before Tune first saved its state (or with that
    first save cut short and set aside): Tune would start a new experiment over the old files
    and end as if interrupted. One line instead, and the directory as it was."""
    exp = tmp_path / "early"
    (exp / "trial_0000_abc").mkdir(parents=True)
    (exp / "trial_0000_abc" / "params.json").write_text('{"lr": 0.1}')
    (exp / "provenance.json").write_text(json.dumps({"config": {"samples": 4, "epochs": 2}}))
    (exp / "tuner.pkl").write_bytes(b"not read: refused before it")
    before = {p: p.read_bytes() for p in exp.rglob("*") if p.is_file()}
    done = run_cli("resume", str(exp), cwd=tmp_path)
    assert done.returncode == 2
    line = one_line(done.stderr, "holds no saved state of Ray Tune")
    assert f"tuner search --config {exp / 'search.toml'} --name NEW_NAME" in line
    assert {p: p.read_bytes() for p in exp.rglob("*") if p.is_file()} == before
    assert "RAY_NOT_IMPORTED" in done.stdout
