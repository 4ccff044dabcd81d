"""Export a model file to TorchScript or ONNX: one file, normalization inside.

    export_model("experiments/seed_cnn-digits-...", "onnx")   # -> .../model.onnx

The exported network is tuner.deploy.classifier.Classifier's forward: float images in [0, 1],
(B, C, H, W) with any batch size, to logits (B, num_classes); (x - mean) / std is part of the
graph, so a runtime needs nothing but the file. The class names and input shape travel with
it: TorchScript's extra file `cnn-tuner.json`, ONNX's metadata property `cnn-tuner`.

ONNX goes through torch's exporter (torch.export + onnxscript first, the legacy TorchScript-based
one if that fails) and is checked on onnxruntime before it is written; both need the `export`
extra. Torch only; no Ray.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from tuner.deploy.classifier import Classifier, load_model, model_path
from tuner.errors import ConfigError
from tuner.io import atomic_write_bytes

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}
METADATA_KEY = "cnn-tuner"  # TorchScript extra file cnn-tuner.json, ONNX metadata property
ONNX_OPSET = 18  # onnxruntime 1.14+ runs it, the extra's floor (1.18) comfortably
EXPORT_EXTRA = 'ONNX export needs the export extra: pip install "cnn-tuner[export]"'
INPUT_NAME, OUTPUT_NAME = "images", "logits"


class ExportError(ConfigError):
    """The exporter could not write this model (one line, exit 2)."""


def default_output(model_file: Path, fmt: str) -> Path:
    """Next to the model file, named after it: model.torchscript.pt, model.onnx."""
    return model_file.with_name(model_file.stem + SUFFIXES[fmt])


def export_model(
    source: str | Path, fmt: str, output: str | Path | None = None, build: str | None = None
) -> Path:
    """Write `source` (a model file, or an experiment directory's) as `fmt` ("torchscript" or
    "onnx") to `output` (default next to the model file), atomically. The path written.
    `build`: where a user network's build function is now (see load_model).
    ModelFileError / ConfigError (one line) for a bad source, format or missing extra."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        _require_onnx()  # before any work: a missing extra should not cost a model load
    source_file = model_path(source)
    target = Path(output).expanduser() if output is not None else default_output(source_file, fmt)
    if target.is_dir():
        raise ConfigError(f"{target} is a directory; give -o a file name")
    if target.exists() and source_file.exists() and target.resolve() == source_file.resolve():
        raise ConfigError(f"{target} is the model file itself; give -o another file name")
    clf = load_model(source_file, build=build)
    metadata = _metadata(clf)
    data = _torchscript(clf, metadata) if fmt == "torchscript" else _onnx(clf, metadata)
    return atomic_write_bytes(target, data)


def _metadata(clf: Classifier) -> dict[str, Any]:
    """What a runtime needs besides the graph: the classes, in index order, and the input."""
    record = clf.record
    return {
        "classes": list(clf.classes),
        "input_shape": list(clf.input_shape),
        "input": "float32 (B, C, H, W) in [0, 1]; normalization is inside",
        "output": "logits (B, num_classes)",
        "normalization": record.get("normalization"),
        "val_acc": record.get("val_acc"),
        "test_acc": record.get("test_acc"),
        "source": record.get("source", {}),
        "format_version": record.get("format_version"),
    }


def _example(clf: Classifier, batch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand((batch, *clf.input_shape), generator=generator)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters warn (deprecations, TracerWarnings, torch.export's notes) and print
    progress lines; none of it is for the user of a working export."""
    loggers = [logging.getLogger(name) for name in ("torch", "torch.onnx", "torch.export",
                                                    "onnxscript", "onnx_ir")]  # fmt: skip
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _torchscript(clf: Classifier, metadata: dict[str, Any]) -> bytes:
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(clf, _example(clf, 2))
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={f"{METADATA_KEY}.json": json.dumps(metadata)})
    return buffer.getvalue()


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError(EXPORT_EXTRA) from None


def _onnx(clf: Classifier, metadata: dict[str, Any]) -> bytes:
    """ONNX bytes that onnxruntime runs and that agree with `clf`: torch.export's exporter,
    then the legacy one if it fails or disagrees."""
    failures = []
    for name, exporter in (("dynamo", _onnx_dynamo), ("legacy", _onnx_legacy)):
        try:
            with _quiet():
                proto = exporter(clf)
            _check_onnx(clf, proto)
        except Exception as e:  # noqa: BLE001  any exporter failure: try the next one
            failures.append(f"{name}: {_one_line(e)}")
            continue
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps({**metadata, "exporter": name})
        proto.doc_string = "cnn-tuner classifier: " + metadata["input"]
        return proto.SerializeToString()
    raise ExportError(f"ONNX export failed ({'; '.join(failures)})")


def _onnx_dynamo(clf: Classifier) -> Any:
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        clf, (_example(clf, 2),), None, dynamo=True, opset_version=ONNX_OPSET,
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},),
        optimize=True, verbose=False, external_data=False,
    )  # fmt: skip
    if program is None:
        raise ExportError("the exporter returned nothing")
    return program.model_proto


def _onnx_legacy(clf: Classifier) -> Any:
    import onnx

    # A scratch file, not the target: it is read back, checked and only then written there.
    with tempfile.TemporaryDirectory(prefix="cnn-tuner-export-") as scratch:
        path = Path(scratch) / "scratch.onnx"
        torch.onnx.export(
            clf, (_example(clf, 2),), path, dynamo=False, opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )  # fmt: skip
        return onnx.load(path)


def _check_onnx(clf: Classifier, proto: Any) -> None:
    """Run the graph on onnxruntime at another batch size than it was traced with; it must
    agree with the module (a loose bound: this catches a wrong graph, not rounding)."""
    import numpy as np
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    x = _example(clf, 3)
    with torch.no_grad():
        expected = clf(x).numpy()
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-3, atol=1e-3):
        raise ExportError("onnxruntime's output differs from the model's")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
