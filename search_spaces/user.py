"""Search spaces written by users: a Python function in a file, or a TOML / YAML description.

`--space path/to/file.py:function` loads a define-by-run function, `function(trial)` or
`function(trial, input_size)`, that calls `trial.suggest_*` with TrainConfig's flat keys and
may return a dict of constants (see search_spaces/__init__.py).

`--space path/to/space.toml` (or .yaml / .yml) covers the simple cases declaratively:

    [constants]                  # merged into every configuration
    batch_norm = true
    n_blocks = 2

    [params]                     # sampled in this order
    channels_b0 = { choices = [16, 32, 64] }
    channels_b1 = { choices = [32, 64, 128] }
    lr = { float = [1e-4, 0.1], log = true }
    optimizer = { choices = ["sgd", "adam"] }
    momentum = { float = [0.5, 0.99], when = { optimizer = "sgd" } }   # only for SGD
    batch_size = { int = [32, 256], step = 32 }

A parameter is one of `float = [low, high]`, `int = [low, high]` (with optional `log` and
`step`) or `choices = [...]`; `when = { other = value }` (or a list of values) samples it only
when an earlier parameter took that value. Errors name the file and the parameter.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search_spaces import SearchSpace, SpaceError

DECLARATIVE_SUFFIXES = (".toml", ".yaml", ".yml")
PARAM_KEYS = {"float", "int", "choices", "log", "step", "when"}


def is_user_space(spec: str) -> bool:
    """A path to a declarative file, or `file.py:function`."""
    return spec.endswith(DECLARATIVE_SUFFIXES) or ".py:" in spec


@functools.cache  # one import per file and process
def load_user_space(spec: str) -> SearchSpace:
    if spec.endswith(DECLARATIVE_SUFFIXES):
        return _load_declarative(Path(spec).expanduser())
    return _load_function(spec)


# ---------------------------------------------------------------------------------------------
# file.py:function


def _import_function(spec: str) -> Callable[..., Any]:
    """The function `file.py:function` names (one import per file and process, shared with
    --model's: a file may hold both a network and its space)."""
    from tuner.errors import ConfigError
    from tuner.train.user_model import import_callable, is_file_spec

    if not is_file_spec(spec):
        raise SpaceError(f"--space {spec}: expected path/to/file.py:function")
    try:
        return import_callable(spec, flag="--space")
    except ConfigError as e:
        raise SpaceError(str(e)) from e


class FunctionSpace:
    """A define-by-run function from a user's file, as a picklable callable.

    Ray pickles the searcher (and so the space) whenever it saves the experiment's state; a
    pickle of this holds only the `file.py:function` spec and imports the file again on load.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._func = _import_function(spec)

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.spec = state["spec"]
        self._func = _import_function(self.spec)

    def __call__(self, trial: Any, input_size: int = 32) -> Any:
        try:
            takes_size = "input_size" in inspect.signature(self._func).parameters
        except (TypeError, ValueError):
            takes_size = False
        return self._func(trial, input_size=input_size) if takes_size else self._func(trial)


def _load_function(spec: str) -> SearchSpace:
    define = FunctionSpace(spec)
    path_text, _, func_name = spec.rpartition(":")
    doc = (inspect.getdoc(define._func) or "").split("\n")[0]
    return SearchSpace(
        name=spec, summary=doc or f"user space {func_name} from {path_text}", define=define,
        baseline=None,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# TOML / YAML


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpaceError(f"--space {path}: no such file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:
        raise SpaceError(f"--space {path}: cannot parse: {' '.join(str(e).split())}") from e
    if not isinstance(data, dict):
        raise SpaceError(f"--space {path}: expected a mapping with [params] and [constants]")
    return data


def _check_param(path: Path, name: str, spec: Any, earlier: dict[str, Any]) -> None:
    where = f"--space {path}: parameter {name!r}"
    if not isinstance(spec, dict):
        raise SpaceError(f"{where} must be a table like {{ float = [low, high] }}")
    unknown = sorted(set(spec) - PARAM_KEYS)
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(PARAM_KEYS)}")
    kinds = [k for k in ("float", "int", "choices") if k in spec]
    if len(kinds) != 1:
        raise SpaceError(f"{where} needs exactly one of float = [..], int = [..], choices = [..]")
    kind = kinds[0]
    if kind == "choices":
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise SpaceError(f"{where}: choices must be a non-empty list")
        if "log" in spec or "step" in spec:
            raise SpaceError(f"{where}: log and step apply only to float and int ranges")
    else:
        bounds = spec[kind]
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise SpaceError(f"{where}: {kind} must be [low, high]")
        number = (int,) if kind == "int" else (int, float)
        if not all(isinstance(b, number) and not isinstance(b, bool) for b in bounds):
            raise SpaceError(f"{where}: {kind} bounds must be {kind} numbers, got {bounds}")
        low, high = bounds
        if not low < high:
            raise SpaceError(f"{where}: low {low} must be below high {high}")
        if spec.get("log") and low <= 0:
            raise SpaceError(f"{where}: a log range needs low > 0, got {low}")
    for other, wanted in (spec.get("when") or {}).items():
        if other not in earlier:
            raise SpaceError(
                f"{where}: 'when' names {other!r}, which is not a parameter declared before it"
            )
        allowed = wanted if isinstance(wanted, list) else [wanted]
        choices = earlier[other].get("choices")
        if choices is not None and not set(map(repr, allowed)) <= set(map(repr, choices)):
            raise SpaceError(f"{where}: 'when' {other} = {wanted!r} is not one of {choices}")


def _load_declarative(path: Path) -> SearchSpace:
    data = _read_mapping(path)
    unknown = sorted(set(data) - {"params", "constants", "summary"})
    if unknown:
        raise SpaceError(f"--space {path}: unknown section(s) {unknown}; use params, constants")
    params = data.get("params") or {}
    constants = data.get("constants") or {}
    if not isinstance(params, dict) or not params:
        raise SpaceError(f"--space {path}: [params] must declare at least one parameter")
    if not isinstance(constants, dict):
        raise SpaceError(f"--space {path}: [constants] must be a table of values")
    both = sorted(set(params) & set(constants))
    if both:
        raise SpaceError(f"--space {path}: {both} both sampled and constant")
    earlier: dict[str, Any] = {}
    for name, spec in params.items():
        _check_param(path, name, spec, earlier)
        earlier[name] = spec

    return SearchSpace(
        name=str(path), summary=data.get("summary") or f"user space from {path.name}",
        define=DeclarativeSpace(params, constants), baseline=None,
    )  # fmt: skip


class DeclarativeSpace:
    """A TOML / YAML space as a define-by-run callable: plain data, so it pickles (Ray saves
    the searcher, and the space with it, while a search runs)."""

    def __init__(self, params: dict[str, Any], constants: dict[str, Any]) -> None:
        self.params = params
        self.constants = constants

    def __call__(self, trial: Any, input_size: int = 32) -> dict[str, Any]:
        for name, spec in self.params.items():
            conditions = spec.get("when") or {}
            if not all(
                name_ in trial.params
                and trial.params[name_] in (wanted if isinstance(wanted, list) else [wanted])
                for name_, wanted in conditions.items()
            ):
                continue
            if "choices" in spec:
                trial.suggest_categorical(name, spec["choices"])
            elif "int" in spec:
                low, high = spec["int"]
                trial.suggest_int(
                    name, low, high, step=spec.get("step", 1), log=spec.get("log", False)
                )
            else:
                low, high = spec["float"]
                trial.suggest_float(
                    name, float(low), float(high), step=spec.get("step"), log=spec.get("log", False)
                )
        return dict(self.constants)
