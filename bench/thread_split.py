"""Why a trial's set-up and its epochs share one thread (tuner/driver/trainable.py, `train`).

Trains the same epochs three ways, each in a fresh process, alternating over --rounds:

  one thread      all torch work in the main thread
  fresh thread    all torch work in a second thread (what the trainable does)
  split threads   a model built and run once in the main thread, the epochs in a second one

With OpenMP, every thread that runs torch ops gets a thread pool of its own; on 2 cores the
split version trained ~15 % slower (2026-11-29: 4.1-4.7 s against 3.5-3.6 s an epoch).
Synthetic CIFAR-sized data (5,000 images), the epoch benchmark's network, 2 torch threads.

    python bench/thread_split.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
from pathlib import Path

WAYS = ("one thread", "fresh thread", "split threads")


def epochs_seconds(way: str, epochs: int) -> list[float]:
    import numpy as np
    import torch
    from torch import nn

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from epoch_overhead import bench_config  # bench/ is sys.path[0]

    from tuner.train.build import build_model, make_loaders
    from tuner.train.config import TrainConfig
    from tuner.train.loop import build_optimizer, train_epoch

    torch.set_num_threads(2)
    cfg = TrainConfig.from_dict(bench_config((16, 32, 64), epochs))
    rng = np.random.default_rng(0)
    data = {
        "input_shape": (3, 32, 32), "num_classes": 10, "mean": (0.5,) * 3, "std": (0.25,) * 3,
        "train_x": rng.integers(0, 255, (5000, 3, 32, 32), dtype=np.uint8),
        "train_y": rng.integers(0, 10, 5000),
        "val_x": rng.integers(0, 255, (1000, 3, 32, 32), dtype=np.uint8),
        "val_y": rng.integers(0, 10, 1000),
    }  # fmt: skip
    device = torch.device("cpu")
    seconds: list[float] = []

    def train() -> None:
        model = build_model(cfg, data, device)
        train_loader, _ = make_loaders(cfg, data, device)
        optimizer = build_optimizer(model, cfg)
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(epochs):
            stats = train_epoch(model, train_loader, optimizer, None, loss_fn, device)
            seconds.append(stats.seconds)

    if way == "one thread":
        train()
    else:
        if way == "split threads":
            build_model(cfg, data, device)(torch.zeros(1, 3, 32, 32))
        thread = threading.Thread(target=train)
        thread.start()
        thread.join()
    return seconds[1:]  # the first epoch is warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    if args.way:
        print(" ".join(f"{s:.4f}" for s in epochs_seconds(args.way, args.epochs)))
        return
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            out = subprocess.run(
                [sys.executable, __file__, "--way", way, "--epochs", str(args.epochs)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            seconds[way] += [float(s) for s in out.split()]
    for way, values in seconds.items():
        print(f"{way:14s} median {statistics.median(values):.2f} s an epoch "
              f"({min(values):.2f}-{max(values):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
