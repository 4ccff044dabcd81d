"""An experiment file end to end: a search from a TOML file keeps its resolved options as
search.toml, and that file, run again under another name, proposes the same configurations."""

from __future__ import annotations

import json

import pytest
from cli_fixture import run_here, tail

from tuner.config.search_config import SearchConfig

pytestmark = pytest.mark.slow


def _configs(exp):
    return {
        d.name.split("_")[1]: json.loads((d / "params.json").read_text())
        for d in sorted(exp.glob("trial_*"))
    }


def test_the_resolved_file_reruns_the_same_search(tmp_path, shared_ray):
    first_file = tmp_path / "search.yaml"
    first_file.write_text(
        f"out: {tmp_path}\nname: first\nsamples: 4\nepochs: 1\nscheduler: fifo\nseed: 11\n"
        "no-confirm: true\nconcurrency: 2\n"
    )
    first = run_here("search", "--config", str(first_file), "--max-params", "400k")
    assert first.returncode == 0, tail(first.stdout) + tail(first.stderr)
    exp = tmp_path / "first"
    resolved = exp / "search.toml"
    cfg = SearchConfig.from_file(resolved)
    assert (cfg.samples, cfg.epochs, cfg.seed, cfg.max_params, cfg.name) == (
        4, 1, 11, 400_000, "first")  # fmt: skip
    again = run_here("search", "--config", str(resolved), "--name", "again")
    assert again.returncode == 0, tail(again.stdout) + tail(again.stderr)
    # TPE's first trials are its seeded start-up draws: the same seed proposes the same ones.
    assert _configs(tmp_path / "again") == _configs(exp)
    assert len(_configs(exp)) == 4
    # The same name again is refused in one line, and nothing is written.
    same = run_here("search", "--config", str(resolved))
    assert same.returncode == 2 and "already exists" in same.stderr
    assert len(same.stderr.strip().splitlines()) == 1
