"""A network the user writes: `--model path/to/file.py:build` or `--model package.module:build`.

`build(params, input_shape, num_classes) -> nn.Module` receives the configuration's model
parameters (every key that is not one of TrainConfig's training fields) as they were sampled,
the dataset's (channels, height, width) and its class count. The trial trains what it returns
exactly as it trains the built-in ConvNet: same loaders, optimizer, schedule, bf16 autocast and
channels_last on a GPU, checkpoints, pricing and export.

Importing a user's file is the only code of theirs this runs, and only from the path they gave;
a model file (model.pt) records that path and never carries code itself.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where a network is built: `tuner --help` needs none
    from torch import nn

MODEL_KEY = "model"  # the flat config key that names the user's build function


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def is_file_spec(spec: str) -> bool:
    """`path/to/file.py:function` (a file) rather than `package.module:function` (an import)."""
    path, sep, _ = spec.rpartition(":")
    return bool(sep) and path.endswith(".py")


def absolute_spec(spec: str) -> str:
    """A file spec with its path made absolute (trials run in their own directories, so a
    relative path would point elsewhere there); an import spec as it is."""
    if not is_file_spec(spec):
        return spec
    path, _, func = spec.rpartition(":")
    return f"{Path(path).expanduser().resolve()}:{func}"


def import_callable(spec: str, flag: str = "--model") -> Callable[..., Any]:
    """The function `spec` names: `file.py:function` (imported from that file once per process)
    or `package.module:function`. ConfigError, one line naming `flag` and `spec`, otherwise."""
    target, sep, func_name = spec.rpartition(":")
    if not sep or not target or not func_name:
        raise ConfigError(
            f"{flag} {spec}: expected path/to/file.py:function or package.module:function"
        )
    if not func_name.isidentifier():
        raise ConfigError(f"{flag} {spec}: {func_name!r} is not a function name")
    module = _import_file(target, spec, flag) if target.endswith(".py") else None
    if module is None:
        try:
            module = importlib.import_module(target)
        except Exception as e:
            raise ConfigError(f"{flag} {spec}: cannot import {target}: {_one_line(e)}") from e
    func = getattr(module, func_name, None)
    if not callable(func):
        found = sorted(n for n, v in vars(module).items() if inspect.isfunction(v))
        raise ConfigError(f"{flag} {spec}: {target} has no function {func_name!r} (found: {found})")
    return func


def _import_file(path_text: str, spec: str, flag: str) -> Any:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ConfigError(f"{flag} {spec}: no such file {path}")
    resolved = path.resolve()
    # One module per file and process, named after its path: importing it again (every trial
    # of a reused Ray worker asks) costs a dict lookup, and two files may share a stem.
    name = f"_tuner_user_{hashlib.sha1(str(resolved).encode()).hexdigest()[:12]}"
    module = sys.modules.get(name)
    if module is not None:
        return module
    loader_spec = importlib.util.spec_from_file_location(name, resolved)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"{flag} {spec}: cannot import {path}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # before exec: dataclasses and pickle look the module up
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise ConfigError(f"{flag} {spec}: importing {path} failed: {_one_line(e)}") from e
    return module


def source_digest(spec: str) -> dict[str, Any] | None:
    """{path, sha256} of a file spec's source (provenance: which code trained the model)."""
    if not is_file_spec(spec):
        return None
    path = Path(spec.rpartition(":")[0])
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
    return {"path": str(path), "sha256": digest}


class ModelBuildError(ConfigError):
    """The user's build() raised or returned no nn.Module; the message names the file, the
    function, the parameters and the input shape."""


class ReadRecorder(Mapping[str, Any]):
    """The parameters handed to `build`, noting which keys it reads: a sampled key that no
    build ever reads is searched for nothing (the dry run says so)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = dict(params)
        self.read: set[str] = set()

    @property
    def given(self) -> dict[str, Any]:
        """The parameters, without counting as a read."""
        return self._params

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self._params[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self._params.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self._params

    def __iter__(self) -> Iterator[str]:  # iterating reads everything
        self.read.update(self._params)
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)


def _values(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no parameters"


def build_user_model(
    spec: str,
    params: Mapping[str, Any],
    input_shape: tuple[int, int, int],
    num_classes: int,
) -> nn.Module:
    """`build(params, input_shape, num_classes)` of `spec`, checked to be an nn.Module.
    Any error is one ConfigError line naming the file, the function and the parameters."""
    from torch import nn

    build = import_callable(spec)  # the file is imported once; later calls cost a lookup
    try:
        model = build(params, tuple(input_shape), num_classes)
    except Exception as e:
        shown = params.given if isinstance(params, ReadRecorder) else params
        shape = "x".join(map(str, input_shape))
        raise ModelBuildError(
            f"--model {spec} failed for {_values(shown)} at {shape}: {_one_line(e)}"
        ) from e
    if not isinstance(model, nn.Module):
        raise ModelBuildError(
            f"--model {spec} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model
