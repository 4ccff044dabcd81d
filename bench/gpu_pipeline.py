"""(a) Training images/s of the lab's network: our trial's pipeline against the lab's.

Same network (the lab's 2,211,338-parameter CNN), same settings (SGD lr 0.01, momentum 0.9,
flip + grayscale 0.1, Normalize(0.5, 0.5)), same images (train/ of bench/cifar_split.py's tree),
at batch 64 and at batch 512:

  ours   what a trial runs: DeviceLoader (the uint8 images on the GPU, batched augmentation,
         index gathers) + train_epoch (bf16 autocast, channels_last, no host sync per step).
  lab    the lab's script: ImageFolder over the JPEGs -> PIL transforms -> DataLoader
         (--lab-workers workers, shuffled) -> .to(device) per batch -> fp32 step with
         `running_loss += loss.item()`.
  mixed  the lab's DataLoader feeding our step: shows how much of the gap is the loader.

Ours is timed over whole epochs after one warm-up epoch; the lab's over --lab-images images
after 10 warm-up batches (worker start-up and cuDNN autotuning are not counted).

    python bench/gpu_pipeline.py --data-dir /tmp/cifar-45k5k --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from loader import lab_transform  # bench/ is sys.path[0]
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets

from search_spaces.seed_cnn import BASELINE
from tuner.data import load_dataset
from tuner.train.build import build_model, make_loaders
from tuner.train.config import TrainConfig
from tuner.train.loop import autocast_for, build_optimizer, train_epoch

WARMUP_BATCHES = 10


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(batch: int, payload: dict, device: torch.device, epochs: int) -> float:
    cfg = TrainConfig.from_dict({**BASELINE, "batch_size": batch})
    torch.manual_seed(0)
    model = build_model(cfg, payload, device)
    train, _ = make_loaders(cfg, payload, device)
    opt = build_optimizer(model, cfg)
    loss_fn = nn.CrossEntropyLoss()
    train_epoch(model, train, opt, None, loss_fn, device)  # warm-up: cuDNN autotune, allocator
    sync(device)
    start = time.perf_counter()
    images = 0
    for _ in range(epochs):
        images += train_epoch(model, train, opt, None, loss_fn, device).images
    sync(device)
    return images / (time.perf_counter() - start)


def lab(
    batch: int, train_dir: Path, payload: dict, device: torch.device, workers: int, images: int,
    *, our_step: bool,
) -> float:  # fmt: skip
    """The lab's loop (or, with our_step, the lab's loader feeding our bf16/channels_last step)."""
    cfg = TrainConfig.from_dict({**BASELINE, "batch_size": batch})
    torch.manual_seed(0)
    model = build_model(cfg, payload, device)
    if not our_step:
        model = model.to(memory_format=torch.contiguous_format)  # the lab's plain NCHW fp32
    opt = build_optimizer(model, cfg)
    loss_fn = nn.CrossEntropyLoss()
    dataset = datasets.ImageFolder(str(train_dir), transform=lab_transform())
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers)
    wanted = WARMUP_BATCHES + max(1, images // batch)
    running_loss, seen, start = 0.0, 0, 0.0
    done = 0
    while done < wanted:
        for inputs, labels in loader:
            if done == WARMUP_BATCHES:
                sync(device)
                start, seen = time.perf_counter(), 0
            inputs, labels = inputs.to(device), labels.to(device)
            if our_step:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
                with autocast_for(device):
                    loss = loss_fn(model(inputs), labels)
            else:
                loss = loss_fn(model(inputs), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not our_step:
                running_loss += loss.item()  # as the lab's loop did, every step
            seen += labels.numel()
            done += 1
            if done == wanted:
                break
    sync(device)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="bench/cifar_split.py tree")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs of ours")
    parser.add_argument("--lab-images", type=int, default=25_600, help="timed images of lab's")
    parser.add_argument("--lab-workers", type=int, default=5)
    parser.add_argument("--device", default="cuda", help="cpu only for a smoke run")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True

    bundle = load_dataset("imagefolder", args.data_dir)
    payload = {
        "train_x": bundle.train.x, "train_y": bundle.train.y,
        "val_x": bundle.val.x, "val_y": bundle.val.y,
        "input_shape": bundle.input_shape, "num_classes": bundle.num_classes,
        "mean": (0.5,) * 3, "std": (0.5,) * 3,
    }  # fmt: skip
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "none"
    figures: dict = {"gpu": gpu, "torch": torch.__version__, "lab_workers": args.lab_workers}
    train_dir = args.data_dir / "train"
    for batch in args.batches:
        lab_args = (batch, train_dir, payload, device, args.lab_workers, args.lab_images)
        row = {
            "ours": ours(batch, payload, device, args.epochs),
            "lab": lab(*lab_args, our_step=False),
            "mixed": lab(*lab_args, our_step=True),
        }
        row = {k: round(v) for k, v in row.items()}
        row["ratio"] = round(row["ours"] / row["lab"], 2)
        figures[f"batch{batch}"] = row
        print(
            f"batch {batch}: ours {row['ours']:,} images/s, lab {row['lab']:,}, lab loader + "
            f"our step {row['mixed']:,}: ours/lab {row['ratio']}x",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
