"""Per-epoch overhead of our trainable under a real Ray Tune run, against a bare PyTorch loop.

Measures the wall time of one training epoch plus its validation pass, both ways, on the same
model and the same real CIFAR-10 images (a fixed subset: --train train / --val val images, from
load_dataset("imagefolder", --data-dir)):

  tune   tune.Tuner running tuner.driver.trainable.train_trial (1 sample, {"cpu": 2}, threads=2) for
         --epochs epochs; the figure is Tune's `time_this_iter_s` per reported epoch, which
         covers training (DeviceLoader), validation, the checkpoint (state copies + torch.save)
         and tune.report.
  bare   what a user writes by hand, in this process: uint8 tensors in memory, torch.randperm
         batches, hflip + RandomGrayscale(0.1) + Normalize(0.5, 0.5) as inline tensor ops,
         forward / backward / SGD step, then a validation pass (batches of 1024, as ours).

Model: the lab's seed_cnn BASELINE with batch_norm on and channels 16/32/64 (so an epoch takes
seconds on 2 CPU cores), batch 64, SGD lr 0.01 momentum 0.9, 2 torch threads both ways. The
first epoch of every run is warm-up and is skipped. Runs alternate (bare, tune, tune, bare, ...)
for --rounds rounds so machine noise hits both; the ratio is median(tune) / median(bare) over
all timed epochs, with the per-round ratios as spread. Target: ratio <= 1.05.

Also printed: how each side's epoch splits into training and the rest (tune: `epoch_time_s`,
the training part the trainable reports itself; bare: its train and validation timers).

The machine may be shared: before each run the script waits (at most --idle-wait s) for the
cores to be at most --max-busy busy, and prints how busy they were. Under outside load the two
sides are not equal: Ray runs the trial at nice 15 (RAY_worker_niceness), the bare loop at 0.

Run (CIFAR-10 JPEGs extracted to /tmp/cifar-jpg, i.e. /tmp/cifar-jpg/train/<class>/*.jpg):

    d=/tmp/cifar-jpg; mkdir -p $d && tar -xzf cifar10-train-jpg.tar.gz -C $d
    .venv/bin/python bench/epoch_overhead.py --data-dir /tmp/cifar-jpg --json /tmp/bench-epoch.json

Starts a private in-process Ray (address="local", no dashboard, RAY_TMPDIR=/tmp/rb<pid>) and
shuts it down at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _machine import HelpFormatter, cpu_model, wait_for_idle  # bench/ is sys.path[0]
from torch import nn

from search_spaces.seed_cnn import BASELINE
from tuner.data import DatasetBundle, Split, load_dataset
from tuner.driver.trainable import train_trial
from tuner.train.config import TrainConfig
from tuner.train.model import ConvNet
from tuner.train.trial_data import TrialData

TARGET_RATIO = 1.05
GRAY = (0.299, 0.587, 0.114)  # torchvision's RandomGrayscale weights
VAL_BATCH = 1024  # the trainable's EVAL_BATCH


def bench_config(channels: tuple[int, int, int], epochs: int) -> dict[str, Any]:
    c0, c1, c2 = channels
    return {
        **BASELINE,
        "batch_norm": True,
        "channels_b0": c0,
        "channels_b1": c1,
        "channels_b2": c2,
        "epochs": epochs,
    }


def subset(bundle: DatasetBundle, n_train: int) -> DatasetBundle:
    if n_train > len(bundle.train.y):
        raise SystemExit(f"--train {n_train} but the train split has {len(bundle.train.y)}")
    train = Split(bundle.train.x[:n_train], bundle.train.y[:n_train])
    return dataclasses.replace(bundle, train=train)


# ---------------------------------------------------------------------------------------------
# bare loop


def bare_run(
    bundle: DatasetBundle, config: dict[str, Any], threads: int, device: str = "cpu"
) -> list[dict]:
    """A hand-written loop; returns per-epoch {"train_s", "val_s", "total_s", "val_acc"}.
    On a GPU it is the bare bf16 loop a careful user writes: the images on the device,
    channels_last, bf16 autocast, and no host sync inside the epoch."""
    cfg = TrainConfig.from_dict(config)
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    x = torch.from_numpy(np.array(bundle.train.x)).to(dev)  # (N, 3, H, W) uint8
    y = torch.from_numpy(np.array(bundle.train.y)).to(dev)  # (N,) int64
    vx = torch.from_numpy(np.array(bundle.val.x)).to(dev)
    vy = torch.from_numpy(np.array(bundle.val.y)).to(dev)
    c, h, _ = bundle.input_shape
    model = ConvNet(cfg.arch, c, bundle.num_classes, h).to(dev)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    loss_fn = nn.CrossEntropyLoss()
    gray = torch.tensor(GRAY, device=dev).view(1, 3, 1, 1)
    n, bs = len(y), cfg.batch_size

    def autocast() -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    def synced() -> float:
        if cuda:
            torch.cuda.synchronize(dev)
        return time.perf_counter()

    epochs = []
    for _ in range(cfg.epochs):
        start = synced()
        model.train()
        perm = torch.randperm(n, device=dev)
        train_loss = torch.zeros((), device=dev)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            xb, yb = x[idx].float().div_(255), y[idx]  # (B, 3, H, W) in [0, 1]
            b = len(idx)
            flip = (torch.rand(b, device=dev) < cfg.hflip * 0.5).view(b, 1, 1, 1)
            xb = torch.where(flip, xb.flip(3), xb)
            to_gray = (torch.rand(b, device=dev) < cfg.grayscale_p).view(b, 1, 1, 1)
            xb = torch.where(to_gray, (xb * gray).sum(1, keepdim=True).expand_as(xb), xb)
            xb = (xb - 0.5) / 0.5
            if cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast():
                loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            train_loss += loss.detach().float() * b
        mid = synced()
        model.eval()
        correct = torch.zeros((), device=dev, dtype=torch.long)
        val_loss = torch.zeros((), device=dev)
        with torch.no_grad():
            for i in range(0, len(vy), VAL_BATCH):
                xb = (vx[i : i + VAL_BATCH].float() / 255 - 0.5) / 0.5
                if cuda:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with autocast():
                    logits = model(xb).float()
                val_loss += nn.functional.cross_entropy(
                    logits, vy[i : i + VAL_BATCH], reduction="sum"
                )
                correct += (logits.argmax(1) == vy[i : i + VAL_BATCH]).sum()
        acc = correct.item() / len(vy)
        end = synced()
        epochs.append(
            {
                "train_s": mid - start,
                "val_s": end - mid,
                "total_s": end - start,
                "val_acc": acc,
            }
        )
    return epochs


# ---------------------------------------------------------------------------------------------
# Ray Tune run


def start_ray() -> str:
    """Private in-process Ray on loopback; returns its RAY_TMPDIR (set before importing ray)."""
    tmp = f"/tmp/rb{os.getpid()}"  # short: Ray's socket paths must fit in 107 bytes
    os.makedirs(tmp, exist_ok=True)
    os.environ["RAY_TMPDIR"] = tmp
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    ray.init(
        address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
    )
    return tmp


def tune_run(
    data: TrialData,
    config: dict[str, Any],
    threads: int,
    storage: str,
    name: str,
    gpus: float = 0.0,
) -> tuple[list[dict], float]:
    """One real Tune run of train_trial; per-epoch metrics and the wall time of Tuner.fit.
    gpus: the trial's GPUs (1: the whole GPU, as the bare loop has it)."""
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=data, threads=threads, gpu_share=gpus),
        {"cpu": threads, "gpu": gpus},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=config,
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(
            storage_path=storage,
            name=name,
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # as tuner_setup.py
        ),
    )
    start = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - start
    result = results[0]
    if result.error is not None:
        raise RuntimeError(f"the Tune trial failed: {result.error}")
    df = result.metrics_dataframe.sort_values("training_iteration")
    epochs = [
        {
            "total_s": float(row.time_this_iter_s),
            "train_s": float(row.epoch_time_s),
            "rest_s": float(row.time_this_iter_s - row.epoch_time_s),
            "val_acc": float(row.val_acc),
        }
        for row in df.itertuples()
    ]
    return epochs, wall


# ---------------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument(
        "--data-dir", type=Path, default=Path("/tmp/cifar-jpg"), help="folder holding train/"
    )
    parser.add_argument("--train", type=int, default=5000, help="train images")
    parser.add_argument("--val", type=int, default=1000, help="val images")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run; first skipped")
    parser.add_argument("--rounds", type=int, default=3, help="bare+tune pairs (alternating)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads = cpus per trial")
    parser.add_argument(
        "--channels", type=int, nargs=3, default=(16, 32, 64), metavar="C", help="block widths"
    )
    parser.add_argument(
        "--max-busy", type=float, default=0.15,
        help="before each timed run, wait for the cores to be at most this busy (0..1)",
    )  # fmt: skip
    parser.add_argument(
        "--idle-wait", type=float, default=180.0,
        help="longest wait for that, in seconds, before running anyway (0: never wait)",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="cpu",
        help="cuda: the Tune trial on one GPU against a bare bf16 loop on the same GPU",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]  # the machine is shared: note how busy it was
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is warm-up)")

    bundle = subset(load_dataset("imagefolder", args.data_dir, val_count=args.val), args.train)
    config = bench_config(tuple(args.channels), args.epochs)
    t0 = time.perf_counter()
    data = TrialData.from_bundle(bundle)
    data_s = time.perf_counter() - t0
    print(
        f"{len(bundle.train.y):,} train / {len(bundle.val.y):,} val images, channels "
        f"{tuple(args.channels)}, batch {config['batch_size']}, {args.epochs} epochs x "
        f"{args.rounds} rounds, {args.threads} threads; TrialData {data_s:.2f} s",
        flush=True,
    )

    ray_tmp = start_ray()
    storage = tempfile.mkdtemp(prefix="bench-epoch-")
    bare: list[list[dict]] = []
    tune_runs: list[list[dict]] = []
    fit_walls: list[float] = []
    busy: list[tuple[str, float]] = []  # (run, fraction of the cores busy just before it)
    try:
        for r in range(args.rounds):
            order = ("bare", "tune") if r % 2 == 0 else ("tune", "bare")
            for side in order:
                busy.append((f"{side}{r + 1}", wait_for_idle(args.max_busy, args.idle_wait)))
                if side == "bare":
                    bare.append(bare_run(bundle, config, args.threads, args.device))
                else:
                    gpus = 1.0 if args.device.startswith("cuda") else 0.0
                    epochs, wall = tune_run(data, config, args.threads, storage, f"round{r}",
                                            gpus)  # fmt: skip
                    tune_runs.append(epochs)
                    fit_walls.append(wall)
            print(
                f"round {r + 1}: bare "
                + " ".join(f"{e['total_s']:.2f}" for e in bare[-1])
                + " s | tune "
                + " ".join(f"{e['total_s']:.2f}" for e in tune_runs[-1])
                + f" s (Tuner.fit {fit_walls[-1]:.1f} s); busy before "
                + ", ".join(f"{run} {frac:.0%}" for run, frac in busy[-2:]),
                flush=True,
            )
    finally:
        import ray

        ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)

    def timed(runs: list[list[dict]], key: str) -> list[float]:
        return [e[key] for run in runs for e in run[1:]]  # skip each run's warm-up epoch

    bare_total, tune_total = med(timed(bare, "total_s")), med(timed(tune_runs, "total_s"))
    ratio = tune_total / bare_total
    round_ratios = [
        med([e["total_s"] for e in t[1:]]) / med([e["total_s"] for e in b[1:]])
        for b, t in zip(bare, tune_runs, strict=True)
    ]
    parts = {
        "bare_train_s": med(timed(bare, "train_s")),
        "bare_val_s": med(timed(bare, "val_s")),
        "tune_train_s": med(timed(tune_runs, "train_s")),
        "tune_rest_s": med(timed(tune_runs, "rest_s")),
    }
    spread = (min(round_ratios), max(round_ratios))

    print()
    print(f"{'per epoch (median)':<26} {'bare':>8} {'tune':>8}")
    print(f"{'train':<26} {parts['bare_train_s']:>7.3f}s {parts['tune_train_s']:>7.3f}s")
    print(
        f"{'val (+ckpt+report: tune)':<26} {parts['bare_val_s']:>7.3f}s "
        f"{parts['tune_rest_s']:>7.3f}s"
    )
    print(f"{'epoch wall':<26} {bare_total:>7.3f}s {tune_total:>7.3f}s")
    print(
        f"epochs timed: {len(timed(bare, 'total_s'))} bare, {len(timed(tune_runs, 'total_s'))} tune"
    )
    print()
    print(f"tune / bare: {ratio:.3f}x  (rounds {spread[0]:.3f}..{spread[1]:.3f})")
    met = ratio <= TARGET_RATIO
    print(f"target: <= {TARGET_RATIO:.2f}x -> {'met' if met else 'MISSED'}")
    print(
        f"final val acc: bare {med([b[-1]['val_acc'] for b in bare]):.3f}, "
        f"tune {med([t[-1]['val_acc'] for t in tune_runs]):.3f}"
    )

    print(f"1-min load average: {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    if max(frac for _, frac in busy) > args.max_busy:
        print(f"warning: some runs started on cores more than {args.max_busy:.0%} busy: noisy")

    if args.json:
        out = {
            "benchmark": "epoch_overhead",
            "train_images": len(bundle.train.y),
            "val_images": len(bundle.val.y),
            "config": config,
            "epochs": args.epochs,
            "rounds": args.rounds,
            "threads": args.threads,
            "trial_payload_s": data_s,  # TrialData.from_bundle (the key predates it)
            "median_epoch_s": {"bare": bare_total, "tune": tune_total},
            "median_parts_s": parts,
            "ratio": ratio,
            "round_ratios": round_ratios,
            "target_ratio": TARGET_RATIO,
            "target_met": met,
            "tuner_fit_wall_s": fit_walls,
            "busy_before": dict(busy),
            "bare_epochs": bare,
            "tune_epochs": tune_runs,
            "machine": {
                "nproc": len(os.sched_getaffinity(0)),
                "cpu": cpu_model(),
                "device": args.device,
            },
            "loadavg_1min": {"start": load_start, "end": os.getloadavg()[0]},
            "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d"),
        }
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
