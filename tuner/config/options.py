"""Each search option is written once: `option()` declares a SearchConfig field together with
its `tuner search` flag, help and argument type, and the CLI builds its parser from those fields
(tuner/cli.py). The argument types below turn a flag's text into the field's value; argparse
prints their one-line messages. Standard library only: the CLI imports this before Ray.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import Field, field
from typing import Any

from tuner.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def option(
    default: Any,
    help: str,
    *,
    group: str,
    type: Callable[[str], Any] | None = None,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    flags: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field that is also a command-line option.

    help: argparse's help text (`%(default)s` shows the default, `%%` is a percent sign);
    group: the --help section it is listed in; type: parses the flag's text (default: the text
    itself); flags: default `--field-name`. A bool field with default False is a switch.
    """
    metadata = {"help": help, "group": group, "type": type, "choices": choices,
                "metavar": metavar, "flags": flags}  # fmt: skip
    return field(default=default, metadata=metadata)


def is_option(f: Field) -> bool:
    return "help" in f.metadata and "group" in f.metadata


def option_flags(f: Field) -> tuple[str, ...]:
    """The flags of an option field: `max_params` -> ('--max-params',)."""
    return f.metadata.get("flags") or ("--" + f.name.replace("_", "-"),)


def add_options(parser: argparse.ArgumentParser, options: list[Field]) -> None:
    """One argument per option field, its dest the field's name, in --help sections by group
    (in the order the groups first appear, each listing its fields in field order)."""
    groups: dict[str, Any] = {}  # title -> the group add_argument_group returned
    for f in options:
        if f.metadata["group"] not in groups:
            groups[f.metadata["group"]] = parser.add_argument_group(f.metadata["group"])
    for title, group in groups.items():
        for f in (f for f in options if f.metadata["group"] == title):
            meta = f.metadata
            kwargs: dict[str, Any] = {"dest": f.name, "default": f.default, "help": meta["help"]}
            if f.default is False:
                kwargs["action"] = "store_true"
            for key in ("type", "choices", "metavar"):
                if meta[key] is not None:
                    kwargs[key] = meta[key]
            group.add_argument(*option_flags(f), **kwargs)


def parse_duration(text: str, what: str = "time budget") -> float:
    """'90', '90s', '15m', '2h', '1d' -> seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"{what} {text!r} is not a duration like 600, 90s, 15m or 2h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def gpus_or_auto(text: str) -> float | str:
    """GPUs per trial: a number (0.25 = a quarter of one), or "auto" (packed by memory)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'auto'") from None


_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def count(text: str) -> int:
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


def duration(text: str, what: str = "time budget") -> float:
    try:
        return parse_duration(text, what)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def interval(text: str) -> float:
    return duration(text, "checkpoint interval")


def options_markdown(options: list[Field]) -> str:
    """The `tuner search` options as the Markdown reference in docs/options.md: one table per
    --help section, each flag with its default and its help text (the same words as --help,
    from the same fields, so the reference cannot drift from the code: a test compares them)."""
    lines = [
        "# `tuner search` options",
        "",
        "Generated from SearchConfig's fields (tuner/config/search_config.py), the same text",
        "as `tuner search --help`: `python -m tuner.config.search_config > docs/options.md`",
        "rewrites it.",
        "`tuner resume DIR` takes the options that may change on a resume (see its --help).",
    ]
    groups: dict[str, list[Field]] = {}
    for f in options:
        groups.setdefault(f.metadata["group"], []).append(f)
    for title, members in groups.items():
        lines += ["", f"## {title}", "", "| option | default | what it does |", "|---|---|---|"]
        for f in members:
            meta = f.metadata
            flags = ", ".join(f"`{flag}`" for flag in option_flags(f))
            if meta["metavar"] and f.default is not False:
                flags += f" {meta['metavar']}"
            default = "off" if f.default is False else "none" if f.default is None else f.default
            text = meta["help"] % {"default": f.default}  # as argparse does: %(default)g too
            if meta["choices"]:
                text += " (one of: " + ", ".join(f"`{c}`" for c in meta["choices"]) + ")"
            cell = f"`{default}`" if default not in ("off", "none") else default
            lines.append(f"| {flags} | {cell} | {_markdown_cell(text)} |")
    return "\n".join(lines) + "\n"


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
