"""Device-resident batches: the whole split lives on the device as uint8, augmented in batches.

Following airbench: the images move to the device once, batches are index gathers from a
per-epoch permutation, and crop / flip / grayscale / normalise / cutout are batched tensor ops.
No DataLoader, no worker processes, no PIL and no per-sample Python in the epoch, so a small CNN
is not left waiting on the input pipeline (the PIL + DataLoader route spends most of a CIFAR-10
epoch decoding and transforming images one at a time).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R 601 luma, the weights torchvision's RandomGrayscale uses.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
# Columns of the per-epoch table of uniform draws, one row per image position in the epoch.
_FLIP, _GRAY, _CROP_Y, _CROP_X, _CUT_Y, _CUT_X = range(6)
_DRAWS = 6


@dataclass(frozen=True)
class Augment:
    hflip: bool = False  # RandomHorizontalFlip(p=0.5)
    grayscale_p: float = 0.0  # RandomGrayscale(p); no-op for 1-channel data
    crop_padding: int = 0  # random crop of the original size after zero-padding by this many pixels
    cutout: int = 0  # side of a zeroed square at a random position (0 = off); after normalisation

    def __post_init__(self) -> None:
        if not 0.0 <= self.grayscale_p <= 1.0:
            raise ValueError(f"grayscale_p must be in [0, 1], got {self.grayscale_p}")
        if self.crop_padding < 0 or self.cutout < 0:
            raise ValueError("crop_padding and cutout must be >= 0")

    @property
    def active(self) -> bool:
        return self.hflip or self.grayscale_p > 0 or self.crop_padding > 0 or self.cutout > 0


def _as_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    if not a.flags.writeable:
        # Arrays from Ray's object store are read-only views of shared memory. Copying 150 MB
        # just to silence torch's warning would be waste: the loader only ever reads `x`
        # (gathers make new tensors), so sharing the read-only buffer is safe.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(a)
    return torch.from_numpy(a)


def channel_stats(
    x: np.ndarray | torch.Tensor,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of uint8 (N, C, H, W) images, in [0, 1] units, for normalisation
    (tuner.data.channel_stats, numpy: the driver computes them without torch)."""
    from tuner.data.channel_stats import channel_stats as of_array

    return of_array(x.cpu().numpy() if isinstance(x, torch.Tensor) else x)


def _crop_and_flip(
    images: torch.Tensor, padding: int, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor
) -> torch.Tensor:
    """Zero-pad by `padding`, crop the original size at (dy, dx), mirror where `flip`: one gather.

    One flat gather instead of gather-rows, gather-cols, then torch.where(flip, x.flip(3), x):
    on 2 CPU threads that was 2 ms against 20 ms per 512-image CIFAR batch, and one kernel on GPU.
    """
    b, c, h, w = images.shape
    if padding > 0:
        images = F.pad(images, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    padded_w = w + 2 * padding
    ys = torch.arange(h, device=images.device)
    xs = torch.arange(w, device=images.device)
    rows = dy.view(b, 1) + ys.view(1, h)  # (B, H)
    cols = dx.view(b, 1) + torch.where(flip.view(b, 1), (w - 1 - xs).view(1, w), xs.view(1, w))
    index = rows[:, :, None] * padded_w + cols[:, None, :]  # (B, H, W) into the flat padded image
    index = index.view(b, 1, h * w).expand(b, c, h * w)
    return images.reshape(b, c, -1).gather(2, index).view(b, c, h, w)


def _cutout(images: torch.Tensor, size: int, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
    """Zero a size x size square centred at (cy, cx), clipped at the border (DeVries & Taylor)."""
    _, _, h, w = images.shape
    ys = torch.arange(h, device=images.device).view(1, h)
    xs = torch.arange(w, device=images.device).view(1, w)
    top, left = (cy - size // 2).view(-1, 1), (cx - size // 2).view(-1, 1)
    in_rows = (ys >= top) & (ys < top + size)  # (B, H)
    in_cols = (xs >= left) & (xs < left + size)  # (B, W)
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (B, 1, H, W)
    return images.masked_fill(mask, 0.0)


class DeviceLoader:
    """Batches of normalised float32 (B, C, H, W) images and int64 (B,) labels.

    `x` (uint8 (N, C, H, W), numpy or torch) is copied to `device` once and stays uint8 there:
    4x less memory than float, and CIFAR-10's 50,000 train images take 150 MB.

    All randomness (epoch permutation and augmentation draws) comes from one CPU generator
    seeded with `seed`, so `state_dict()` taken between epochs resumes the same sequence.
    """

    def __init__(
        self,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        *,
        batch_size: int,
        device: torch.device | str,
        mean: Sequence[float],
        std: Sequence[float],
        augment: Augment | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        images, labels = _as_tensor(x), _as_tensor(y)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"x must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(f"y must be (N,) = ({images.shape[0]},), got {tuple(labels.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        channels = images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean and std need {channels} values each (one per channel)")
        self.augment = augment or Augment()
        if self.augment.grayscale_p > 0 and channels not in (1, 3):
            raise ValueError(f"grayscale needs 1 or 3 channels, got {channels}")

        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.x = images.to(self.device).contiguous()  # (N, C, H, W) uint8, on the device
        self.y = labels.to(self.device, dtype=torch.int64)  # (N,)
        # (x/255 - mean)/std folded into one multiply-add: x * scale + shift.
        std_t = torch.tensor(std, dtype=torch.float32)
        mean_t = torch.tensor(mean, dtype=torch.float32)
        self._scale = (1.0 / (255.0 * std_t)).view(1, channels, 1, 1).to(self.device)
        self._shift = (-mean_t / std_t).view(1, channels, 1, 1).to(self.device)
        self._gray = torch.tensor(GRAY_WEIGHTS).view(1, 3, 1, 1).to(self.device)
        # A CPU generator: its state is a small ByteTensor (checkpoint-friendly), and the same
        # seed gives the same epochs on CPU and GPU.
        self._generator = torch.Generator().manual_seed(seed)

    @property
    def num_images(self) -> int:
        return self.x.shape[0]

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_images // self.batch_size
        return -(-self.num_images // self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        """RNG state; take it between epochs (a partial epoch is not resumed mid-way)."""
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state["generator"].cpu())

    def _epoch_draws(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This epoch's order and its (N, 6) uniform draws, drawn up front and moved once."""
        n = self.num_images
        if self.shuffle:
            order = torch.randperm(n, generator=self._generator)
        else:
            order = torch.arange(n)
        draws = None
        if self.augment.active:
            draws = torch.rand((n, _DRAWS), generator=self._generator).to(self.device)
        return order.to(self.device), draws

    def _transform(self, images: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """uint8 (B, C, H, W) -> augmented, normalised float32 (B, C, H, W)."""
        aug = self.augment
        b, c, h, w = images.shape
        # Crop and flip on uint8: the same result as on floats, with 4x less memory traffic.
        if u is not None and (aug.crop_padding > 0 or aug.hflip):
            span = 2 * aug.crop_padding + 1
            dy = (u[:, _CROP_Y] * span).long().clamp_max(span - 1)  # (B,) in [0, 2p]
            dx = (u[:, _CROP_X] * span).long().clamp_max(span - 1)
            flip = (u[:, _FLIP] < 0.5) if aug.hflip else torch.zeros_like(dy, dtype=torch.bool)
            images = _crop_and_flip(images, aug.crop_padding, dy, dx, flip)
        out = images.float()  # (B, C, H, W), 0..255
        if u is not None and aug.grayscale_p > 0 and c == 3:
            drawn = u[:, _GRAY] < aug.grayscale_p  # (B,)
            if out.is_cuda:  # whole batch + select: no host sync, and cheap on a GPU
                luma = (out * self._gray).sum(dim=1, keepdim=True).expand(b, c, h, w)
                out = torch.where(drawn.view(b, 1, 1, 1), luma, out)
            else:  # on the CPU convert only the drawn tenth: the whole batch cost ~125 us
                picked = drawn.nonzero().squeeze(1)  # (K,)
                if picked.numel():
                    luma = (out[picked] * self._gray).sum(dim=1, keepdim=True)  # (K, 1, H, W)
                    out[picked] = luma.expand(-1, c, h, w)
        out = torch.addcmul(self._shift, out, self._scale)  # (x/255 - mean)/std
        if u is not None and aug.cutout > 0:
            cy = (u[:, _CUT_Y] * h).long().clamp_max(h - 1)
            cx = (u[:, _CUT_X] * w).long().clamp_max(w - 1)
            out = _cutout(out, aug.cutout, cy, cx)
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, draws = self._epoch_draws()
        n_batches = len(self)
        for i in range(n_batches):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]  # (B,)
            u = None if draws is None else draws[i * self.batch_size : (i + 1) * self.batch_size]
            # index_select, not x[idx]: 6x faster on CPU for the same gather.
            yield self._transform(self.x.index_select(0, idx), u), self.y.index_select(0, idx)
