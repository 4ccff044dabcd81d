"""(c) Pooling: total training images/s with 1, 2, 4 and 8 trials sharing one GPU.

Each "trial" is a separate process, as Ray runs trials with --gpus-per-trial 1/N: it caps its
CUDA memory at 1/N (torch.cuda.set_per_process_memory_fraction, as tuner/driver/trainable.py does),
moves the images to the GPU with our loader and trains the lab's network at the lab's batch
size (64) with train_epoch (bf16, channels_last). After a warm-up the processes meet at a
barrier, then each trains for --seconds; the figure is the sum of their images/s.

    python bench/gpu_pooling.py --data-dir /tmp/cifar-45k5k --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn

from search_spaces.seed_cnn import BASELINE
from tuner.data import load_dataset
from tuner.train.build import build_model, make_loaders
from tuner.train.config import TrainConfig
from tuner.train.loop import build_optimizer, train_epoch

CHUNK = 5_000  # images per train_epoch call: short enough to stop near the deadline


def trial(rank: int, n: int, args: argparse.Namespace, barrier, results) -> None:
    device = torch.device(args.device)
    torch.set_num_threads(1)
    if device.type == "cuda" and n > 1:
        torch.cuda.set_per_process_memory_fraction(1.0 / n, device)
    torch.backends.cudnn.benchmark = True
    bundle = load_dataset("imagefolder", args.data_dir)
    offset = (rank * CHUNK) % max(1, len(bundle.train.y) - CHUNK)
    payload = {
        "train_x": bundle.train.x[offset : offset + CHUNK],
        "train_y": bundle.train.y[offset : offset + CHUNK],
        "val_x": bundle.val.x, "val_y": bundle.val.y,
        "input_shape": bundle.input_shape, "num_classes": bundle.num_classes,
        "mean": (0.5,) * 3, "std": (0.5,) * 3,
    }  # fmt: skip
    cfg = TrainConfig.from_dict({**BASELINE, "batch_size": args.batch, "seed": rank})
    model = build_model(cfg, payload, device)
    train, _ = make_loaders(cfg, payload, device)
    opt = build_optimizer(model, cfg)
    loss_fn = nn.CrossEntropyLoss()
    train_epoch(model, train, opt, None, loss_fn, device)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    barrier.wait()
    start = time.perf_counter()
    images = 0
    while time.perf_counter() - start < args.seconds:
        images += train_epoch(model, train, opt, None, loss_fn, device).images  # syncs at end
    results[rank] = images / (time.perf_counter() - start)


def pooled(n: int, args: argparse.Namespace) -> float:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n)
    with ctx.Manager() as manager:
        results = manager.dict()
        procs = [ctx.Process(target=trial, args=(r, n, args, barrier, results)) for r in range(n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode != 0 for p in procs) or len(results) != n:
            raise SystemExit(f"a pooled trial failed (exit codes {[p.exitcode for p in procs]})")
        return sum(results.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="bench/cifar_split.py tree")
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed window per setting")
    parser.add_argument("--device", default="cuda", help="cpu only for a smoke run")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    load_dataset("imagefolder", args.data_dir)  # decode and cache once, before the processes
    figures: dict = {"batch": args.batch, "seconds": args.seconds, "total_images_per_s": {}}
    for n in args.trials:
        total = pooled(n, args)
        figures["total_images_per_s"][str(n)] = round(total)
        base = figures["total_images_per_s"][str(args.trials[0])]
        print(f"{n} trial(s) on one GPU: {total:,.0f} images/s in total "
              f"({total / base:.2f}x {args.trials[0]})", flush=True)  # fmt: skip
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
