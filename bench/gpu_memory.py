"""--gpus-per-trial auto's memory estimate against the real peak, on a GPU ([gpu], part 3).

For --samples configurations drawn at random from each built-in space (at CIFAR-10's 3x32x32,
with the fixed split's 45,000 / 5,000 images on the device, as a trial has them), it records:
- the estimate tuner.driver.gpu_packing packs trials by (tuner.train.memory, meta device);
- the measured peak: torch.cuda.max_memory_allocated over the trial's own set-up, two training
  steps and a validation batch (tuner.train.memory.measure_peak_bytes);
- the share of the GPU the estimate gets.
The estimate must never be below the measured peak: the script prints every configuration
whose estimate is, and exits 1 if there is one. On the CPU (--device cpu, a smoke run) only
the estimates are made.

    python bench/gpu_memory.py --json bench/results/gpu_memory-h200.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from _machine import HelpFormatter  # bench/ is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--samples", type=int, default=20, help="configurations per space")
    parser.add_argument("--spaces", nargs="+", default=["seed_cnn", "resnet_cnn"])
    parser.add_argument("--images", type=int, nargs=2, default=[45_000, 5_000],
                        metavar=("TRAIN", "VAL"))  # fmt: skip
    parser.add_argument("--device", default="cuda", help="cpu: estimates only (a smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    from search_spaces import get_space
    from search_spaces.check import sample_configs
    from tuner.driver.gpu_packing import gpu_share
    from tuner.train.memory import estimate_peak_bytes, measure_peak_bytes

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    gpu_bytes = torch.cuda.get_device_properties(device).total_memory if cuda else 141 * 2**30
    shape, classes, images = (3, 32, 32), 10, tuple(args.images)
    rows, under = [], 0
    for space in args.spaces:
        for i, (params, config) in enumerate(
            sample_configs(get_space(space), 32, args.samples, seed=args.seed)
        ):
            config = {**config, "epochs": 10}
            start = time.perf_counter()
            estimate = estimate_peak_bytes(config, shape, classes, images)
            estimate_ms = 1000 * (time.perf_counter() - start)
            measured = None
            if cuda:
                try:
                    measured = measure_peak_bytes(config, shape, classes, images, device)
                except torch.cuda.OutOfMemoryError:
                    measured = -1  # it does not fit one GPU at all
            row = {
                "space": space, "sample": i, "params": params,
                "batch_size": config.get("batch_size"), "estimate": estimate.to_dict(),
                "estimate_ms": estimate_ms, "measured": measured,
                "share": gpu_share(estimate.total, gpu_bytes),
                "ratio": None if not measured or measured < 0 else estimate.total / measured,
            }  # fmt: skip
            rows.append(row)
            low = measured is not None and measured > estimate.total
            under += low
            shown = "-" if measured is None else f"{measured / 2**20:,.0f} MiB"
            print(f"{space} #{i:2d} batch {row['batch_size']}: estimate "
                  f"{estimate.total / 2**20:,.0f} MiB ({estimate_ms:.0f} ms), measured {shown}, "
                  f"share {row['share']:.2f}{'  ESTIMATE BELOW THE PEAK' if low else ''}",
                  flush=True)  # fmt: skip
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    summary = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "gpu_bytes": gpu_bytes, "configs": len(rows), "estimate_below_peak": under,
        "ratio_min": min(ratios, default=None), "ratio_max": max(ratios, default=None),
        "rows": rows,
    }  # fmt: skip
    if ratios:
        print(f"estimate / measured peak: {min(ratios):.2f} .. {max(ratios):.2f} over "
              f"{len(ratios)} configurations; below the peak: {under}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 1 if under else 0


if __name__ == "__main__":
    sys.exit(main())
