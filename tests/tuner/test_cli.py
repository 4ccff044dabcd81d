"""Bad input: one line on stderr, exit code 2, and Ray never started (nor even imported)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuner import SearchConfig
from tuner.cli import build_parser

RUN = """
import sys
from tuner.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:  # argparse's own errors exit from inside main
    rc = e.code
print("RAY_IMPORTED" if "ray" in sys.modules else "RAY_NOT_IMPORTED")
sys.exit(rc)
"""


# Every case of the bad-input table in one child (a Python start-up with torch is 2-3 s of
# CI's time a case): each case's exit code and stderr, and whether Ray was imported by then.
RUN_CASES = """
import contextlib, io, json, sys
from tuner.cli import main
results = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(args)
        except SystemExit as e:  # argparse's own errors exit from inside main
            rc = e.code
    results.append({"rc": rc, "stderr": err.getvalue(), "ray": "ray" in sys.modules})
print(json.dumps(results))
"""


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )


BAD_INPUT = [
    (["--dataset", "mnist3d"], "invalid choice: 'mnist3d'"),
    (["--space", "nope"], "unknown space 'nope'"),
    (["--samples", "0"], "--samples"),
    (["--epochs", "-3"], "--epochs"),
    (["--epochs", "ten"], "is not a whole number"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial"),
    (["--gpus-per-trial", "-1"], "--gpus-per-trial"),
    (["--gpus-per-trial", "1.5"], "whole number of GPUs"),
    (["--time-budget", "5x"], "not a duration"),
    (["--name", "a/b"], "--name"),
    (["--grace-period", "5", "--epochs", "2"], "--grace-period"),
    (["--reduction-factor", "1"], "--reduction-factor"),
    (["--dataset", "imagefolder"], "needs --data-dir"),
    (["--dataset", "imagefolder", "--data-dir", "/does/not/exist"], "does not exist"),
    (["--data-dir", "/etc/hostname"], "not a directory"),
    (["--out", "/proc/tuner-experiments"], "not writable"),
    # Priced on the meta device before Ray starts: no configuration of the space fits.
    (["--max-params", "100"], "no configuration of seed_cnn at 1x8x8 fits --max-params 100"),
    (["--space", "resnet_cnn", "--max-macs", "1k"], "fits --max-macs 1,000"),
]


@pytest.fixture(scope="module")
def bad_input_results(tmp_path_factory):
    """Each BAD_INPUT case run through the CLI's main() in one child process, in order, each
    with an --out of its own."""
    import json

    base = tmp_path_factory.mktemp("bad-input")
    cases = [["search", "--out", str(base / f"out{i}"), *args]
             for i, (args, _) in enumerate(BAD_INPUT)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", RUN_CASES, json.dumps(cases)], cwd=base,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", range(len(BAD_INPUT)),
                         ids=[f"{' '.join(a)}" for a, _ in BAD_INPUT])  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_starts_nothing(bad_input_results, case):
    base, results = bad_input_results
    needle, result = BAD_INPUT[case][1], results[case]
    assert result["rc"] == 2, result["stderr"]
    lines = result["stderr"].strip().splitlines()
    assert len(lines) == 1, result["stderr"]
    assert lines[0].startswith("tuner: error:") and needle in lines[0], lines[0]
    assert not result["ray"]  # by this case (cases run in order, in one process)
    out = base / f"out{case}"
    assert not out.exists() or not any(out.iterdir())


def test_an_existing_experiment_is_never_overwritten(tmp_path):
    exp = tmp_path / "out" / "mine"
    exp.mkdir(parents=True)
    (exp / "trials.csv").write_text("precious\n")
    proc = run_cli("search", "--out", str(tmp_path / "out"), "--name", "mine", cwd=tmp_path)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (exp / "trials.csv").read_text() == "precious\n"


def test_unreadable_data_dir():
    """Refused in one line with exit 2. Root reads every directory, and CI runs as root, so
    then the command runs as `nobody` (setpriv), for whom the directory is really unreadable."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="tuner-locked-", dir="/tmp"))  # /tmp: nobody can enter
    try:
        base.chmod(0o755)
        d = base / "locked"
        d.mkdir(mode=0)
        command = [sys.executable, "-c", RUN, "search", "--data-dir", str(d), "--out",
                   str(base / "o")]  # fmt: skip
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv to drop to another user")
            nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            probe = subprocess.run([*nobody, sys.executable, "-c", "import tuner.cli"],
                                   cwd=base, capture_output=True, timeout=60)  # fmt: skip
            if probe.returncode != 0:  # e.g. the checkout lies under a private /root
                pytest.skip("user nobody cannot run this checkout's Python")
            command = [*nobody, *command]
        env = {**os.environ, "HOME": str(base), "TUNER_DATA_DIR": str(base / "cache")}
        proc = subprocess.run(command, cwd=base, capture_output=True, text=True, timeout=120,
                              env=env)  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "is not readable" in proc.stderr
        assert "RAY_NOT_IMPORTED" in proc.stdout
    finally:
        d.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


def _search_parser():
    return build_parser()._subparsers._group_actions[0].choices["search"]


def test_help_explains_every_search_option():
    search = _search_parser()
    text = search.format_help()
    for flag in [
        "--space",
        "--dataset",
        "--data-dir",
        "--samples",
        "--epochs",
        "--scheduler",
        "--searcher",
        "--cpus-per-trial",
        "--gpus-per-trial",
        "--concurrency",
        "--address",
        "--out",
        "--name",
        "--seed",
        "--time-budget",
    ]:
        assert flag in text, flag
    helps = {a.option_strings[0]: a.help for a in search._actions if a.option_strings}
    assert all(helps[f] for f in helps if f != "-h"), "every option has help text"


HELP_IMPORTS = """
import contextlib, io, sys
from tuner.cli import main
for argv in (["--help"], ["search", "--help"], ["resume", "--help"]):
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
        main(argv)
    assert "usage: tuner" in out.getvalue(), argv
print(sorted(m for m in ("torch", "torchvision", "ray", "optuna") if m in sys.modules))
"""


def test_help_answers_without_importing_torch_ray_or_optuna():
    # A child: this process has long imported them all. (torch alone took 1.8 of 2.3 s.)
    out = subprocess.run([sys.executable, "-c", HELP_IMPORTS], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "[]"


def test_every_search_config_field_is_a_flag_with_help():
    """The flags come from SearchConfig's fields: each one is in --help, with its help."""
    from dataclasses import fields

    from tuner.config.options import option_flags

    search = _search_parser()
    text = search.format_help()
    actions = {a.dest: a for a in search._actions}
    assert SearchConfig.options() == list(fields(SearchConfig)), "every field is an option"
    for f in SearchConfig.options():
        for flag in option_flags(f):
            assert flag in text, flag
        assert actions[f.name].option_strings == list(option_flags(f)), f.name
        assert actions[f.name].help and actions[f.name].help.strip(), f.name
        assert actions[f.name].default == f.default, f.name  # the field's default is the flag's
    for title in ("what to search", "budget", "how to search", "resources", "output"):
        assert f"\n{title}:\n" in text, title  # the --help sections are kept


def test_a_flags_help_is_its_fields_metadata():
    from dataclasses import fields

    samples = {f.name: f for f in fields(SearchConfig)}["samples"]
    action = {a.dest: a for a in _search_parser()._actions}["samples"]
    assert action.help == samples.metadata["help"]
    assert action.help.startswith("the search's budget, in trials of --epochs epochs")
    assert "--max-trials lets their unused epochs start more trials); default 20" in " ".join(
        _search_parser().format_help().split()
    )


def test_spaces_lists_the_parameters(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tuner.cli", "spaces", "--input-size", "8"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "seed_cnn" in proc.stdout
    assert "n_blocks           int 1..3" in proc.stdout
    assert "dropout_rate" in proc.stdout and "(conditional)" in proc.stdout
    assert "schedule           one of ['none', 'cosine', 'onecycle']" in proc.stdout
    # what each space tries first
    assert (
        "(the lab's network is trial 0; trial 1 is a known-good start point, fitted to the run)"
        in proc.stdout
    )
    assert "(trial 0 is a known-good start point, fitted to the run)" in proc.stdout


def test_every_search_option_reaches_the_search_config():
    from tuner.cli import config_from_args

    args = build_parser().parse_args(
        ["search", "--asha-rule", "ray", "--max-macs", "50k", "--max-params", "1.5M",
         "--objectives", "val_acc:max,latency:min", "--time-budget", "2m", "--concurrency", "3",
         "--checkpoint-interval", "10s", "--searcher", "random", "--reduction-factor", "4",
         "--space", "resnet_cnn", "--dataset", "cifar10", "--data-dir", "/data", "--val-count",
         "30", "--image-size", "16", "--samples", "7", "--epochs", "5", "--scheduler", "fifo",
         "--grace-period", "2", "--cpus-per-trial", "2", "--gpus-per-trial", "auto",
         "--gpu-memory", "40", "--compile", "inductor",
         "--address", "head:6379", "--out", "elsewhere", "--name", "mine", "--seed", "9",
         "--max-failures", "0", "-v", "--confirm-top", "5", "--confirm-seeds", "4",
         "--no-confirm", "--decode-workers", "3", "--model", "mypkg.nets:build",
         "--warm-start", "/old/experiment", "--report-every", "5s",
         "--mlflow", "file:///tmp/mlruns", "--max-trials", "40",
         "--storage", "postgresql://me@db:5432/studies", "--no-baseline"]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.no_baseline
    assert cfg.max_trials == 40  # (refused with --scheduler fifo when validated: test_config)
    assert (cfg.asha_rule, cfg.max_macs, cfg.max_params) == ("ray", 50_000, 1_500_000)
    assert (cfg.objectives, cfg.time_budget, cfg.concurrency) == ("val_acc:max,latency:min",
                                                                  120.0, 3)  # fmt: skip
    assert (cfg.checkpoint_interval, cfg.searcher, cfg.reduction_factor) == (10.0, "random", 4)
    assert (cfg.space, cfg.dataset, cfg.data_dir, cfg.val_count, cfg.image_size) == (
        "resnet_cnn", "cifar10", "/data", 30, 16)  # fmt: skip
    assert (cfg.samples, cfg.epochs, cfg.scheduler, cfg.grace_period) == (7, 5, "fifo", 2)
    assert (cfg.cpus_per_trial, cfg.gpus_per_trial, cfg.address) == (2.0, "auto", "head:6379")
    assert (cfg.gpu_memory, cfg.compile) == (40.0, "inductor")
    assert (cfg.out, cfg.name, cfg.seed, cfg.max_failures, cfg.verbose) == (
        "elsewhere", "mine", 9, 0, True)  # fmt: skip
    assert cfg.model == "mypkg.nets:build"  # an import path stays as given (files: absolute)
    assert (cfg.warm_start, cfg.report_every) == ("/old/experiment", 5.0)
    assert cfg.storage == "postgresql://me@db:5432/studies"
    # --config is the experiment file the other options may come from (test_config_file.py)
    flags = {a.dest for a in _search_parser()._actions} - {"help", "config"}
    assert flags <= set(vars(cfg)), flags - set(vars(cfg))  # no flag is dropped on the way
    defaults = vars(SearchConfig())
    assert all(vars(cfg)[k] != defaults[k] for k in flags), "the command line sets every option"


def test_the_asha_rule_decides_which_rungs_are_judged_by_their_peers():
    from tuner.driver.tuner_setup import make_scheduler

    paper = make_scheduler(
        SearchConfig(samples=27, epochs=9, asha_rule="paper", name="p", grace_period=1), 1
    )
    ray_rule = make_scheduler(
        SearchConfig(samples=27, epochs=9, asha_rule="ray", name="r", grace_period=1), 1
    )
    assert paper._brackets[0].judged == frozenset({1, 3})  # 27 trials: rungs 1 and 3 judged
    assert ray_rule._brackets[0].judged == frozenset()
    fifo = make_scheduler(SearchConfig(scheduler="fifo"), 1)
    assert type(fifo).__name__ == "FIFOScheduler"


def test_every_resume_option_reaches_resume(monkeypatch, tmp_path):
    # `tuner resume --time-budget` was accepted and never passed on: the resume ran unlimited.
    import tuner.driver.run
    from tuner.cli import main

    seen = {}

    def fake_resume(directory, **kwargs):
        seen.update(kwargs, directory=directory)
        raise KeyboardInterrupt  # ends the command before anything runs

    monkeypatch.setattr(tuner.driver.run, "resume", fake_resume)
    argv = ["resume", str(tmp_path), "--time-budget", "15m", "--max-failures", "4",
            "--retry-errored", "--samples", "40"]  # fmt: skip
    assert main(argv) == 130
    assert seen == {"directory": str(tmp_path), "max_failures": 4, "retry_errored": True,
                    "time_budget": 900.0, "samples": 40}  # fmt: skip
