"""model.pt: a trained classifier as one file that stands alone, outside its experiment.

A plain dict of tensors, strings, numbers, lists and dicts, so that
`torch.load(path, weights_only=True)` reads it (no pickled classes: loading a model file from
someone else runs no code of theirs). It holds everything needed to rebuild and use the
network: its configuration (the search space's flat keys, which rebuild the architecture), the
input shape, the class names, the normalization, the weights, and what it scored, with the
provenance of the run that trained it. A network of the user's own (`--model file.py:build`)
is rebuilt by importing that build() again: the file records its import path and the hash of
its source, never its code.

    {"format": "cnn-tuner-model", "format_version": 1,
     "config": {...flat trial config...}, "arch": {...ArchSpec fields...} | None,
     "build": None | {"spec": "path/net.py:build", "source": {"path", "sha256"} | None},
     "input_shape": [C, H, W], "classes": [...], "normalization": {"mean": [...], "std": [...]},
     "state_dict": {...}, "train_config": {...TrainConfig fields...},
     "val_acc": float | None, "test_acc": float | None, "source": {...}, "provenance": {...}}

Torch only; no Ray.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError
from tuner.experiment import MODEL_FILE
from tuner.io import atomic_write_bytes

FORMAT = "cnn-tuner-model"
FORMAT_VERSION = 1  # raise on any change a reader of the older version could not follow


class ModelFileError(ConfigError):
    """A file that is not a model file this version can read (one line, exit 2)."""


def _plain(value: Any) -> Any:
    """JSON-like data only (weights_only=True refuses anything else): tuples become lists,
    non-finite floats None, other objects their str()."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):  # float() too: numpy.float64 is a float subclass
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return type(value)(value) if value is not None else None  # str/int subclasses too
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _plain(value.item())
    return str(value)


def model_record(
    *,
    config: Mapping[str, Any],
    state_dict: Mapping[str, Any],
    input_shape: Sequence[int],
    classes: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    val_acc: float | None = None,
    test_acc: float | None = None,
    source: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The model file's dict. `config`: the flat trial config that built the network
    (TrainConfig.from_dict reads it); `state_dict`: its weights; `source`: where they come
    from (experiment, trial, seed, ...)."""
    import torch

    from tuner.train.config import TrainConfig
    from tuner.train.user_model import source_digest

    train_config = TrainConfig.from_dict(dict(config))  # a config that cannot build fails here
    train_fields = asdict(train_config)
    arch = train_fields.pop("arch")
    build = None
    if train_config.model:  # the user's network: where its code is, never the code itself
        arch = None
        build = {"spec": train_config.model, "source": source_digest(train_config.model)}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": _plain(dict(config)),
        "arch": _plain(arch),
        "build": _plain(build),
        "train_config": _plain(train_fields),
        "input_shape": [int(v) for v in input_shape],
        "classes": [str(c) for c in classes],
        "normalization": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        "state_dict": {
            k: v.detach().to("cpu") for k, v in state_dict.items() if isinstance(v, torch.Tensor)
        },  # fmt: skip
        "val_acc": _plain(val_acc),
        "test_acc": _plain(test_acc),
        "source": _plain(dict(source or {})),
        "provenance": _plain(dict(provenance or {})),
    }


def write_model_file(path: str | Path, record: Mapping[str, Any]) -> Path:
    """Write `record` (see model_record) atomically, with the user's umask."""
    import torch

    buffer = io.BytesIO()
    torch.save(dict(record), buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The dict of a model file, checked. ModelFileError (one line) for a missing file, a file
    that is not a model file, or one written by a newer cnn-tuner."""
    import torch

    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFileError(f"{path} does not exist")
    if not path.is_file():
        raise ModelFileError(
            f"{path} is not a file (give a model file, e.g. EXPERIMENT/{MODEL_FILE})"
        )
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only=True refused a pickled object
        raise ModelFileError(
            f"{path} is not a cnn-tuner model file (it holds Python objects beyond tensors and "
            "plain data, which weights_only loading refuses)"
        ) from None
    except Exception:  # noqa: BLE001  not a zip, not a torch file, cut short
        raise ModelFileError(f"{path} is not a cnn-tuner model file (not a torch file)") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a cnn-tuner model file (no {FORMAT!r} format tag)")
    version = record.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} is model format {version}, newer than this cnn-tuner reads "
            f"({FORMAT_VERSION}); upgrade cnn-tuner"
        )
    missing = [k for k in ("config", "input_shape", "classes", "normalization", "state_dict")
               if k not in record]  # fmt: skip
    if missing:
        raise ModelFileError(f"{path} is a damaged model file (no {', '.join(missing)})")
    return record


def describe(record: Mapping[str, Any]) -> str:
    """One line about a model file: its shape, classes and scores."""
    shape = "x".join(str(v) for v in record["input_shape"])
    scores = ", ".join(
        f"{name} {record[key]:.2%}" for key, name in (("val_acc", "val"), ("test_acc", "test"))
        if isinstance(record.get(key), float)
    )  # fmt: skip
    source = json.dumps(record.get("source", {}), sort_keys=True)
    return (
        f"{len(record['classes'])} classes at {shape}"
        + (f"; {scores}" if scores else "")
        + (f"; from {source}" if source != "{}" else "")
    )
