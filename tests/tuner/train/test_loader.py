"""tuner.train.loader: batches, shuffling, augmentations and resumable RNG, on tiny tensors."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from tuner.train.loader import Augment, DeviceLoader, channel_stats

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
UNIT = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # identity normalisation: outputs are pixels / 255


def _images(n: int = 37, c: int = 3, h: int = 4, w: int = 5, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=generator)


def _loader(x: torch.Tensor, device: str = "cpu", **kwargs: object) -> DeviceLoader:
    options: dict = {"batch_size": 10, "device": device, "mean": MEAN, "std": STD} | kwargs
    return DeviceLoader(x, torch.arange(len(x)), **options)


def _pixels(batch: torch.Tensor) -> torch.Tensor:
    """Undo the identity normalisation: float [0, 1] -> exact uint8-valued floats."""
    return (batch * 255).round().cpu()


def _epoch(dl: DeviceLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*dl, strict=True)
    return torch.cat(xs).cpu(), torch.cat(ys).cpu()


def _one_pattern(n: int, h: int = 4, w: int = 4) -> torch.Tensor:
    """n copies of one image whose every pixel differs, so flips / shifts are identifiable."""
    base = torch.arange(1, 3 * h * w + 1, dtype=torch.uint8).view(1, 3, h, w)
    return base.expand(n, 3, h, w).contiguous()


# --- batches and order ----------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_every_image_once_per_epoch_with_its_label(device: str) -> None:
    x = _images()
    dl = _loader(x, device, mean=UNIT[0], std=UNIT[1])
    for _ in range(3):
        images, labels = _epoch(dl)
        assert sorted(labels.tolist()) == list(range(37))
        np.testing.assert_array_equal(_pixels(images), x[labels].float())


def test_batch_types_shapes_and_device() -> None:
    dl = _loader(_images())
    images, labels = next(iter(dl))
    assert images.dtype == torch.float32 and images.shape == (10, 3, 4, 5)
    assert labels.dtype == torch.int64 and labels.shape == (10,)
    assert dl.x.dtype == torch.uint8  # kept as uint8 on the device
    assert dl.num_images == 37


def test_fresh_permutation_each_epoch_and_in_order_without_shuffle() -> None:
    dl = _loader(_images())
    first, second = _epoch(dl)[1], _epoch(dl)[1]
    assert first.tolist() != second.tolist()
    assert first.tolist() != list(range(37))
    ordered = _loader(_images(), shuffle=False)
    assert _epoch(ordered)[1].tolist() == list(range(37))


def test_batch_count_and_last_partial_batch() -> None:
    dl = _loader(_images(), batch_size=10)
    sizes = [len(y) for _, y in dl]
    assert len(dl) == 4 and sizes == [10, 10, 10, 7]
    dropped = _loader(_images(), batch_size=10, drop_last=True)
    assert len(dropped) == 3 and [len(y) for _, y in dropped] == [10, 10, 10]
    assert len(_loader(_images(n=5), batch_size=10, drop_last=True)) == 0


def test_same_seed_same_epochs_other_seed_other_epochs() -> None:
    aug = Augment(hflip=True, crop_padding=1)
    a, b = _loader(_images(), augment=aug, seed=3), _loader(_images(), augment=aug, seed=3)
    c = _loader(_images(), augment=aug, seed=4)
    ea, eb, ec = _epoch(a), _epoch(b), _epoch(c)
    assert torch.equal(ea[0], eb[0]) and torch.equal(ea[1], eb[1])
    assert not torch.equal(ea[1], ec[1])


# --- normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_normalisation_matches_torchvision_formula(device: str) -> None:
    x = _images()
    images, labels = _epoch(_loader(x, device, shuffle=False))
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    expected = (x[labels].float() / 255 - mean) / std
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-5)


def test_channel_stats_match_numpy_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import tuner.data.channel_stats as stats_module

    monkeypatch.setattr(stats_module, "STATS_CHUNK", 7)  # several chunks plus a ragged one
    x = _images(n=37, h=6, w=6).numpy()
    mean, std = channel_stats(x)
    scaled = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 2, 3)), rtol=1e-9)
    assert channel_stats(torch.from_numpy(x)) == (mean, std)
    assert all(isinstance(v, float) for v in mean + std) and len(mean) == 3


# --- augmentation ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_hflip_flips_about_half_the_images_exactly(device: str) -> None:
    x = _one_pattern(400)
    dl = _loader(x, device, batch_size=64, mean=UNIT[0], std=UNIT[1], augment=Augment(hflip=True))
    images = _pixels(_epoch(dl)[0])
    original = x[0].float()
    same = (images == original).flatten(1).all(1)
    flipped = (images == original.flip(2)).flatten(1).all(1)
    assert bool((same ^ flipped).all())  # each image is exactly one or the other
    assert 160 < int(flipped.sum()) < 240  # p = 0.5 (binomial sd 10)


def test_no_augmentation_changes_nothing() -> None:
    x = _one_pattern(50)
    images = _pixels(_epoch(_loader(x, mean=UNIT[0], std=UNIT[1]))[0])
    assert bool((images == x[0].float()).all())


@pytest.mark.parametrize("device", DEVICES)
def test_grayscale_makes_channels_equal_luma(device: str) -> None:
    x = _images(n=40)
    dl = _loader(x, device, mean=UNIT[0], std=UNIT[1], augment=Augment(grayscale_p=1.0))
    images, labels = _epoch(dl)
    luma = (x[labels].float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    for channel in range(3):
        torch.testing.assert_close(images[:, channel] * 255, luma, rtol=0, atol=1e-3)

    half = _loader(_images(n=400), mean=UNIT[0], std=UNIT[1], augment=Augment(grayscale_p=0.5))
    gray = _epoch(half)[0]
    equal = ((gray[:, 0] == gray[:, 1]) & (gray[:, 1] == gray[:, 2])).flatten(1).all(1)
    assert 160 < int(equal.sum()) < 240


def test_grayscale_is_a_no_op_for_one_channel() -> None:
    x = _images(n=20, c=1)
    gray = Augment(grayscale_p=1.0)
    dl = DeviceLoader(
        x, torch.arange(20), batch_size=8, device="cpu", mean=(0.0,), std=(1.0,), augment=gray
    )
    images, labels = _epoch(dl)
    torch.testing.assert_close(_pixels(images), x[labels].float())


@pytest.mark.parametrize("device", DEVICES)
def test_crop_padding_keeps_shape_and_shifts_content(device: str) -> None:
    x, pad = _one_pattern(300), 2
    dl = _loader(x, device, mean=UNIT[0], std=UNIT[1], augment=Augment(crop_padding=pad))
    images = _pixels(_epoch(dl)[0])
    assert images.shape == x.shape
    padded = torch.nn.functional.pad(x[0].float(), (pad, pad, pad, pad))  # (3, 8, 8)
    windows = {(dy, dx): padded[:, dy : dy + 4, dx : dx + 4] for dy in range(5) for dx in range(5)}
    seen = []
    for image in images:
        matches = [k for k, win in windows.items() if torch.equal(image, win)]
        assert len(matches) == 1  # every output is one zero-padded window of the original
        seen.append(matches[0])
    assert len(set(seen)) == 25  # all (2p+1)^2 offsets occur
    assert seen.count((pad, pad)) < 40  # the unshifted crop is no more common than the rest


def test_crop_and_flip_together_flip_the_cropped_window() -> None:
    x, pad = _one_pattern(300), 1
    aug = Augment(hflip=True, crop_padding=pad)
    images = _pixels(_epoch(_loader(x, mean=UNIT[0], std=UNIT[1], augment=aug))[0])
    padded = torch.nn.functional.pad(x[0].float(), (pad, pad, pad, pad))  # (3, 6, 6)
    windows = [padded[:, dy : dy + 4, dx : dx + 4] for dy in range(3) for dx in range(3)]
    flipped = [win.flip(2) for win in windows]
    n_flipped = 0
    for image in images:
        plain = any(torch.equal(image, win) for win in windows)
        mirrored = any(torch.equal(image, win) for win in flipped)
        assert plain != mirrored
        n_flipped += mirrored
    assert 110 < n_flipped < 190


@pytest.mark.parametrize("device", DEVICES)
def test_cutout_zeroes_one_square_after_normalisation(device: str) -> None:
    x = torch.full((200, 3, 6, 6), 255, dtype=torch.uint8)  # normalised 255 is never 0 here
    dl = _loader(x, device, augment=Augment(cutout=2))
    images = _epoch(dl)[0]
    zero = images == 0  # (N, 3, H, W)
    assert torch.equal(zero[:, 0], zero[:, 1]) and torch.equal(zero[:, 1], zero[:, 2])
    per_image = zero[:, 0].flatten(1).sum(1)
    assert bool((per_image >= 1).all()) and bool((per_image <= 4).all())  # clipped at borders
    assert int((per_image == 4).sum()) > 100  # mostly whole squares
    rows, cols = zero[:, 0].any(2), zero[:, 0].any(1)  # zeroed rows / cols are contiguous runs
    assert bool((rows.sum(1) <= 2).all()) and bool((cols.sum(1) <= 2).all())
    for channel in range(3):
        kept = images[:, channel][~zero[:, channel]]
        expected = (1 - MEAN[channel]) / STD[channel]
        torch.testing.assert_close(kept, torch.full_like(kept, expected))


def test_augment_validates_its_fields() -> None:
    with pytest.raises(ValueError):
        Augment(grayscale_p=1.5)
    with pytest.raises(ValueError):
        Augment(crop_padding=-1)


# --- resume, memory format, inputs ----------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_state_dict_resumes_the_same_next_epoch(device: str) -> None:
    aug = Augment(hflip=True, grayscale_p=0.3, crop_padding=1, cutout=2)
    a = _loader(_images(), device, augment=aug, seed=7)
    _epoch(a)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    expected = _epoch(a)

    b = _loader(_images(), device, augment=aug, seed=123)  # the seed is overridden by the state
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    resumed = _epoch(b)
    assert torch.equal(resumed[1], expected[1])
    assert torch.equal(resumed[0], expected[0])


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_changes_layout_not_values(device: str) -> None:
    x = _images()
    plain = next(iter(_loader(x, device, shuffle=False)))[0]
    nhwc = next(iter(_loader(x, device, shuffle=False, channels_last=True)))[0]
    assert nhwc.is_contiguous(memory_format=torch.channels_last)
    assert not plain.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain, nhwc)


def test_read_only_numpy_input_is_used_without_warnings() -> None:
    x = _images().numpy()
    y = np.arange(len(x), dtype=np.int64)
    x.flags.writeable = False  # what arrays from Ray's object store look like
    y.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dl = DeviceLoader(x, y, batch_size=8, device="cpu", mean=MEAN, std=STD, shuffle=False)
        images, labels = _epoch(dl)
    assert labels.tolist() == list(range(37))
    assert images.shape == (37, 3, 4, 5)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="uint8"):
        _loader(torch.zeros(4, 3, 2, 2))
    with pytest.raises(ValueError, match="one per channel"):
        _loader(_images(), mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="batch_size"):
        _loader(_images(), batch_size=0)
