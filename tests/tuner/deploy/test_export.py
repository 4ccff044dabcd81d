"""tuner.deploy.export and `tuner export`: one TorchScript or ONNX file, normalization inside,
that agrees with the Classifier it came from; bad input writes nothing. No Ray.

The ONNX tests need the export extra, which the dev extra includes: they run in CI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tuner.cli import main
from tuner.deploy.classifier import load_model
from tuner.deploy.export import EXPORT_EXTRA, METADATA_KEY, default_output, export_model
from tuner.deploy.model_file import (
    FORMAT_VERSION,
    ModelFileError,
    model_record,
    read_model_file,
    write_model_file,
)
from tuner.errors import ConfigError
from tuner.experiment import MODEL_FILE
from tuner.io import file_mode
from tuner.train.config import TrainConfig
from tuner.train.model import ConvNet

TINY: dict[str, Any] = {
    "n_blocks": 2, "channels_b0": 4, "channels_b1": 8, "batch_norm": True, "fc_layers": 1,
    "fc_width_0": 16, "dropout": True, "dropout_rate": 0.3,
}  # fmt: skip
MEAN, STD = [0.3, 0.4, 0.5], [0.2, 0.25, 0.3]
CLASSES = [f"c{i}" for i in range(5)]


def write_model(path: Path, channels: int = 3, size: int = 16) -> Path:
    torch.manual_seed(0)
    net = ConvNet(TrainConfig.from_dict(TINY).arch, channels, len(CLASSES), size)
    with torch.no_grad():  # batch-norm statistics that are not the identity
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    record = model_record(
        config=TINY, state_dict=net.state_dict(), input_shape=(channels, size, size),
        classes=CLASSES, mean=MEAN[:channels], std=STD[:channels], test_acc=0.5,
    )  # fmt: skip
    return write_model_file(path, record)


@pytest.fixture
def experiment(tmp_path) -> Path:
    """An experiment directory with its model file."""
    write_model(tmp_path / MODEL_FILE)
    return tmp_path


def reference(model: Path, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The Classifier's logits for [0, 1] floats, and the network's on (x - mean) / std by
    hand: the exported file must match both, so the normalization is inside it."""
    clf = load_model(model)
    c = x.shape[1]
    mean = torch.tensor(MEAN[:c]).view(1, c, 1, 1)
    std = torch.tensor(STD[:c]).view(1, c, 1, 1)
    with torch.no_grad():
        return clf(x), clf.net((x - mean) / std)


def _batches(channels: int = 3, size: int = 16) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return [torch.rand((n, channels, size, size), generator=generator) for n in (1, 2, 7)]


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # deprecated, still supported
def test_torchscript_matches_the_classifier_with_normalization_inside(experiment):
    path = export_model(experiment, "torchscript")
    assert path == experiment / (Path(MODEL_FILE).stem + ".torchscript.pt")
    assert path == default_output(experiment / MODEL_FILE, "torchscript")
    assert path.stat().st_mode & 0o777 == file_mode()
    extra = {f"{METADATA_KEY}.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra[f"{METADATA_KEY}.json"])
    assert meta["classes"] == CLASSES and meta["input_shape"] == [3, 16, 16]
    for x in _batches():  # batch sizes other than the traced one
        expected, by_hand = reference(experiment / MODEL_FILE, x)
        with torch.no_grad():
            got = module(x)
        assert (got - expected).abs().max() <= 1e-4
        assert (got - by_hand).abs().max() <= 1e-4
    assert sorted(p.name for p in experiment.iterdir()) == sorted([MODEL_FILE, path.name])


@pytest.mark.parametrize("channels", [1, 3])
def test_onnx_matches_the_classifier_on_onnxruntime(tmp_path, channels):
    import onnx
    import onnxruntime

    model = write_model(tmp_path / MODEL_FILE, channels=channels)
    path = export_model(model, "onnx")
    assert path == tmp_path / (Path(MODEL_FILE).stem + ".onnx")
    assert path.stat().st_mode & 0o777 == file_mode()
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert meta["classes"] == CLASSES and meta["input_shape"] == [channels, 16, 16]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "images" and not isinstance(inp.shape[0], int)  # dynamic batch
    for x in _batches(channels):
        expected, by_hand = reference(model, x)
        (got,) = session.run(None, {"images": x.numpy()})
        assert got.dtype == np.float32 and got.shape == (x.shape[0], len(CLASSES))
        assert np.abs(got - expected.numpy()).max() <= 1e-4
        assert np.abs(got - by_hand.numpy()).max() <= 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([MODEL_FILE, path.name])


def test_the_legacy_exporter_takes_over_when_torch_export_fails(experiment, monkeypatch):
    import onnxruntime

    from tuner.deploy import export

    def broken(clf):
        raise RuntimeError("torch.export cannot trace this\nsecond line")

    monkeypatch.setattr(export, "_onnx_dynamo", broken)
    path = export_model(experiment, "onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta["exporter"] == "legacy"
    x = _batches()[2]
    (got,) = session.run(None, {"images": x.numpy()})
    assert np.abs(got - reference(experiment / MODEL_FILE, x)[0].numpy()).max() <= 1e-4
    # Both failing: one line naming both, nothing written.
    path.unlink()
    monkeypatch.setattr(export, "_onnx_legacy", broken)
    with pytest.raises(export.ExportError) as info:
        export_model(experiment, "onnx")
    message = str(info.value)
    assert "\n" not in message and "dynamo: torch.export cannot" in message and "legacy" in message
    assert sorted(p.name for p in experiment.iterdir()) == [MODEL_FILE]


def test_output_goes_where_asked(experiment, tmp_path):
    target = tmp_path / "out" / "nested" / "digits.ts"
    assert export_model(experiment / MODEL_FILE, "torchscript", target) == target
    assert target.is_file() and not default_output(experiment / MODEL_FILE, "torchscript").exists()


def test_onnx_without_the_extra_says_how_to_install_it(experiment, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript -> ImportError
    with pytest.raises(ConfigError) as info:
        export_model(experiment, "onnx")
    assert str(info.value) == EXPORT_EXTRA
    assert sorted(p.name for p in experiment.iterdir()) == [MODEL_FILE]


def test_bad_sources_are_one_line(tmp_path):
    with pytest.raises(ModelFileError, match=f"has no {MODEL_FILE}") as info:
        export_model(tmp_path, "torchscript")
    assert "\n" not in str(info.value)
    with pytest.raises(ModelFileError, match="does not exist"):
        export_model(tmp_path / "nope.pt", "onnx")
    write_model(tmp_path / MODEL_FILE)
    with pytest.raises(ConfigError, match="unknown export format"):
        export_model(tmp_path, "tflite")
    with pytest.raises(ConfigError, match="model file itself"):
        export_model(tmp_path, "torchscript", tmp_path / MODEL_FILE)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MODEL_FILE]


# --- tuner export -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_tuner_export_prints_the_path(experiment, capsys, fmt):
    assert main(["export", str(experiment), "--format", fmt]) == 0
    out, err = capsys.readouterr()
    path = default_output(experiment / MODEL_FILE, fmt)
    assert out == f"Exported: {path}\n" and err == "" and path.is_file()


def test_tuner_export_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    model = write_model(tmp_path / "src" / MODEL_FILE)
    newer = tmp_path / "newer.pt"
    record = read_model_file(model)
    record["format_version"] = FORMAT_VERSION + 1
    write_model_file(newer, record)
    text = tmp_path / "notes.pt"
    text.write_text("not a model\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "exported.onnx"
    cases = [
        [str(tmp_path / "missing.pt")],
        [str(text)],
        [str(newer)],
        [str(empty)],  # an experiment directory without its model file
        [str(model), "-o", str(tmp_path)],  # -o a directory
    ]
    for fmt in ("torchscript", "onnx"):
        for case in cases:
            args = ["export", case[0], "--format", fmt, *case[1:]]
            if "-o" not in case:
                args += ["-o", str(out)]
            assert main(args) == 2, args
            stdout, err = capsys.readouterr()
            assert stdout == "" and len(err.splitlines()) == 1, err
            assert err.startswith("tuner: error: "), err
            assert not out.exists(), args
    with pytest.raises(SystemExit) as info:
        main(["export", str(model), "--format", "tflite"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == [MODEL_FILE]
