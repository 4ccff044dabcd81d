"""(b) Seconds for the lab's configuration to reach 83 % held-out accuracy on a GPU.

Runs the pieces a trial runs (build_model, make_loaders, train_epoch, evaluate from
tuner/driver/trainable.py and tuner/train/loop.py), without Ray: our device-resident loader, bf16
autocast and channels_last. Data: the fixed 45,000 / 5,000 split of the CIFAR-10 JPEG training
set made by bench/cifar_split.py (train on train/, held-out accuracy on test/). The lab's
configuration: SGD lr 0.01, momentum 0.9, batch 64, flip + grayscale 0.1, Normalize(0.5, 0.5).
It also checks that the model really runs in bf16 and holds its weights channels_last.

    python bench/gpu_trainable.py --data-dir /tmp/cifar-45k5k --json out.json

Stops at 83 %, at --max-epochs or after --time-cap seconds. Needs a CUDA GPU (--device cpu
for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from search_spaces.seed_cnn import BASELINE
from tuner.data import load_dataset
from tuner.train.build import build_model, make_loaders
from tuner.train.config import TrainConfig
from tuner.train.loop import autocast_for, build_optimizer, build_schedule, evaluate, train_epoch

TARGET_ACC = 0.83


def payload_from(bundle, limit: int | None = None) -> dict:
    """Train on all of train/ (the tuner's train + val splits), hold out test/."""
    x = np.concatenate([bundle.train.x, bundle.val.x])[:limit]
    y = np.concatenate([bundle.train.y, bundle.val.y])[:limit]
    return {
        "train_x": x,
        "train_y": y,
        "val_x": bundle.test.x,
        "val_y": bundle.test.y,
        "input_shape": bundle.input_shape,
        "num_classes": bundle.num_classes,
        "mean": (0.5,) * 3,
        "std": (0.5,) * 3,
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--time-cap", type=float, default=75.0, help="stop after this many s")
    parser.add_argument("--json", default=None, help="write the figures here too")
    parser.add_argument("--device", default="cuda", help="cpu only for a smoke run")
    parser.add_argument("--limit", type=int, default=None, help="train images (smoke runs)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True

    t0 = time.perf_counter()
    bundle = load_dataset("imagefolder", args.data_dir)
    payload = payload_from(bundle, args.limit)
    print(f"loaded {len(payload['train_y'])} train / {len(payload['val_y'])} held-out "
          f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "none"
    figures: dict = {"gpu": gpu, "torch": torch.__version__}

    cfg = TrainConfig.from_dict({**BASELINE, "epochs": args.max_epochs})
    model = build_model(cfg, payload, device)
    x = torch.zeros(8, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    with autocast_for(device):
        out = model(x)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    figures["autocast_dtype"] = str(out.dtype)
    figures["weights_channels_last"] = conv.weight.is_contiguous(memory_format=torch.channels_last)
    print(f"autocast output dtype {out.dtype}, conv weights channels_last "
          f"{figures['weights_channels_last']}")  # fmt: skip

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, payload, device)
    train, held_out = make_loaders(cfg, payload, device)
    opt = build_optimizer(model, cfg)
    sched = build_schedule(opt, cfg, len(train))
    loss_fn = nn.CrossEntropyLoss()
    curve = []
    reached = None
    sync(device)
    start = time.perf_counter()
    for epoch in range(1, args.max_epochs + 1):
        stats = train_epoch(model, train, opt, sched, loss_fn, device)
        val, _ = evaluate(model, held_out, device)
        elapsed = time.perf_counter() - start
        curve.append({"epoch": epoch, "seconds": round(elapsed, 2), "train_loss": stats.loss,
                      "held_out_acc": val.acc, "held_out_loss": val.loss})  # fmt: skip
        print(f"epoch {epoch:2d}  {elapsed:6.1f} s  train loss {stats.loss:.3f}  "
              f"held-out acc {val.acc:.4f}  loss {val.loss:.3f}")  # fmt: skip
        if reached is None and val.acc >= TARGET_ACC:
            reached = {"epoch": epoch, "seconds": round(elapsed, 2)}
            break
        if not math.isfinite(stats.loss) or elapsed > args.time_cap:
            break
    figures["lab_config_curve"] = curve
    figures["reached_83pct"] = reached
    figures["best_held_out_acc"] = max(c["held_out_acc"] for c in curve)
    print("reached 83 %:", reached or f"no (best {figures['best_held_out_acc']:.4f})")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
