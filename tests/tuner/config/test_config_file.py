"""Experiment files (`tuner search --config`): every option by name, flags win over the file,
the resolved search.toml reads back to the same config, and bad keys or values are one line."""

from __future__ import annotations

import pytest

from tuner.cli import build_parser, config_from_args, main
from tuner.config.config_file import read_config_file
from tuner.config.search_config import SearchConfig
from tuner.errors import ConfigError


def _args(argv):
    """What main() does for `tuner search`: the file's values as defaults, then the flags."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        args.search_parser.set_defaults(**read_config_file(args.config, SearchConfig.options()))
        args = parser.parse_args(argv)
    return config_from_args(args)


def test_a_toml_file_sets_any_option_and_flags_win(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'space = "resnet_cnn"\ndataset = "cifar10"\nsamples = 30\nmax-macs = "50M"\n'
        'time_budget = "15m"\ngpus_per_trial = 0.25\nno_confirm = true\nseed = 7\n'
        'objectives = "val_acc:max,params:min"\n'
    )
    cfg = _args(["search", "--config", str(path), "--samples", "5"])
    assert (cfg.space, cfg.dataset, cfg.samples, cfg.max_macs) == (
        "resnet_cnn", "cifar10", 5, 50_000_000)  # fmt: skip
    assert (cfg.time_budget, cfg.gpus_per_trial, cfg.no_confirm, cfg.seed) == (900.0, 0.25, True, 7)
    assert cfg.objectives == "val_acc:max,params:min"
    assert cfg.epochs == SearchConfig().epochs  # what neither gives keeps its default


def test_a_yaml_file_reads_the_same(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("samples: 12\nmax_params: 250k\nscheduler: fifo\nverbose: true\n")
    cfg = _args(["search", "--config", str(path)])
    assert (cfg.samples, cfg.max_params, cfg.scheduler, cfg.verbose) == (12, 250_000, "fifo", True)
    assert SearchConfig.from_file(path, samples=3).samples == 3


def test_the_resolved_file_reads_back_to_the_same_config(tmp_path):
    cfg = SearchConfig(space="resnet_cnn", samples=9, epochs=4, max_params=123_456, seed=3,
                       time_budget=90.0, checkpoint_interval=10.0, name="x", out="o",
                       gpus_per_trial=0.5, no_confirm=True)  # fmt: skip
    path = tmp_path / "search.toml"
    path.write_text(cfg.to_toml())
    assert SearchConfig.from_file(path) == cfg


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("sampels = 3\n", ["unknown option 'sampels'", "did you mean 'samples'"]),
        ('max-param = "1M"\n', ["unknown option 'max-param'", "'max-params'"]),
        ("samples = 0\n", ["samples", ">= 1"]),
        ('scheduler = "hyperband"\n', ["scheduler", "asha, fifo"]),
        ('no_confirm = "yes"\n', ["no_confirm must be true or false"]),
        ("samples = [\n", ["cannot parse it"]),
    ],
)
def test_bad_files_are_one_line_and_exit_2(tmp_path, capsys, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        read_config_file(path, SearchConfig.options())
    out = tmp_path / "out"
    assert main(["search", "--config", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert not out.exists()


def test_a_missing_or_foreign_file_is_one_line(tmp_path, capsys):
    assert main(["search", "--config", str(tmp_path / "none.toml")]) == 2
    assert "none.toml" in capsys.readouterr().err
    other = tmp_path / "x.json"
    other.write_text("{}")
    assert main(["search", "--config", str(other)]) == 2
    assert ".toml or .yaml" in capsys.readouterr().err
