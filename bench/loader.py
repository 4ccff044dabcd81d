"""Input pipeline alone: our DeviceLoader against the lab's PIL + DataLoader pipeline.

Measures images per second over full training epochs (no model), on the same N real CIFAR-10
images, for three pipelines run side by side in one process:

  ours       DeviceLoader: the images as one uint8 (N, 3, 32, 32) tensor on the CPU, batched
             hflip + RandomGrayscale(0.1) + Normalize(0.5, 0.5), batch 64, shuffled.
  lab-jpeg   the lab's pipeline: an ImageFolder over the JPEG files (so every epoch decodes
             every image, as the lab's did) -> Compose([RandomHorizontalFlip(),
             RandomGrayscale(0.1), ToTensor(), Normalize((0.5,)*3, (0.5,)*3)]) ->
             DataLoader(batch_size=64, shuffle=True, num_workers=2).
  lab-mem    the same transforms and DataLoader over PIL images decoded once and held in
             memory (no JPEG decoding in the epoch): the lab pipeline at its fairest.

Each round runs, for each pipeline in turn, one warm-up epoch and then times full epochs one
by one (--epochs for the lab pipelines, --ours-epochs for ours, whose epoch is ~30x shorter, so
both are sampled over seconds); a round's figure is the median epoch. Over --rounds rounds the
median (and min..max) of each figure and of the per-round ratios is reported.
Target: ours >= 25x lab-jpeg. Ours is given the pixels decoded once up front, as the tuner
does (load_dataset caches decoded arrays); that one-time decode is printed too.

The machine may be shared: before each timed run the script waits (at most --idle-wait s) for
the cores to be at most --max-busy busy, and prints how busy they were.

Run (CIFAR-10 JPEGs extracted to /tmp/cifar-jpg, i.e. /tmp/cifar-jpg/train/<class>/*.jpg):

    d=/tmp/cifar-jpg; mkdir -p $d && tar -xzf cifar10-train-jpg.tar.gz -C $d
    .venv/bin/python bench/loader.py --data-dir /tmp/cifar-jpg --json /tmp/bench-loader.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _machine import HelpFormatter, cpu_model, wait_for_idle  # bench/ is sys.path[0]
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms

from tuner.train.loader import Augment, DeviceLoader

TARGET_RATIO = 25.0
LAB_MEAN = (0.5, 0.5, 0.5)
LAB_STD = (0.5, 0.5, 0.5)


def lab_transform() -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.RandomHorizontalFlip(),
            transforms.RandomGrayscale(0.1),
            transforms.ToTensor(),
            transforms.Normalize(LAB_MEAN, LAB_STD),
        ]
    )


class InMemoryPIL(Dataset):
    """PIL images decoded once and kept in memory; the transform runs per sample as usual."""

    def __init__(self, images: list[Image.Image], labels: list[int], transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), self.labels[i]


def pick_samples(train_dir: Path, n: int, seed: int) -> list[tuple[str, int]]:
    """n (path, label) pairs drawn at random (all classes), in ImageFolder's label numbering."""
    folder = datasets.ImageFolder(str(train_dir))
    if n > len(folder.samples):
        raise SystemExit(f"--n {n} but {train_dir} holds only {len(folder.samples)} images")
    samples = random.Random(seed).sample(folder.samples, n)
    return samples


def decode(samples: list[tuple[str, int]]) -> list[Image.Image]:
    images = []
    for path, _ in samples:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))  # convert() loads and detaches from the file
    return images


def drain(batches: Iterable[tuple[torch.Tensor, Any]]) -> int:
    """Consume one epoch; return the number of images seen."""
    seen = 0
    for x, _ in batches:
        seen += x.shape[0]
    return seen


def time_epochs(make_epoch: Callable[[], Iterable], epochs: int) -> float:
    """One warm-up epoch, then the median images/s of `epochs` full epochs, each timed alone."""
    drain(make_epoch())
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        seen = drain(make_epoch())
        rates.append(seen / (time.perf_counter() - start))
    return statistics.median(rates)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument(
        "--data-dir", type=Path, default=Path("/tmp/cifar-jpg"), help="folder holding train/"
    )
    parser.add_argument("--n", type=int, default=10_000, help="images per epoch")
    parser.add_argument("--batch-size", type=int, default=64, help="both pipelines")
    parser.add_argument("--workers", type=int, default=2, help="lab DataLoader num_workers")
    parser.add_argument("--epochs", type=int, default=3, help="timed lab epochs per round")
    parser.add_argument(
        "--ours-epochs", type=int, default=20, help="timed DeviceLoader epochs per round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians over them")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (ours)")
    parser.add_argument("--seed", type=int, default=0, help="image subset and shuffling")
    parser.add_argument(
        "--max-busy", type=float, default=0.15,
        help="before each timed run, wait for the cores to be at most this busy (0..1)",
    )  # fmt: skip
    parser.add_argument(
        "--idle-wait", type=float, default=180.0,
        help="longest wait for that, in seconds, before running anyway (0: never wait)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]  # the machine is shared: note how busy it was

    torch.set_num_threads(args.threads)
    train_dir = args.data_dir / "train"
    if not train_dir.is_dir():
        raise SystemExit(f"{train_dir} not found; extract cifar10-train-jpg.tar.gz there first")
    samples = pick_samples(train_dir, args.n, args.seed)

    t0 = time.perf_counter()
    pil_images = decode(samples)
    decode_s = time.perf_counter() - t0
    x = np.stack([np.asarray(im).transpose(2, 0, 1) for im in pil_images])  # (N, 3, 32, 32)
    y = np.array([label for _, label in samples], dtype=np.int64)
    print(f"{args.n:,} images from {train_dir}; one-time JPEG decode {decode_s:.2f} s")

    ours = DeviceLoader(
        x, y, batch_size=args.batch_size, device="cpu", mean=LAB_MEAN, std=LAB_STD,
        augment=Augment(hflip=True, grayscale_p=0.1), shuffle=True, seed=args.seed,
    )  # fmt: skip
    jpeg_set = datasets.ImageFolder(str(train_dir), transform=lab_transform())
    jpeg_set.samples = jpeg_set.imgs = samples
    jpeg_set.targets = [label for _, label in samples]
    mem_set = InMemoryPIL(pil_images, jpeg_set.targets, lab_transform())

    def lab(ds: Dataset) -> Callable[[], Iterable]:
        loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
        return lambda: loader

    pipelines = {"ours": lambda: ours, "lab-jpeg": lab(jpeg_set), "lab-mem": lab(mem_set)}
    epochs = {"ours": args.ours_epochs, "lab-jpeg": args.epochs, "lab-mem": args.epochs}
    rates: dict[str, list[float]] = {name: [] for name in pipelines}
    busy: dict[str, list[float]] = {name: [] for name in pipelines}  # cores busy just before
    for r in range(args.rounds):
        for name, make in pipelines.items():
            busy[name].append(wait_for_idle(args.max_busy, args.idle_wait))
            rates[name].append(time_epochs(make, epochs[name]))
        print(
            f"round {r + 1}: "
            + ", ".join(
                f"{name} {rates[name][-1]:,.0f} img/s (busy before {busy[name][-1]:.0%})"
                for name in pipelines
            ),
            flush=True,
        )

    ratio_jpeg = [o / j for o, j in zip(rates["ours"], rates["lab-jpeg"], strict=True)]
    ratio_mem = [o / m for o, m in zip(rates["ours"], rates["lab-mem"], strict=True)]
    figures = {name: summary(v) for name, v in rates.items()}
    rj, rm = summary(ratio_jpeg), summary(ratio_mem)

    print()
    print(f"{'pipeline':<10} {'median img/s':>13} {'min..max':>22}")
    for name, f in figures.items():
        print(f"{name:<10} {f['median']:>13,.0f} {f['min']:>10,.0f} .. {f['max']:<10,.0f}")
    print()
    print(f"ours / lab-jpeg: {rj['median']:.1f}x  (rounds {rj['min']:.1f}..{rj['max']:.1f})")
    print(f"ours / lab-mem:  {rm['median']:.1f}x  (rounds {rm['min']:.1f}..{rm['max']:.1f})")
    met = rj["median"] >= TARGET_RATIO
    print(f"target: ours >= {TARGET_RATIO:.0f}x lab-jpeg -> {'met' if met else 'MISSED'}")

    print(f"1-min load average: {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    if max(max(v) for v in busy.values()) > args.max_busy:
        print(f"warning: some runs started on cores more than {args.max_busy:.0%} busy: noisy")

    if args.json:
        out = {
            "benchmark": "loader",
            "images": args.n,
            "batch_size": args.batch_size,
            "workers": args.workers,
            "timed_epochs_per_round": epochs,
            "rounds": args.rounds,
            "threads": args.threads,
            "one_time_decode_s": decode_s,
            "images_per_s": {name: {**figures[name], "rounds": rates[name]} for name in rates},
            "busy_before": busy,
            "ratio_vs_lab_jpeg": {**rj, "rounds": ratio_jpeg},
            "ratio_vs_lab_mem": {**rm, "rounds": ratio_mem},
            "target_ratio_vs_lab_jpeg": TARGET_RATIO,
            "target_met": met,
            "machine": {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu_model()},
            "loadavg_1min": {"start": load_start, "end": os.getloadavg()[0]},
            "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d"),
        }
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
