"""tuner.deploy.classifier: a model file loaded back as a classifier, and `tuner predict`.

Real (tiny) networks, real image files written with PIL; no Ray. What matters most: images at
the model's shape pass through untouched and are scored with the training pipeline's own
arithmetic, so predicting the test split reproduces the recorded test accuracy exactly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tuner.cli import main
from tuner.data import _resize_shorter_and_crop, load_dataset
from tuner.deploy.classifier import Classifier, Prediction, load_model
from tuner.deploy.model_file import (
    FORMAT_VERSION,
    ModelFileError,
    model_record,
    read_model_file,
    write_model_file,
)
from tuner.errors import ConfigError, DataError
from tuner.experiment import MODEL_FILE
from tuner.train.config import TrainConfig
from tuner.train.loader import DeviceLoader
from tuner.train.loop import evaluate
from tuner.train.model import ConvNet
from tuner.train.trial import EVAL_BATCH

# Batch norm (running statistics: eval mode must matter) and dropout (eval must switch it off).
TINY: dict[str, Any] = {
    "n_blocks": 2, "channels_b0": 4, "channels_b1": 8, "batch_norm": True, "fc_layers": 1,
    "fc_width_0": 16, "dropout": True, "dropout_rate": 0.3,
}  # fmt: skip
MEAN, STD = (0.3, 0.4, 0.5), (0.2, 0.25, 0.3)  # not the lab's 0.5/0.5: normalization must show


def write_model(
    path: Path, channels: int = 1, size: int = 8, num_classes: int = 10, seed: int = 0, **extra
) -> Path:
    """A tiny ConvNet with random weights (and non-trivial batch-norm statistics) as a model
    file."""
    torch.manual_seed(seed)
    net = ConvNet(TrainConfig.from_dict(TINY).arch, channels, num_classes, size)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    record = model_record(
        config=TINY, state_dict=net.state_dict(), input_shape=(channels, size, size),
        classes=[f"c{i}" for i in range(num_classes)], mean=MEAN[:channels], std=STD[:channels],
        val_acc=0.5, test_acc=0.25, source={"test": True}, **extra,
    )  # fmt: skip
    return write_model_file(path, record)


def digits_like(n: int, channels: int = 1, size: int = 8, seed: int = 1) -> np.ndarray:
    """uint8 (N, C, H, W) with strokes on a dark ground, like the digits images."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, channels, size, size)).astype(np.uint8)
    x[rng.random(x.shape) < 0.4] = 0
    return x


@pytest.fixture(scope="module")
def gray(tmp_path_factory) -> Classifier:
    return load_model(write_model(tmp_path_factory.mktemp("gray") / MODEL_FILE))


@pytest.fixture(scope="module")
def rgb(tmp_path_factory) -> Classifier:
    return load_model(write_model(tmp_path_factory.mktemp("rgb") / MODEL_FILE, channels=3))


def hand_logits(clf: Classifier, x: torch.Tensor) -> torch.Tensor:
    """The training pipeline's normalization (tuner.train.loader), written out again."""
    c = x.shape[1]
    std = torch.tensor(STD[:c], dtype=torch.float32)
    mean = torch.tensor(MEAN[:c], dtype=torch.float32)
    scale = (1.0 / (255.0 * std)).view(1, c, 1, 1)
    shift = (-mean / std).view(1, c, 1, 1)
    with torch.no_grad():
        return clf.net(torch.addcmul(shift, x.float(), scale))


# --- the file and the round trip ------------------------------------------------------------


def test_the_model_file_loads_without_pickled_code_and_round_trips(tmp_path):
    path = write_model(tmp_path / MODEL_FILE)
    raw = torch.load(path, weights_only=True)  # plain data: no classes unpickled
    assert raw["format"] == "cnn-tuner-model" and raw["format_version"] == FORMAT_VERSION
    clf = load_model(path)
    assert isinstance(clf, Classifier)
    assert not clf.training and not any(m.training for m in clf.modules())
    assert clf.device == torch.device("cpu")
    assert clf.classes == tuple(f"c{i}" for i in range(10))
    assert clf.input_shape == (1, 8, 8)
    assert "state_dict" not in clf.record and clf.record["test_acc"] == 0.25
    weights = clf.net.state_dict()
    assert weights.keys() == raw["state_dict"].keys()
    for name, tensor in raw["state_dict"].items():
        assert torch.equal(weights[name], tensor), name


def test_load_model_is_exported_lazily_from_tuner(tmp_path):
    import tuner

    assert "load_model" in tuner.__all__
    assert tuner.load_model is load_model


def test_an_experiment_directory_gives_its_model_file(tmp_path):
    write_model(tmp_path / MODEL_FILE)
    assert load_model(tmp_path).classes[0] == "c0"
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    with pytest.raises(ModelFileError, match=f"has no {MODEL_FILE}") as info:
        load_model(empty)
    assert "\n" not in str(info.value)


# --- arithmetic: exactly the pipeline's ------------------------------------------------------


def test_predict_on_a_uint8_batch_is_the_pipelines_arithmetic(gray):
    x = torch.from_numpy(digits_like(EVAL_BATCH + 37))  # two batches, the second partial
    pred = gray.predict(x)
    expected = hand_logits(gray, x)
    assert isinstance(pred, Prediction) and len(pred) == x.shape[0]
    assert torch.equal(pred.indices, expected.argmax(1))  # exact, not "mostly"
    assert pred.classes == [gray.classes[i] for i in expected.argmax(1).tolist()]
    # Bit for bit, batch by batch as tuner.train.loop.evaluate runs them.
    chunked = torch.cat([hand_logits(gray, b) for b in x.split(EVAL_BATCH)])
    assert torch.equal(gray.logits(x), chunked)
    torch.testing.assert_close(pred.probabilities, torch.softmax(expected, 1))
    # ... and the plain textbook formula agrees to rounding.
    plain = gray.net((x.float() / 255 - MEAN[0]) / STD[0]).detach()
    torch.testing.assert_close(pred.probabilities, torch.softmax(plain, 1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(pred.probabilities.sum(1), torch.ones(len(x)))


def test_forward_takes_floats_in_0_1_and_normalizes_inside(rgb):
    x = torch.rand(4, 3, 8, 8)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(rgb(x), rgb.net((x - mean) / std), atol=1e-5, rtol=1e-5)


def test_predict_on_the_test_split_reproduces_the_recorded_accuracy(tmp_path):
    """Trained a little on digits and scored as tuner.train.scoring scores the test split: the
    model file's classifier must get the very same accuracy, image for image."""
    bundle = load_dataset("digits")
    from tuner.train.loader import channel_stats

    mean, std = channel_stats(bundle.train.x)
    cfg = TrainConfig.from_dict(TINY)
    torch.manual_seed(0)
    net = ConvNet(cfg.arch, 1, bundle.num_classes, 8)
    train = DeviceLoader(bundle.train.x, bundle.train.y, batch_size=64, device="cpu",
                         mean=mean, std=std, shuffle=True)  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for x, y in train:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    test = DeviceLoader(bundle.test.x, bundle.test.y, batch_size=EVAL_BATCH, device="cpu",
                        mean=mean, std=std, shuffle=False)  # fmt: skip
    stats, _ = evaluate(net, test, torch.device("cpu"))
    assert stats.acc > 0.3  # it learned something, so the comparison means something
    write_model_file(tmp_path / MODEL_FILE, model_record(
        config=TINY, state_dict=net.state_dict(), input_shape=bundle.input_shape,
        classes=bundle.classes, mean=mean, std=std, test_acc=stats.acc,
    ))  # fmt: skip
    clf = load_model(tmp_path)
    pred = clf.predict(bundle.test.x)  # numpy uint8 (N, 1, 8, 8): the batch rule
    acc = float((pred.indices.numpy() == bundle.test.y).mean())
    assert acc == clf.record["test_acc"] == stats.acc
    with torch.no_grad():
        expected = torch.cat([net(x).argmax(1) for x, _ in test])
    assert torch.equal(pred.indices, expected)


# --- images as they come ----------------------------------------------------------------------


def _save(array_chw: np.ndarray, path: Path, mode: str | None = None) -> Path:
    hwc = array_chw.transpose(1, 2, 0)
    image = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
    if mode is not None:
        image = image.convert(mode)
    image.save(path)
    return path


def test_png_files_give_exactly_the_arrays_predictions(gray, tmp_path):
    x = digits_like(6)
    paths = [_save(img, tmp_path / f"{i}.png") for i, img in enumerate(x)]
    from_files = gray.predict(paths)
    from_array = gray.predict(torch.from_numpy(x))
    assert from_files.classes == from_array.classes
    assert torch.equal(from_files.probabilities, from_array.probabilities)
    assert torch.equal(gray.preprocess(paths), torch.from_numpy(x))  # untouched pixels


def test_jpeg_files_are_decoded(gray, tmp_path):
    x = digits_like(3)
    paths = [_save(img, tmp_path / f"{i}.jpg") for i, img in enumerate(x)]
    pred = gray.predict([str(p) for p in paths])
    assert len(pred) == 3 and pred.probabilities.shape == (3, 10)
    assert gray.preprocess(paths).shape == (3, 1, 8, 8)


def test_a_grayscale_png_given_to_an_rgb_model_becomes_three_equal_channels(rgb, tmp_path):
    x = digits_like(4)  # (4, 1, 8, 8)
    paths = [_save(img, tmp_path / f"{i}.png") for i, img in enumerate(x)]
    assert torch.equal(rgb.preprocess(paths), torch.from_numpy(x).expand(-1, 3, -1, -1))
    three = rgb.predict(torch.from_numpy(x).repeat(1, 3, 1, 1))
    assert rgb.predict(paths).classes == three.classes


def test_an_image_of_another_size_is_resized_and_cropped_as_the_dataset_was(gray, rgb, tmp_path):
    big = digits_like(1, channels=3, size=20, seed=5)[0][:, :13, :]  # (3, 13, 20): 20 wide
    path = _save(big, tmp_path / "wide.png")
    expected_rgb = np.array(_resize_shorter_and_crop(Image.open(path).convert("RGB"), 8))
    assert torch.equal(rgb.preprocess(path)[0], torch.from_numpy(expected_rgb.transpose(2, 0, 1)))
    assert rgb.predict(path).classes == rgb.predict(expected_rgb).classes
    # A colour image for a grayscale model: its luma, then the same resize.
    expected_l = np.array(_resize_shorter_and_crop(Image.open(path).convert("L"), 8))
    assert torch.equal(gray.preprocess(path)[0, 0], torch.from_numpy(expected_l))
    assert len(gray.predict(path)) == 1


def test_rgba_and_palette_images_are_converted(gray, rgb, tmp_path):
    x = digits_like(2, channels=3, seed=7)
    rgba = [_save(img, tmp_path / f"{i}-rgba.png", "RGBA") for i, img in enumerate(x)]
    assert Image.open(rgba[0]).mode == "RGBA"
    assert torch.equal(rgb.preprocess(rgba), torch.from_numpy(x))  # alpha dropped, RGB kept
    assert rgb.predict(rgba).classes == rgb.predict(torch.from_numpy(x)).classes
    palette = [_save(img, tmp_path / f"{i}-p.png", "P") for i, img in enumerate(x)]
    assert Image.open(palette[0]).mode == "P"
    as_rgb = np.stack([np.array(Image.open(p).convert("RGB")) for p in palette])  # NHWC
    assert torch.equal(rgb.preprocess(palette), torch.from_numpy(as_rgb).permute(0, 3, 1, 2))
    luma = np.stack([np.asarray(Image.open(p).convert("L")) for p in rgba])[:, None]
    assert torch.equal(gray.preprocess(rgba), torch.from_numpy(luma))
    assert len(gray.predict(palette)) == 2


def test_every_form_of_the_same_images_agrees(rgb, tmp_path):
    x = digits_like(3, channels=3, seed=11)  # (N, C, H, W)
    paths = [_save(img, tmp_path / f"{i}.png") for i, img in enumerate(x)]
    hwc = x.transpose(0, 2, 3, 1)
    forms = {
        "paths": paths,
        "strings": [str(p) for p in paths],
        "pil": [Image.open(p) for p in paths],
        "numpy hwc list": list(hwc),
        "numpy nhwc": hwc,
        "numpy nchw": x,
        "torch chw list": [torch.from_numpy(img) for img in x],
        "torch nchw": torch.from_numpy(x),
        "torch float": torch.from_numpy(x).float() / 255,
        "numpy float": x.astype(np.float32) / 255,
    }
    reference = rgb.predict(torch.from_numpy(x))
    for name, form in forms.items():
        pred = rgb.predict(form)
        assert pred.classes == reference.classes, name
        assert torch.equal(pred.probabilities, reference.probabilities), name
    assert rgb.predict(paths[0]).classes == reference.classes[:1]  # one path, not a list


def test_numpy_chw_only_where_unambiguous(gray):
    img = digits_like(1)[0]  # (1, 8, 8): CHW (shape[0] 1, shape[2] 8)
    assert torch.equal(gray.preprocess(img)[0], torch.from_numpy(img))
    assert torch.equal(gray.preprocess(img[0])[0], torch.from_numpy(img))  # HW
    assert torch.equal(gray.preprocess(img.transpose(1, 2, 0))[0], torch.from_numpy(img))  # HWC


def test_top_k_is_ranked_and_capped(gray):
    pred = gray.predict(torch.from_numpy(digits_like(2)), top=2)
    top = pred.top()
    assert [len(row) for row in top] == [2, 2]
    assert top[0][0][0] == pred.classes[0] and top[0][0][1] >= top[0][1][1]
    assert [len(row) for row in pred.top(50)] == [10, 10]  # capped at the classes
    assert top[1][0][1] == pytest.approx(float(pred.probabilities[1].max()))
    with pytest.raises(ConfigError, match="top"):
        gray.predict(torch.from_numpy(digits_like(1)), top=0)


# --- bad input: one line each -----------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("kind", ["missing", "text", "tensor", "newer", "directory"])
def test_what_is_not_a_model_file_is_one_line(tmp_path, kind):
    path = tmp_path / MODEL_FILE
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "newer":
        write_model(path)
        record = read_model_file(path)
        record["format_version"] = FORMAT_VERSION + 1
        write_model_file(path, record)
    elif kind == "directory":
        path = tmp_path
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = _one_line(info)
    assert str(tmp_path) in message
    if kind == "newer":
        assert "newer" in message


def test_images_that_do_not_decode_are_one_line_naming_the_file(gray, tmp_path):
    fake = tmp_path / "x.png"
    fake.write_text("not an image\n")
    with pytest.raises(DataError) as info:
        gray.predict([_save(digits_like(1)[0], tmp_path / "ok.png"), fake])
    assert str(fake) in _one_line(info)
    with pytest.raises(DataError) as info:
        gray.predict(tmp_path / "missing.png")
    assert "missing.png does not exist" in _one_line(info)
    with pytest.raises(DataError) as info:
        gray.predict(tmp_path)
    assert "directory" in _one_line(info)


@pytest.mark.parametrize(
    "images, needle",
    [
        (42, "cannot classify a int"),
        ([{"a": 1}], "cannot classify a dict"),
        ([], "no images"),
        (torch.full((1, 8, 8), 3.0), r"\[0, 1\]"),
        (torch.full((1, 8, 8), float("nan")), r"\[0, 1\]"),
        (np.zeros((8, 8), dtype=np.int64), "dtype int64"),
        (torch.zeros(8, dtype=torch.uint8), "not an image"),
        (torch.zeros((1, 5, 8, 8), dtype=torch.uint8), "5 channels"),
    ],
)
def test_wrong_inputs_are_data_errors(gray, images, needle):
    with pytest.raises(DataError, match=needle) as info:
        gray.predict(images)
    _one_line(info)


# --- tuner predict ----------------------------------------------------------------------------


def test_tuner_predict_prints_one_line_per_image(tmp_path, capsys):
    write_model(tmp_path / MODEL_FILE)
    paths = [str(_save(img, tmp_path / f"{i}.png")) for i, img in enumerate(digits_like(3))]
    assert main(["predict", str(tmp_path / MODEL_FILE), *paths, "--top", "2"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and err == ""
    expected = load_model(tmp_path).predict(paths).top(2)
    for path, line, ranked in zip(paths, lines, expected, strict=True):
        assert re.fullmatch(rf"{re.escape(path)}: c\d 0\.\d{{3}}, c\d 0\.\d{{3}}", line), line
        assert line == f"{path}: " + ", ".join(f"{c} {p:.3f}" for c, p in ranked)
    # An experiment directory works as MODEL; --top is capped at the classes (default 3).
    assert main(["predict", str(tmp_path), paths[0], "--top", "99"]) == 0
    assert len(capsys.readouterr().out.split(", ")) == 10


def test_tuner_predict_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    write_model(tmp_path / MODEL_FILE)
    image = str(_save(digits_like(1)[0], tmp_path / "ok.png"))
    fake = tmp_path / "fake.png"
    fake.write_text("text")
    newer = tmp_path / "newer.pt"
    record = read_model_file(tmp_path / MODEL_FILE)
    record["format_version"] = FORMAT_VERSION + 1
    write_model_file(newer, record)
    cases = [
        [str(tmp_path / "nope.pt"), image],
        [str(fake), image],  # a non-model file as MODEL
        [str(newer), image],
        [str(tmp_path / MODEL_FILE), str(fake)],
        [str(tmp_path / MODEL_FILE), str(tmp_path / "missing.png")],
    ]
    before = sorted(tmp_path.iterdir())
    for args in cases:
        assert main(["predict", *args]) == 2, args
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and err.startswith("tuner: error: "), err
    with pytest.raises(SystemExit) as info:
        main(["predict", str(tmp_path / MODEL_FILE), image, "--top", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("tuner: error: ") and "--top" in err
    assert sorted(tmp_path.iterdir()) == before  # nothing written
