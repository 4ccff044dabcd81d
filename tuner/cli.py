"""The `tuner` command: a thin layer over the Python API (tuner.driver.run, search_spaces)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuner.config.options import add_options, duration, non_negative_int, number, positive_int
from tuner.config.search_config import SearchConfig
from tuner.experiment import (
    BEST_JSON,
    CONFIRM_DIR,
    EPOCHS_CSV,
    MODEL_FILE,
    OPTUNA_JOURNAL,
    PROVENANCE_JSON,
    REPORT_HTML,
    SEARCH_TOML,
    TRIALS_CSV,
    TUNER_PKL,
)

EXIT_USAGE = 2  # bad input, as argparse uses


def _add_search_args(p: argparse.ArgumentParser) -> None:
    """Every SearchConfig field is a flag: its help, group and type come from the field."""
    add_options(p, SearchConfig.options())


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
        f"{PROVENANCE_JSON}, {OPTUNA_JOURNAL}, {REPORT_HTML}).",
    )
    search.add_argument(
        "--config", metavar="FILE", default=None,
        help="an experiment file (.toml or .yaml) holding any of the options below by name "
        f"(max_params = \"1.5M\"); flags given here win over it. Every experiment keeps its "
        f"resolved options as {SEARCH_TOML}: --config OLD/{SEARCH_TOML} --name again reruns it",
    )  # fmt: skip
    _add_search_args(search)
    parser.set_defaults(search_parser=search)  # main() reparses with an experiment file's values
    spaces = sub.add_parser(
        "spaces", help="list the search spaces and their parameters",
        description="List the search spaces and the parameters each one samples.",
    )  # fmt: skip
    spaces.add_argument("name", nargs="?", help="show only this space")
    spaces.add_argument("--input-size", type=positive_int, default=32,
                        help="image side the space adapts to; default %(default)s")  # fmt: skip
    spaces.add_argument(
        "--check", action="store_true",
        help="dry-run the space on the CPU: sample --samples configurations, build each network "
        "and run a dummy batch of --channels x --input-size x --input-size through it",
    )  # fmt: skip
    spaces.add_argument("--samples", type=positive_int, default=20,
                        help="configurations --check samples; default %(default)s")  # fmt: skip
    spaces.add_argument("--channels", type=positive_int, default=3,
                        help="image channels for --check; default %(default)s")  # fmt: skip
    spaces.add_argument("--classes", type=positive_int, default=10,
                        help="classes for --check; default %(default)s")  # fmt: skip
    spaces.add_argument("--model", metavar="FILE.py:FUNC", default=None,
                        help="--check: build your own network (as tuner search --model) from "
                        "the space's samples")  # fmt: skip
    resume = sub.add_parser(
        "resume", help="continue an interrupted search",
        description="Continue a search that was interrupted (Ctrl-C, a killed driver, a lost "
        "machine): finished trials are kept, unfinished ones continue from their last "
        "checkpoint, and the search runs until its budget (--samples) is spent. Only resume "
        f"directories you trust: Ray's {TUNER_PKL} inside is a pickle.",
    )  # fmt: skip
    resume.add_argument("dir", metavar="DIR", help="the experiment directory")
    resume.add_argument("--max-failures", type=non_negative_int, default=None,
                        help="retries of a crashed trial (default: as the search had)")  # fmt: skip
    resume.add_argument("--time-budget", type=duration, default=None, metavar="DURATION",
                        help="stop this run after 90s, 15m, 2h... (the search's own budget "
                        "was for its first run; default: no limit)")  # fmt: skip
    resume.add_argument("--samples", type=positive_int, default=None, metavar="N",
                        help="raise the search's budget to N trials' epochs (finished or not; "
                        "with --max-trials at --samples, to exactly N trials): the study, the "
                        "sampler's history and ASHA's rungs carry on")  # fmt: skip
    resume.add_argument("--retry-errored", action="store_true",
                        help="run the trials that ended in error again, each from its last "
                        "checkpoint (after you fixed what made them fail)")  # fmt: skip
    from tuner.retrain import add_train_arguments

    train = sub.add_parser(
        "train", help="retrain one configuration from scratch over seeds and write its model",
        description="Retrain one configuration from scratch, in this process, under fresh "
        "seeds, and score each seed on the test split. DIR: an experiment directory; retrains "
        "its winner (the confirm stage's, else the search's best), or --trial N, on the "
        "experiment's own dataset and split. CONFIG: a file of flat config keys (a trial's "
        "params as JSON, or TOML), trained on --dataset. Writes <out>/<name>/ with the seeds' "
        f"checkpoints, {EPOCHS_CSV}, {PROVENANCE_JSON}, the summary and {MODEL_FILE}.",
    )  # fmt: skip
    add_train_arguments(train)
    confirm = sub.add_parser(
        "confirm", help="confirm a finished search's winner over fresh seeds",
        description="Train the top K configurations of a finished search (and the lab's "
        "baseline) again from scratch with S fresh seeds each, as Ray Tune trials in "
        f"DIR/{CONFIRM_DIR}/, then name the winner by its mean validation accuracy, with 95%% "
        "intervals (Student t on the logit, inside 0 to 1) of validation and test accuracy, "
        f"and rewrite {BEST_JSON}, "
        f"{MODEL_FILE} and the report. A search runs this stage itself unless it had "
        "--no-confirm; "
        "an interrupted stage continues with `tuner resume DIR`.",
    )  # fmt: skip
    confirm.add_argument("dir", metavar="DIR", help="the experiment directory")
    confirm.add_argument("--confirm-top", type=positive_int, default=None, metavar="K",
                         help="configurations to confirm (default: the search's, 3)")  # fmt: skip
    confirm.add_argument("--confirm-seeds", type=positive_int, default=None, metavar="S",
                         help="fresh seeds each, at least 2 (default: the search's, "
                         "3)")  # fmt: skip
    status = sub.add_parser(
        "status", help="where a running or finished search stands",
        description="Print a search's state from its files (no Ray needed, from any shell): "
        "trials finished, running and pending, the best so far with its configuration, the "
        "epochs trained, and the time left under --time-budget (or at the pace so far).",
    )  # fmt: skip
    status.add_argument("dir", metavar="DIR", help="the experiment directory")
    status.add_argument("--watch", nargs="?", type=number, const=2.0, default=None,
                        metavar="SECONDS", help="refresh every SECONDS (default 2) until the "
                        "search is no longer running; Ctrl-C stops watching")  # fmt: skip
    status.add_argument(
        "--json", action="store_true", help="print it as JSON (with --watch, one object per line)"
    )
    report = sub.add_parser(
        "report", help="(re)write an experiment's HTML report",
        description="Write the self-contained HTML report of an experiment directory (finished, "
        f"interrupted or copied from another machine) to DIR/{REPORT_HTML}, or to -o FILE.",
    )  # fmt: skip
    report.add_argument("dir", metavar="DIR", help="the experiment directory")
    report.add_argument("-o", "--output", metavar="FILE", default=None,
                        help=f"where to write the report; default DIR/{REPORT_HTML}")  # fmt: skip
    report.add_argument("--pick", type=non_negative_int, default=None, metavar="TRIAL",
                        help="multi-objective searches: show this Pareto point's model instead "
                        "of the knee's")  # fmt: skip
    predict = sub.add_parser(
        "predict", help="classify images with a trained model",
        description="Classify image files with a model file (or an experiment directory's "
        f"{MODEL_FILE}). Each image is converted as the dataset was (grayscale or RGB, "
        "shorter side resized and centre-cropped to the model's size); one line per image: "
        "its most probable classes and their probabilities.",
    )  # fmt: skip
    predict.add_argument("model", metavar="MODEL", help="a model file, or an experiment "
                         f"directory (its {MODEL_FILE})")  # fmt: skip
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG...)")
    predict.add_argument("--top", type=positive_int, default=3, metavar="K",
                         help="classes shown per image (at most all of them); "
                         "default %(default)s")  # fmt: skip
    export = sub.add_parser(
        "export", help="export a trained model to TorchScript or ONNX",
        description="Write a model file (or an experiment directory's "
        f"{MODEL_FILE}) as one TorchScript or ONNX file with the normalization inside: input "
        "float32 images in [0, 1], shape (batch, C, H, W); output logits (batch, classes). "
        "ONNX needs the export extra (pip install \"cnn-tuner[export]\").",
    )  # fmt: skip
    export.add_argument("source", metavar="DIR|MODEL", help="an experiment directory (its "
                        f"{MODEL_FILE}) or a model file")  # fmt: skip
    export.add_argument("--format", dest="fmt", required=True, choices=("torchscript", "onnx"),
                        help="torchscript (for torch.jit.load) or onnx (for onnxruntime and "
                        "other runtimes)")  # fmt: skip
    export.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="where to write it; default next to the model file, named after "
                        "it (.torchscript.pt or .onnx)")  # fmt: skip
    for command in (predict, export):
        command.add_argument("--build", metavar="FILE.py:FUNC", default=None,
                             help="a model of your own network (--model): import its build "
                             "function from here instead of the path the model file records "
                             "(when the code has moved)")  # fmt: skip
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
        known = ["the lab's network is trial 0"] if space.baseline else []
        if space.start_points:
            first = 1 if space.baseline else 0
            last = first + len(space.start_points) - 1
            known.append(
                f"trial {first} is a known-good start point, fitted to the run"
                if first == last
                else f"trials {first}-{last} are known-good start points, fitted to the run"
            )
        note = f" ({'; '.join(known)})" if known else ""
        print(f"  parameters at {args.input_size}x{args.input_size}{note}:")
        for p in describe_space(space, args.input_size):
            cond = "  (conditional)" if p.conditional else ""
            print(f"    {p.name:<18} {p.distribution}{cond}")
        print()
    return 0


def _check_spaces(chosen: list, args: argparse.Namespace) -> int:
    from search_spaces import SpaceError
    from search_spaces.check import check_space
    from tuner.errors import ConfigError
    from tuner.train.user_model import absolute_spec, import_callable

    shape = (args.channels, args.input_size, args.input_size)
    model = absolute_spec(args.model) if args.model else None
    for space in chosen:
        try:
            if model:
                import_callable(model)
            r = check_space(space.with_model(model), shape, args.classes, args.samples)
        except (SpaceError, ConfigError) as e:
            raise SystemExit(_fail(str(e))) from None
        if r.unread:
            _warn(f"{model} never read {', '.join(r.unread)}, which {space.name} samples")
        print(
            f"{space.name}: {r.samples} samples OK at {'x'.join(map(str, shape))} in "
            f"{r.seconds:.1f} s; {r.params[0]:,}-{r.params[1]:,} params, "
            f"{r.macs[0]:,}-{r.macs[1]:,} MACs per image"
        )
    return 0


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The SearchConfig a `tuner search` command line describes (each flag's dest is its
    field's name)."""
    return SearchConfig(**{f.name: getattr(args, f.name) for f in SearchConfig.options()})


def _cmd_search(args: argparse.Namespace) -> int:
    from tuner.data import DataError
    from tuner.driver.run import search
    from tuner.driver.study_storage import StudyServerLost
    from tuner.stages.disk import DiskFullError
    from tuner.stages.torch_work import HelperLost
    from tuner.train.config import ConfigError

    cfg = config_from_args(args).named()  # named now, so that Ctrl-C can say where it went
    try:
        result = search(cfg)
    except (ConfigError, DataError, DiskFullError, StudyServerLost) as e:
        return _fail(str(e))
    except HelperLost as e:
        return _lost(e, cfg.experiment_dir)
    except KeyboardInterrupt:
        return _stopped_at_once(cfg.experiment_dir)
    return _exit_code(result)


def _cmd_train(args: argparse.Namespace) -> int:
    """0 done, 2 bad input (one line), 130 Ctrl-C (the directory says it is incomplete)."""
    from tuner.data import DataError
    from tuner.retrain import retrain_from_args
    from tuner.train.config import ConfigError

    try:
        retrain_from_args(args)
    except (ConfigError, DataError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return 130
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    return _resume(
        args.dir, max_failures=args.max_failures, retry_errored=args.retry_errored,
        time_budget=args.time_budget, samples=args.samples,
    )  # fmt: skip


def _cmd_confirm(args: argparse.Namespace) -> int:
    return _resume(
        args.dir, confirm_top=args.confirm_top, confirm_seeds=args.confirm_seeds,
        confirm_only=True,
    )  # fmt: skip


def _resume(directory: str, **options: Any) -> int:
    """`tuner resume` and `tuner confirm`: both continue an experiment (tuner.driver.run)."""
    from tuner.data import DataError
    from tuner.driver.run import resume
    from tuner.driver.study_storage import StudyServerLost
    from tuner.stages.disk import DiskFullError
    from tuner.stages.torch_work import HelperLost
    from tuner.train.config import ConfigError

    try:
        result = resume(directory, **options)
    except (ConfigError, DataError, DiskFullError, StudyServerLost) as e:
        return _fail(str(e))
    except HelperLost as e:
        return _lost(e, Path(directory))
    except KeyboardInterrupt:
        return _stopped_at_once(directory)
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


def _cmd_status(args: argparse.Namespace) -> int:
    import json
    import time

    from tuner.errors import ConfigError
    from tuner.experiment.status import format_status, read_status

    if args.watch is not None and not args.watch > 0:
        return _fail(f"--watch must be a number of seconds > 0, got {args.watch:g}")
    screen = None
    if args.watch is not None and sys.stdout.isatty() and not args.json:
        from rich.console import Console

        screen = Console()  # redrawn in place on a terminal; a log gets one block per refresh
    try:
        while True:
            status = read_status(args.dir)
            text = json.dumps(status) if args.json else format_status(status)
            if screen is not None:
                screen.clear()
                screen.print(text, markup=False, highlight=False, soft_wrap=True)
            else:
                print(text, flush=True)
            if args.watch is None or status["state"] not in ("running", "starting"):
                return 0
            time.sleep(args.watch)
    except ConfigError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from tuner.deploy.classifier import load_model
    from tuner.errors import ConfigError, DataError

    try:
        classifier = load_model(args.model, build=args.build)
        prediction = classifier.predict(args.images, top=args.top)
    except (ConfigError, DataError) as e:
        return _fail(str(e))
    for path, ranked in zip(args.images, prediction.top(), strict=True):
        print(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in ranked))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from tuner.deploy.export import export_model
    from tuner.errors import ConfigError, DataError

    try:
        path = export_model(args.source, args.fmt, args.output, build=args.build)
    except (ConfigError, DataError) as e:
        return _fail(str(e))
    except OSError as e:  # e.g. an unwritable -o
        return _fail(f"cannot write the export: {e}")
    print(f"Exported: {path}")
    return 0


def _warn(message: str) -> None:
    print(f"tuner: warning: {message}", file=sys.stderr)


def _lost(error: Exception, experiment: Path) -> int:
    """A part of the run died (not bad input): one line, exit 1, and how to go on."""
    print(f"tuner: error: {error}; what the run did is on disk, and `tuner resume "
          f"{experiment}` continues it", file=sys.stderr)  # fmt: skip
    return 1


def _fail(message: str) -> int:
    print(f"tuner: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "search" and args.config is not None:
        from tuner.config.config_file import apply_to_parser, read_config_file
        from tuner.errors import ConfigError

        try:
            values = read_config_file(args.config, SearchConfig.options())
        except ConfigError as e:
            return _fail(str(e))
        apply_to_parser(args.search_parser, values)  # the file's values become the defaults
        args = parser.parse_args(argv)  # so that the flags given still win
    if args.command == "spaces":
        return _cmd_spaces(args)
    if args.command == "report":
        return _cmd_report(args)
    if args.command == "status":
        return _cmd_status(args)
    if args.command == "confirm":
        return _cmd_confirm(args)
    if args.command == "resume":
        return _cmd_resume(args)
    if args.command == "train":
        return _cmd_train(args)
    if args.command == "predict":
        return _cmd_predict(args)
    if args.command == "export":
        return _cmd_export(args)
    return _cmd_search(args)


if __name__ == "__main__":
    sys.exit(main())
