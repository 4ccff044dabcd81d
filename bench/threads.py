"""Torch thread counts when trials share the CPU: torch's default against one thread per trial.

`tuner search` runs --concurrency trials side by side, each asking Ray for --cpus-per-trial
cores, and the trainable calls torch.set_num_threads(cpus per trial). Left alone, torch starts
one intra-op thread per physical core in every trial process, so N concurrent trials run
N x cores threads on `cores` cores: they preempt each other at every barrier of every op.

This script trains the trainable's own pieces (ConvNet, DeviceLoader, train_epoch; no Ray) in
--procs processes at once, for --seconds each, two ways, alternating for --rounds rounds:

  default   torch's default thread count in every process (what a trial would get if the
            trainable did not set it and nothing set OMP_NUM_THREADS)
  pinned    torch.set_num_threads(cores // procs), what the trainable does

and prints the total training images/s of all processes. Data: `digits` (cached, no download)
or an imagefolder tree (--data-dir, e.g. the CIFAR subset from bench/cifar_split.py).

    python bench/threads.py --json /tmp/bench-threads.json
    python bench/threads.py --dataset imagefolder --data-dir /tmp/cifar-6k
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

from _machine import HelpFormatter, cpu_model, wait_for_idle  # bench/ is sys.path[0]

# A seed_cnn-like network of the size the searches train on these inputs.
CONFIG = {
    "n_blocks": 2, "channels_b0": 32, "channels_b1": 64, "kernel_size": 3, "batch_norm": True,
    "fc_layers": 1, "fc_width_0": 128, "dropout_rate": 0.0, "lr": 0.05, "batch_size": 64,
    "epochs": 1000, "hflip": False,
}  # fmt: skip


def worker(dataset: str, data_dir: str | None, threads: int | None, seconds: float, out) -> None:
    import torch
    from torch import nn

    from tuner.data import load_dataset
    from tuner.driver.trainable import trial_payload
    from tuner.train.build import build_model, make_loaders
    from tuner.train.config import TrainConfig
    from tuner.train.loop import build_optimizer, train_epoch

    if threads is not None:
        torch.set_num_threads(threads)
    bundle = load_dataset(dataset, data_dir)
    data = trial_payload(bundle)
    cfg = TrainConfig.from_dict(CONFIG)
    device = torch.device("cpu")
    model = build_model(cfg, data, device)
    train, _ = make_loaders(cfg, data, device)
    optimizer = build_optimizer(model, cfg)
    loss_fn = nn.CrossEntropyLoss()
    train_epoch(model, train, optimizer, None, loss_fn, device)  # warm-up
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += train_epoch(model, train, optimizer, None, loss_fn, device).images
    out.put((torch.get_num_threads(), images / (time.perf_counter() - start)))


def run(args: argparse.Namespace, threads: int | None) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    data_dir = str(args.data_dir) if args.data_dir else None
    procs = [
        ctx.Process(target=worker, args=(args.dataset, data_dir, threads, args.seconds, out))
        for _ in range(args.procs)
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return {
        "threads_per_process": results[0][0],
        "images_per_s": round(sum(rate for _, rate in results)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--procs", type=int, default=2, help="trials running at once")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed training per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-busy", type=float, default=0.1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.dataset != "digits" and not args.data_dir:
        parser.error("--data-dir is needed for imagefolder")
    cores = os.cpu_count() or 1
    pinned = max(1, cores // args.procs)
    runs: dict[str, list[dict]] = {"default": [], "pinned": []}
    for r in range(args.rounds):
        order = ("default", "pinned") if r % 2 == 0 else ("pinned", "default")
        for name in order:
            busy = wait_for_idle(args.max_busy, 60)
            result = run(args, None if name == "default" else pinned)
            result["busy_before"] = round(busy, 2)
            runs[name].append(result)
            print(name, json.dumps(result), flush=True)
    medians = {k: statistics.median(r["images_per_s"] for r in v) for k, v in runs.items()}
    ratios = [p["images_per_s"] / d["images_per_s"] for p, d in zip(runs["pinned"],
              runs["default"], strict=True)]  # fmt: skip
    summary = {
        "cpu": cpu_model(), "cores": cores, "procs": args.procs, "dataset": args.dataset,
        "runs": runs, "median_images_per_s": medians,
        "ratio_pinned_over_default": round(statistics.median(ratios), 2),
        "ratio_spread": [round(min(ratios), 2), round(max(ratios), 2)],
    }  # fmt: skip
    default_threads = runs["default"][0]["threads_per_process"]
    print(
        f"{args.procs} concurrent trials on {cores} cores, total training images/s: torch's "
        f"default {default_threads} threads each {medians['default']:,.0f}"
        f", pinned {pinned} each {medians['pinned']:,.0f}: x{summary['ratio_pinned_over_default']}"
        f" ({summary['ratio_spread'][0]}-{summary['ratio_spread'][1]} over rounds)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
