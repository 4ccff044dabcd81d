"""An experiment file: every option of `tuner search` in one TOML or YAML file.

    # search.toml                              tuner search --config search.toml
    space = "resnet_cnn"                       tuner search --config search.toml --samples 40
    dataset = "cifar10"
    samples = 30
    max_macs = "50M"                           (or max-macs: any spelling of the option)

Keys are SearchConfig's fields (`max_params`) or their flags without the dashes
(`max-params`); values are what the flag takes (`"15m"`, `"1.5M"`) or plain numbers. Flags given
on the command line win over the file. An unknown key is one line naming it and the nearest
valid one.

Every search writes its resolved options as search.toml in its experiment directory, so that
`tuner search --config OLD/search.toml --name again` runs the same search again (the same seed,
the same suggestions).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import Field
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError
from tuner.experiment import SEARCH_TOML

SUFFIXES = (".toml", ".yaml", ".yml")


def read_config_file(path: str | Path, options: Sequence[Field]) -> dict[str, Any]:
    """The file's values of `options` (SearchConfig.options(): the fields of `tuner search`),
    by field name, each converted by its flag's own type (so `"1.5M"` becomes 1500000).
    ConfigError (one line) for a missing or unreadable file, a syntax error, an unknown key or
    a bad value."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"--config {path}: give a .toml or .yaml file")
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"--config {path}: {e.strerror or e}") from None
    raw = _parse(path, text)
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: expected a table of options, got {type(raw).__name__}")
    fields = {f.name: f for f in options}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise ConfigError(
                f"--config {path}: unknown option {key!r}{_nearest(str(key), list(fields))}"
            )
        values[name] = _convert(path, fields[name], value)
    return values


def _parse(path: Path, text: str) -> Any:
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            return tomllib.loads(text)
        import yaml

        return yaml.safe_load(text) or {}
    except Exception as e:  # noqa: BLE001  each parser has its own error types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--config {path}: cannot parse it ({first})") from None


def _nearest(key: str, fields: list[str]) -> str:
    names = [f.replace("_", "-") for f in fields]
    close = difflib.get_close_matches(key.replace("_", "-"), names, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _convert(path: Path, field: Field, value: Any) -> Any:
    """A value from the file as the option's flag would have it."""
    meta, flag = field.metadata, "--" + field.name.replace("_", "-")
    if value is None:
        return None
    if field.default is False or field.default is True:  # a switch
        if not isinstance(value, bool):
            raise ConfigError(f"--config {path}: {field.name} must be true or false")
        return value
    parse = meta.get("type")
    if isinstance(value, bool):
        raise ConfigError(f"--config {path}: {field.name} = {value} is not a value of {flag}")
    if parse is not None and not (isinstance(value, int | float) and parse in (int, float)):
        try:
            value = parse(str(value) if not isinstance(value, float) else repr(value))
        except (argparse.ArgumentTypeError, ValueError, ConfigError) as e:
            raise ConfigError(f"--config {path}: {field.name}: {e}") from None
    elif parse is None and not isinstance(value, str):
        value = str(value)
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(
            f"--config {path}: {field.name} = {value!r} is not one of {', '.join(choices)}"
        )
    return value


def apply_to_parser(parser: argparse.ArgumentParser, values: Mapping[str, Any]) -> None:
    """Make the file's values the parser's defaults: what the command line gives still wins."""
    parser.set_defaults(**dict(values))


def to_toml(values: Mapping[str, Any], options: Sequence[Field]) -> str:
    """The resolved `values` of `options` as a TOML file (the ones left at None are left out:
    None is their default, and TOML has no null)."""
    lines = [
        "# The options this search ran with. Run it again with",
        f"#   tuner search --config {SEARCH_TOML} --name another-name",
    ]
    for name in (f.name for f in options):
        value = values.get(name)
        if value is None:
            continue
        lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string
