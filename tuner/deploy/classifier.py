"""A model file as a classifier: images in, class names and probabilities out.

    clf = load_model("experiments/seed_cnn-digits-.../model.pt")   # or the experiment dir
    pred = clf.predict(["a.png", "b.jpg"])
    pred.classes        # ["3", "8"]
    pred.top(3)         # [[("3", 0.97), ("5", 0.02), ("9", 0.01)], ...]

`predict` takes images as they come (file paths, PIL images, numpy arrays, torch tensors, of
any size and mode) and converts each the way the dataset was converted (tuner.data): to one
channel or RGB, then shorter side resized and centre-cropped to the model's size. An image
already at the model's shape passes through untouched, and the logits are computed with the
training pipeline's own float32 arithmetic (tuner/train/loader.py), so that predicting the
test split reproduces the recorded test accuracy exactly.

`Classifier.forward` takes float images in [0, 1] and normalizes inside: it is what
tuner.deploy.export writes to TorchScript and ONNX.

Torch only; no Ray.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tuner.deploy.model_file import ModelFileError, read_model_file
from tuner.errors import ConfigError, DataError

EVAL_BATCH = 1024  # as tuner.train.trial.EVAL_BATCH, which scored the test split


def model_path(source: str | Path) -> Path:
    """A model file, or an experiment directory's model file. ModelFileError (one line) for a
    directory without one."""
    from tuner.experiment import MODEL_FILE

    path = Path(source).expanduser()
    if path.is_dir():
        candidate = path / MODEL_FILE
        if not candidate.is_file():
            raise ModelFileError(
                f"{path} has no {MODEL_FILE} (a search writes it when it finishes; give a "
                "model file or a finished experiment directory)"
            )
        return candidate
    return path


@dataclass(frozen=True)
class Prediction:
    """What `Classifier.predict` found, one row per image."""

    classes: list[str]  # the predicted class of each image
    indices: torch.Tensor  # (N,) int64: their indices into class_names
    probabilities: torch.Tensor  # (N, num_classes) float32, softmax of the logits
    class_names: tuple[str, ...]  # the model's classes, in index order
    default_top: int | None = None  # what top() gives without k; None: every class

    def __len__(self) -> int:
        return len(self.classes)

    def top(self, k: int | None = None) -> list[list[tuple[str, float]]]:
        """Per image, its k most probable classes as (class, probability), most probable first
        (k is capped at the number of classes)."""
        k = self.default_top if k is None else _check_top(k)
        k = len(self.class_names) if k is None else min(k, len(self.class_names))
        values, indices = self.probabilities.topk(k, dim=1)
        return [
            [(self.class_names[i], float(p)) for i, p in zip(row_i, row_p, strict=True)]
            for row_i, row_p in zip(indices.tolist(), values.tolist(), strict=True)
        ]


def _check_top(top: int | None) -> int | None:
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ConfigError(f"top must be a whole number >= 1, got {top!r}")
    return top


class Classifier(nn.Module):
    """A trained ConvNet with its normalization and class names.

    forward: float (B, C, H, W) in [0, 1] -> logits (B, num_classes); `predict` for images as
    they come. `record`: the model file's metadata (everything but the weights)."""

    scale: torch.Tensor
    shift: torch.Tensor
    pixel_scale: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        *,
        classes: Sequence[str],
        input_shape: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        record: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.classes = tuple(str(c) for c in classes)
        channels, height, width = (int(v) for v in input_shape)
        self.input_shape = (channels, height, width)
        self.record = dict(record or {})
        std_t = torch.tensor(list(std), dtype=torch.float32)
        mean_t = torch.tensor(list(mean), dtype=torch.float32)
        if std_t.numel() != channels or mean_t.numel() != channels:
            raise ModelFileError(f"normalization needs {channels} mean and std values")
        view = (1, channels, 1, 1)
        # For [0, 1] floats (forward, and what export writes): (x - mean) / std.
        self.register_buffer("scale", (1.0 / std_t).view(view), persistent=False)
        self.register_buffer("shift", (-mean_t / std_t).view(view), persistent=False)
        # For uint8 pixels: the training pipeline's own multiply-add, bit for bit
        # (tuner.train.loader.DeviceLoader), so that predictions reproduce the recorded scores.
        self.register_buffer("pixel_scale", (1.0 / (255.0 * std_t)).view(view), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [0, 1] -> (B, K)
        return self.net(torch.addcmul(self.shift, x, self.scale))

    @property
    def device(self) -> torch.device:
        return self.shift.device

    def preprocess(self, images: Any) -> torch.Tensor:
        """Images as they come -> uint8 (N, C, H, W) at the model's shape, on the CPU."""
        return preprocess(images, self.input_shape)

    def logits(self, images: Any) -> torch.Tensor:
        """Raw scores (N, num_classes), float32 on the CPU, for images as `predict` takes them
        (a uint8 (N, C, H, W) tensor at the model's shape is used as it is)."""
        pixels = self.preprocess(images)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                chunks = [
                    self.net(torch.addcmul(self.shift, batch.to(self.device).float(),
                                           self.pixel_scale)).float().cpu()
                    for batch in pixels.split(EVAL_BATCH)
                ]  # fmt: skip
        finally:
            self.train(was_training)
        return torch.cat(chunks)

    def predict(self, images: Any, top: int | None = None) -> Prediction:
        """Classify images: one or a list of file paths, PIL images, numpy uint8 arrays (HW, HWC,
        or CHW where unambiguous; 4-D: a batch) or torch tensors (CHW or NCHW, uint8 0..255 or
        float 0..1). `top`: how many classes Prediction.top() ranks by default (None: all)."""
        top = _check_top(top)
        logits = self.logits(images)
        indices = logits.argmax(1)  # as tuner.train.loop.evaluate scores
        return Prediction(
            classes=[self.classes[i] for i in indices.tolist()],
            indices=indices,
            probabilities=torch.softmax(logits, dim=1),
            class_names=self.classes,
            default_top=top,
        )


def load_model(
    path: str | Path, device: str | torch.device | None = None, build: str | None = None
) -> Classifier:
    """The classifier in a model file (or an experiment directory's), weights loaded, in eval
    mode, on `device` (default the CPU). ModelFileError (one line) for anything unreadable.

    A model of your own network (`--model file.py:build`) is rebuilt by importing that `build`
    again from the path the file records; `build` names another (`new/place/net.py:build`,
    `package.module:build`) when the code has moved. The file itself never holds code."""
    from tuner.train.config import TrainConfig
    from tuner.train.model import build_network

    path = model_path(path)
    record = read_model_file(path)
    try:
        config = dict(record["config"])
        if build is not None:
            config["model"] = build
        cfg = TrainConfig.from_dict(config)
        channels, height, width = (int(v) for v in record["input_shape"])
        classes = [str(c) for c in record["classes"]]
        mean, std = record["normalization"]["mean"], record["normalization"]["std"]
        net = build_network(cfg, (channels, height, width), len(classes))
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        hint = ""
        if record.get("config", {}).get("model") and build is None:
            hint = "; if its code moved, pass build='path/to/file.py:build' (CLI: --build)"
        raise ModelFileError(f"{path}: cannot rebuild its network ({_one_line(e)}){hint}") from None
    try:
        net.load_state_dict(record["state_dict"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ModelFileError(
            f"{path}: its weights do not fit the network its config describes ({_one_line(e)})"
        ) from None
    meta = {k: v for k, v in record.items() if k != "state_dict"}
    clf = Classifier(
        net, classes=classes, input_shape=(channels, height, width), mean=mean, std=std,
        record=meta,
    )  # fmt: skip
    return clf.to(torch.device(device or "cpu")).eval()


# --- images as they come -> uint8 (N, C, H, W) -------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _is_single(images: Any) -> bool:
    from PIL import Image

    return isinstance(images, str | Path | Image.Image | np.ndarray | torch.Tensor)


def preprocess(images: Any, input_shape: Sequence[int]) -> torch.Tensor:
    """Images as they come (see Classifier.predict) -> uint8 (N, C, H, W) at `input_shape`."""
    shape = tuple(int(v) for v in input_shape)
    if _is_single(images):
        items = [images]
    elif isinstance(images, list | tuple):
        items = list(images)
    else:
        raise DataError(_wrong_type(images))
    if not items:
        raise DataError("no images given")
    parts = [_convert(item, i, shape) for i, item in enumerate(items)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _wrong_type(item: Any) -> str:
    return (
        f"cannot classify a {type(item).__name__}: give image file paths, PIL images, numpy "
        "uint8 arrays or torch tensors (one, or a list)"
    )


def _convert(item: Any, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """One item (a path, a PIL image, an array or tensor of one image or a batch) ->
    uint8 (n, C, H, W)."""
    from PIL import Image

    if isinstance(item, str | Path):
        return _load(Path(item), shape)[None]
    if isinstance(item, Image.Image):
        try:
            return _from_pil(item, shape)[None]
        except (OSError, ValueError) as e:  # a mode PIL cannot convert, a lazy image's file
            raise DataError(
                f"image {index}: cannot convert this {item.mode} image ({_one_line(e)})"
            ) from None
    if isinstance(item, np.ndarray):
        return _fit_batch(_array_to_nchw(item, index), shape)
    if isinstance(item, torch.Tensor):
        return _fit_batch(_tensor_to_nchw(item, index), shape)
    raise DataError(_wrong_type(item))


def _load(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """An image file -> uint8 (C, H, W). DataError (one line naming the file) when it does not
    decode."""
    from PIL import Image

    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not an image")
    try:
        with Image.open(path) as opened:
            return _from_pil(opened, shape)  # inside the try: Image.open reads only the header
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot decode image {path}: {_one_line(e)}") from None


def _from_pil(image: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """A PIL image -> uint8 (C, H, W), converted as tuner.data decodes a folder of images."""
    from tuner.data import GRAY_MODES

    channels, height, width = shape
    if channels == 1 and image.mode not in GRAY_MODES:
        image = image.convert("L")  # a colour image for a grayscale model: its luma
    elif image.mode != "RGB" and not (channels == 1 and image.mode == "L"):
        # As the dataset did: every image to RGB (a grayscale one to 3 equal channels, of
        # which a grayscale model keeps the first; for "L" that is the image itself).
        image = image.convert("RGB")
    if image.size != (width, height):
        image = _resize_and_crop(image, height, width)
    pixels = np.asarray(image)
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels[:, :, :channels]  # (H, W, C)
    return torch.tensor(pixels.transpose(2, 0, 1), dtype=torch.uint8)


def _resize_and_crop(image: Any, height: int, width: int) -> Any:
    """Shorter side to size, then centre crop: tuner.data's own for square models (every
    --image-size); a non-square model (a folder of equal-sized images) gets the same rule."""
    from PIL import Image

    from tuner.data import _resize_shorter_and_crop

    if height == width:
        return _resize_shorter_and_crop(image, height)
    w, h = image.size
    factor = max(width / w, height / h)
    new_w, new_h = max(width, int(w * factor)), max(height, int(h * factor))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = int(round((new_w - width) / 2.0)), int(round((new_h - height) / 2.0))
    return image.crop((left, top, left + width, top + height))


def _array_to_nchw(array: np.ndarray, index: int) -> torch.Tensor:
    """A numpy image as PIL and numpy give them (HW, HWC; CHW only where unambiguous; 4-D: a
    batch by the same rule) -> (N, C, H, W), dtype kept."""
    if array.ndim == 2:
        array = array[None, None]
    elif array.ndim == 3:
        array = (array if _looks_chw(array.shape) else array.transpose(2, 0, 1))[None]
    elif array.ndim == 4:
        array = array if _looks_chw(array.shape[1:]) else array.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"image {index}: a numpy array of shape {array.shape} is not an image")
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise DataError(
            f"image {index}: numpy dtype {array.dtype} is not supported (give uint8 0..255 or "
            "float 0..1)"
        )
    return torch.tensor(np.ascontiguousarray(array))  # a copy: PIL's arrays are read-only


def _looks_chw(shape: tuple[int, ...]) -> bool:
    return shape[0] in (1, 3) and shape[2] not in (1, 3, 4)


def _tensor_to_nchw(tensor: torch.Tensor, index: int) -> torch.Tensor:
    """A torch image (HW, CHW or NCHW) -> (N, C, H, W) on the CPU, dtype kept."""
    if tensor.ndim == 2:
        tensor = tensor[None, None]
    elif tensor.ndim == 3:
        tensor = tensor[None]
    elif tensor.ndim != 4:
        raise DataError(f"image {index}: a tensor of shape {tuple(tensor.shape)} is not an image")
    if tensor.dtype != torch.uint8 and not tensor.is_floating_point():
        raise DataError(
            f"image {index}: tensor dtype {tensor.dtype} is not supported (give uint8 0..255 or "
            "float 0..1)"
        )
    return tensor.detach().cpu()


def _fit_batch(batch: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(N, C', H', W') uint8 or [0, 1] float -> uint8 (N, C, H, W). At the model's shape a
    uint8 batch comes back as it is; otherwise each image goes through PIL as a file would."""
    if batch.is_floating_point():
        batch = _float_to_uint8(batch)
    if tuple(batch.shape[1:]) == shape:
        return batch.contiguous()
    channels = batch.shape[1]
    if channels not in (1, 2, 3, 4):
        raise DataError(
            f"an image with {channels} channels (shape {tuple(batch.shape[1:])}) cannot be "
            f"converted for a model of shape {shape}"
        )
    from PIL import Image

    # fromarray picks the mode from the shape: (H, W) L, (H, W, 2) LA, 3 RGB, 4 RGBA
    hwc = batch.permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(image[:, :, 0] if channels == 1 else image) for image in hwc]
    return torch.stack([_from_pil(image, shape) for image in images])


def _float_to_uint8(batch: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> 0..255: rounding gives back exactly the uint8 that x/255 came from."""
    if batch.numel():
        low, high = float(batch.min()), float(batch.max())
        if not (0.0 <= low and high <= 1.0):  # also catches NaN
            raise DataError(
                f"float images must hold values in [0, 1], got {low:g}..{high:g} (for 0..255 "
                "pixels give uint8)"
            )
    return (batch.float() * 255.0).round().to(torch.uint8)
