"""The experiment directory is claimed with one os.mkdir: of two searches given the same --name
at once, the one that comes second says so in one line and leaves the winner's files alone.
Without Ray: tests/e2e/test_same_name.py races two real searches."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tuner.config.search_config import SearchConfig, claim_experiment_dir
from tuner.errors import ConfigError


def test_the_claim_is_one_mkdir_that_fails_when_the_directory_exists(tmp_path):
    exp = tmp_path / "out" / "same"
    claim_experiment_dir(exp)  # makes --out as needed
    assert exp.is_dir() and list(exp.iterdir()) == []
    (exp / "trials.csv").write_text("the winner's\n")
    with pytest.raises(ConfigError, match="another search is using this name") as err:
        claim_experiment_dir(exp)
    assert "\n" not in str(err.value) and str(exp) in str(err.value)
    assert (exp / "trials.csv").read_text() == "the winner's\n"


def test_a_search_that_loses_the_name_leaves_the_winners_directory_alone(tmp_path, monkeypatch):
    """The other search makes the directory after this one's validate() and before its claim:
    ConfigError (exit 2 in the CLI), and nothing of the winner's removed or changed."""
    from tuner.driver import run

    cfg = SearchConfig(dataset="digits", samples=1, epochs=1, no_confirm=True,
                       out=str(tmp_path), name="same")  # fmt: skip
    exp = cfg.experiment_dir
    winner: dict[str, str] = {"provenance.json": "{}\n", "trials.csv": "trial\n"}

    def the_other_search_wins(*args: object) -> None:  # runs just before the claim
        exp.mkdir()
        for name, text in winner.items():
            (exp / name).write_text(text)

    def no_ray(cfg: SearchConfig, stream: object, prepare, timings: object):
        return prepare(), False

    monkeypatch.setattr(run, "warn_if_short_of_space", the_other_search_wins)
    monkeypatch.setattr(run, "while_ray_starts", no_ray)
    with pytest.raises(ConfigError) as err:
        run.search(cfg, stream=io.StringIO())
    assert str(err.value) == (
        f"experiment {exp} already exists (another search is using this name); choose another "
        "--name"
    )
    assert {p.name: p.read_text() for p in Path(exp).iterdir()} == winner


def test_a_search_refused_after_its_claim_removes_only_its_own_directory(tmp_path, monkeypatch):
    from tuner.driver import run

    cfg = SearchConfig(dataset="digits", samples=1, epochs=1, no_confirm=True,
                       out=str(tmp_path), name="mine")  # fmt: skip
    (tmp_path / "other").mkdir()

    def refused(cfg: SearchConfig) -> None:  # after provenance.json is written
        assert (cfg.experiment_dir / "provenance.json").is_file()
        raise ConfigError("refused")

    monkeypatch.setattr(run, "open_study_storage", refused)
    monkeypatch.setattr(run, "while_ray_starts", lambda c, s, prepare, t: (prepare(), False))
    with pytest.raises(ConfigError, match="refused"):
        run.search(cfg, stream=io.StringIO())
    assert [p.name for p in tmp_path.iterdir()] == ["other"]
