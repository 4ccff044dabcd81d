"""The `tuner` command: a thin layer over the Python API (tuner.driver.run, search_spaces)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from tuner.data import DATASETS
from tuner.driver.config import ASHA_RULES, SCHEDULERS, SEARCHERS, SearchConfig, parse_duration
from tuner.experiment import (
    BEST_JSON,
    EPOCHS_CSV,
    OPTUNA_DB,
    PROVENANCE_JSON,
    REPORT_HTML,
    TRIALS_CSV,
    TUNER_PKL,
)

EXIT_USAGE = 2  # bad input, as argparse uses


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def _count(text: str) -> int:
    """A positive count with an optional k / M / G suffix: 250000, 250k, 1.5M, 2G."""
    raw = text.strip().lower()
    unit = raw[-1] if raw and raw[-1] in "kmg" else ""
    try:
        value = float(raw[: len(raw) - len(unit)]) * _SUFFIXES[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a count like 250000, 250k or 1.5M"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return int(value)


def _duration(text: str, what: str = "time budget") -> float:
    from tuner.train.config import ConfigError

    try:
        return parse_duration(text, what)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _interval(text: str) -> float:
    return _duration(text, "checkpoint interval")


def _add_search_args(p: argparse.ArgumentParser) -> None:
    d = SearchConfig(name="x")  # defaults, shown in --help
    what = p.add_argument_group("what to search")
    what.add_argument(
        "--space",
        default=d.space,
        help="a built-in space (see `tuner spaces`), your own define-by-run function "
        "(path/to/file.py:function) or a declarative file (space.toml, space.yaml); "
        "default %(default)s",
    )
    what.add_argument(
        "--dataset",
        default=d.dataset,
        choices=DATASETS,
        help="digits: 8x8 digits shipped with scikit-learn (offline); cifar10: "
        "torchvision's CIFAR-10 in --data-dir, downloaded if missing; "
        "imagefolder: a class-per-folder tree in --data-dir (with train/ and "
        "test/ or val/ inside, those are the splits). Default %(default)s",
    )
    what.add_argument(
        "--data-dir",
        default=None,
        help="dataset root; the decoded dataset is cached here too "
        "(default $TUNER_DATA_DIR or ~/.cache/cnn-tuner)",
    )
    what.add_argument(
        "--val-count",
        type=_positive_int,
        default=None,
        help="validation images held out of the training split "
        "(default: 2%% like the lab's 1,000 of 50,000, at least 20 per class)",
    )
    what.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="imagefolder: resize and center-crop every image to this side",
    )

    budget = p.add_argument_group("budget")
    budget.add_argument(
        "--samples",
        type=_positive_int,
        default=d.samples,
        help="number of trials, the lab's baseline included; default %(default)s",
    )
    budget.add_argument(
        "--epochs",
        type=_positive_int,
        default=d.epochs,
        help="epochs per trial (ASHA's max_t); default %(default)s",
    )
    budget.add_argument(
        "--time-budget",
        type=_duration,
        default=None,
        help="stop the whole search after this long: 600, 90s, 15m, 2h",
    )

    how = p.add_argument_group("how to search")
    how.add_argument(
        "--searcher",
        default=d.searcher,
        choices=SEARCHERS,
        help="tpe: Optuna's TPE sampler; random: random search; default %(default)s",
    )
    how.add_argument(
        "--scheduler",
        default=d.scheduler,
        choices=SCHEDULERS,
        help="asha: stop weak trials early on val_loss; fifo: run every trial to "
        "the end; default %(default)s",
    )
    how.add_argument(
        "--grace-period",
        type=_positive_int,
        default=d.grace_period,
        help="ASHA: epochs every trial gets before it can be stopped; default %(default)s",
    )
    how.add_argument(
        "--reduction-factor",
        type=_positive_int,
        default=d.reduction_factor,
        help="ASHA: keep the best 1/N of trials at each rung; default %(default)s",
    )
    how.add_argument(
        "--asha-rule",
        choices=ASHA_RULES,
        default=d.asha_rule,
        help="ASHA: who passes a rung. paper: only the best floor(n/rf) of the n trials that "
        "reached it (as in the ASHA paper; used where enough trials are expected to arrive); "
        "ray: Ray's rule, under which the first trials at a rung pass unopposed and use "
        "more compute; default %(default)s",
    )
    how.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help="sampler seed (same seed, same suggestions); default %(default)s",
    )

    how.add_argument(
        "--objectives",
        default=None,
        help="search several objectives at once and report their Pareto front, e.g. "
        "val_acc:max,params:min; choose from val_acc, val_loss, params, macs, latency, "
        "train_time (ASHA still stops trials on validation loss)",
    )
    budget.add_argument(
        "--max-params",
        type=_count,
        default=None,
        help="never train a configuration with more parameters (e.g. 250k, 1.5M); the searcher "
        "learns the limit, and the report lists what it refused",
    )
    budget.add_argument(
        "--max-macs",
        type=_count,
        default=None,
        help="never train a configuration with more multiply-accumulates per image (e.g. 50M)",
    )

    res = p.add_argument_group("resources")
    res.add_argument(
        "--cpus-per-trial",
        type=_number,
        default=d.cpus_per_trial,
        help="CPU cores per trial (also its torch thread count); default %(default)s",
    )
    res.add_argument(
        "--gpus-per-trial",
        type=_number,
        default=d.gpus_per_trial,
        help="GPUs per trial; fractions share a GPU, 0.25 = 4 trials per GPU; default %(default)s",
    )
    res.add_argument(
        "--concurrency",
        type=_positive_int,
        default=None,
        help="at most this many trials at once (default: as many as fit)",
    )
    res.add_argument(
        "--address",
        default=None,
        help="join this Ray cluster (host:port) instead of starting Ray in-process; "
        "RAY_ADDRESS works too",
    )
    res.add_argument(
        "--max-failures",
        type=_non_negative_int,
        default=d.max_failures,
        help="retries of a crashed trial, from its last checkpoint; default %(default)s",
    )
    res.add_argument(
        "--checkpoint-interval",
        type=_interval,
        default=d.checkpoint_interval,
        metavar="DURATION",
        help="time between a trial's checkpoints (e.g. 10s, 2m); 0 = every epoch, so a resume "
        "repeats no epoch. Trials also checkpoint at their last epoch and wherever ASHA may "
        "stop them, so a crash costs at most this much training. Worth setting when epochs "
        "take well under a second (checkpoints of big nets cost tens of ms); default %(default)g",
    )

    out = p.add_argument_group("output")
    out.add_argument(
        "--out", default=d.out, help="parent directory of experiments; default ./%(default)s"
    )
    out.add_argument(
        "--name", default=None, help="experiment name (default <space>-<dataset>-<timestamp>)"
    )
    out.add_argument("-v", "--verbose", action="store_true", help="show Ray's own logs")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"tuner: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tuner",
        description="Architecture and hyperparameter search for CNN image classifiers "
        "(Ray Tune + Optuna + ASHA).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    search = sub.add_parser(
        "search",
        help="run a search and write an experiment directory",
        description="Run a search: Optuna proposes configurations, ASHA stops weak ones early, "
        "Ray runs the trials. In seed_cnn the lab's hand-tuned network is always trial 0. "
        f"Results go to <out>/<name>/ ({TRIALS_CSV}, {EPOCHS_CSV}, {BEST_JSON}, "
        f"{PROVENANCE_JSON}, {OPTUNA_DB}, {REPORT_HTML}).",
    )
    _add_search_args(search)
    spaces = sub.add_parser(
        "spaces", help="list the search spaces and their parameters",
        description="List the search spaces and the parameters each one samples.",
    )  # fmt: skip
    spaces.add_argument("name", nargs="?", help="show only this space")
    spaces.add_argument("--input-size", type=_positive_int, default=32,
                        help="image side the space adapts to; default %(default)s")  # fmt: skip
    spaces.add_argument(
        "--check", action="store_true",
        help="dry-run the space on the CPU: sample --samples configurations, build each network "
        "and run a dummy batch of --channels x --input-size x --input-size through it",
    )  # fmt: skip
    spaces.add_argument("--samples", type=_positive_int, default=20,
                        help="configurations --check samples; default %(default)s")  # fmt: skip
    spaces.add_argument("--channels", type=_positive_int, default=3,
                        help="image channels for --check; default %(default)s")  # fmt: skip
    spaces.add_argument("--classes", type=_positive_int, default=10,
                        help="classes for --check; default %(default)s")  # fmt: skip
    resume = sub.add_parser(
        "resume", help="continue an interrupted search",
        description="Continue a search that was interrupted (Ctrl-C, a killed driver, a lost "
        "machine): finished trials are kept, unfinished ones continue from their last "
        "checkpoint, and the search runs until it has its --samples trials. Only resume "
        f"directories you trust: Ray's {TUNER_PKL} inside is a pickle.",
    )  # fmt: skip
    resume.add_argument("dir", metavar="DIR", help="the experiment directory")
    resume.add_argument("--max-failures", type=_non_negative_int, default=None,
                        help="retries of a crashed trial (default: as the search had)")  # fmt: skip
    resume.add_argument("--time-budget", type=_duration, default=None, metavar="DURATION",
                        help="stop this run after 90s, 15m, 2h... (the search's own budget "
                        "was for its first run; default: no limit)")  # fmt: skip
    resume.add_argument("--retry-errored", action="store_true",
                        help="run the trials that ended in error again, each from its last "
                        "checkpoint (after you fixed what made them fail)")  # fmt: skip
    report = sub.add_parser(
        "report", help="(re)write an experiment's HTML report",
        description="Write the self-contained HTML report of an experiment directory (finished, "
        f"interrupted or copied from another machine) to DIR/{REPORT_HTML}, or to -o FILE.",
    )  # fmt: skip
    report.add_argument("dir", metavar="DIR", help="the experiment directory")
    report.add_argument("-o", "--output", metavar="FILE", default=None,
                        help=f"where to write the report; default DIR/{REPORT_HTML}")  # fmt: skip
    report.add_argument("--pick", type=_non_negative_int, default=None, metavar="TRIAL",
                        help="multi-objective searches: show this Pareto point's model instead "
                        "of the knee's")  # fmt: skip
    return parser


def _cmd_spaces(args: argparse.Namespace) -> int:
    from search_spaces import SPACES, SpaceError, describe_space, get_space

    try:
        chosen = [get_space(args.name)] if args.name else list(SPACES.values())
    except SpaceError as e:
        raise SystemExit(_fail(str(e))) from None
    if args.check:
        return _check_spaces(chosen, args)
    for space in chosen:
        print(f"{space.name}: {space.summary}")
        baseline = " (the lab's network is trial 0)" if space.baseline else ""
        print(f"  parameters at {args.input_size}x{args.input_size}{baseline}:")
        for p in describe_space(space, args.input_size):
            cond = "  (conditional)" if p.conditional else ""
            print(f"    {p.name:<18} {p.distribution}{cond}")
        print()
    return 0


def _check_spaces(chosen: list, args: argparse.Namespace) -> int:
    from search_spaces import SpaceError
    from search_spaces.check import check_space

    shape = (args.channels, args.input_size, args.input_size)
    for space in chosen:
        try:
            r = check_space(space, shape, args.classes, args.samples)
        except SpaceError as e:
            raise SystemExit(_fail(str(e))) from None
        print(
            f"{space.name}: {r.samples} samples OK at {'x'.join(map(str, shape))} in "
            f"{r.seconds:.1f} s; {r.params[0]:,}-{r.params[1]:,} params, "
            f"{r.macs[0]:,}-{r.macs[1]:,} MACs per image"
        )
    return 0


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The SearchConfig a `tuner search` command line describes."""
    return SearchConfig(
        space=args.space, dataset=args.dataset, data_dir=args.data_dir, val_count=args.val_count,
        image_size=args.image_size, samples=args.samples, epochs=args.epochs,
        scheduler=args.scheduler, searcher=args.searcher, grace_period=args.grace_period,
        reduction_factor=args.reduction_factor, asha_rule=args.asha_rule,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, concurrency=args.concurrency, address=args.address,
        out=args.out, name=args.name, seed=args.seed, time_budget=args.time_budget,
        max_failures=args.max_failures, checkpoint_interval=args.checkpoint_interval,
        max_params=args.max_params, max_macs=args.max_macs,
        objectives=args.objectives,
        verbose=args.verbose,
    )  # fmt: skip


def _cmd_search(args: argparse.Namespace) -> int:
    from tuner.data import DataError
    from tuner.driver.disk import DiskFullError
    from tuner.driver.run import search
    from tuner.train.config import ConfigError

    cfg = config_from_args(args)
    try:
        result = search(cfg)
    except (ConfigError, DataError, DiskFullError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _stopped_at_once(cfg.experiment_dir)
    return _exit_code(result)


def _cmd_resume(args: argparse.Namespace) -> int:
    from tuner.data import DataError
    from tuner.driver.disk import DiskFullError
    from tuner.driver.run import resume
    from tuner.train.config import ConfigError

    try:
        result = resume(args.dir, max_failures=args.max_failures, retry_errored=args.retry_errored)
    except (ConfigError, DataError, DiskFullError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _stopped_at_once(args.dir)
    return _exit_code(result)


def _exit_code(result: Any) -> int:
    """0 done (or --time-budget spent); 130 interrupted (Ctrl-C); 2 stopped for want of disk
    space."""
    if result.stop_reason:
        return _fail(
            f"stopped: {result.stop_reason}; free some space and run "
            f"`tuner resume {result.experiment_dir}`"
        )
    if result.stopped_by_clock:
        return 0
    return 130 if result.interrupted else 0


def _stopped_at_once(experiment_dir: object) -> int:
    print(
        f"\nStopped at once. `tuner resume {experiment_dir}` continues the search; "
        f"`tuner report {experiment_dir}` draws what it has so far.",
        file=sys.stderr,
    )
    return 130


def _cmd_report(args: argparse.Namespace) -> int:
    from analysis import ExperimentError, write_report

    try:
        path = write_report(args.dir, args.output, args.pick, warn=_warn)
    except ExperimentError as e:
        return _fail(str(e))
    except OSError as e:  # e.g. an unwritable -o
        return _fail(f"cannot write the report: {e}")
    print(f"Report: {path}")
    return 0


def _warn(message: str) -> None:
    print(f"tuner: warning: {message}", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"tuner: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "spaces":
        return _cmd_spaces(args)
    if args.command == "report":
        return _cmd_report(args)
    if args.command == "resume":
        return _cmd_resume(args)
    return _cmd_search(args)


if __name__ == "__main__":
    sys.exit(main())
