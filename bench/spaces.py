"""resnet_cnn and multi-objective search against the lab's network, on the CPU, by `tuner search`.

Data: a fixed subset of the CIFAR-10 JPEG training set as a train/ + test/ tree (made by
bench/cifar_split.py; 5,000 train / 1,000 held-out by default). Every trial of every search
gets the same per-trial compute: --epochs epochs over the same train images, and networks no
more expensive per image than the lab's (--max-macs = the lab network's MACs), so a better
result comes from a better network and recipe, not from more compute. Three real searches:

  lab        seed_cnn, 1 trial: the lab's network and training (trial 0 is always the lab's)
  resnet     resnet_cnn, --samples trials, TPE + ASHA, --max-macs the lab's MACs
  small      resnet_cnn, --objectives val_acc:max,params:min, --max-params 1/10 of the lab's

Held-out accuracy is each search's test split (test/), scored once on the model the search
picked on validation (the knee for the multi-objective one; for `small` the best Pareto point
with held-out accuracy at or above the lab's is quoted too). Total search compute (epochs run)
is printed for each.

    python bench/cifar_split.py /tmp/cifar-jpg/train /tmp/cifar-6k --per-class 600 \\
        --hold-out-every 6
    python bench/spaces.py --data-dir /tmp/cifar-6k --json /tmp/bench-spaces.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from search_spaces.seed_cnn import BASELINE
from tuner.train.cost import model_cost

LAB_PARAMS = 2_211_338


def run_search(name: str, out: Path, data_dir: Path, extra: list[str]) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "tuner.cli", "search", "--dataset", "imagefolder",
           "--data-dir", str(data_dir), "--out", str(out), "--name", name, *extra]  # fmt: skip
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, text=True, capture_output=True)
    seconds = time.perf_counter() - start
    tail = "\n".join(proc.stdout.splitlines()[-14:])
    print(tail, flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / name / "best.json").read_text()), seconds


def epochs_run(out: Path, name: str) -> int:
    return int(pd.read_csv(out / name / "trials.csv")["epochs_run"].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="cifar_split.py tree")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-spaces"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lab_macs = model_cost(BASELINE, (3, 32, 32), 10).macs
    common = ["--epochs", str(args.epochs), "--seed", str(args.seed), "--cpus-per-trial", "2"]
    stamp = time.strftime("%H%M%S")

    lab, lab_s = run_search(f"lab-{stamp}", args.out, args.data_dir,
                            ["--space", "seed_cnn", "--samples", "1", "--scheduler", "fifo",
                             *common])  # fmt: skip
    resnet, resnet_s = run_search(f"resnet-{stamp}", args.out, args.data_dir,
                                  ["--space", "resnet_cnn", "--samples", str(args.samples),
                                   "--max-macs", str(lab_macs), *common])  # fmt: skip
    small, small_s = run_search(f"small-{stamp}", args.out, args.data_dir,
                                ["--space", "resnet_cnn", "--samples", str(args.samples),
                                 "--objectives", "val_acc:max,params:min",
                                 "--max-params", str(LAB_PARAMS // 10), *common])  # fmt: skip

    lab_acc = lab["test_acc"]
    qualifying = [p for p in small["pareto_front"]
                  if p.get("test_acc") is not None and p["test_acc"] >= lab_acc]  # fmt: skip
    smallest = min(qualifying, key=lambda p: p["params"]) if qualifying else None
    figures = {
        "data": str(args.data_dir), "epochs_per_trial": args.epochs, "samples": args.samples,
        "lab": {"held_out_acc": lab_acc, "params": lab["params"], "macs": lab_macs,
                "seconds": round(lab_s)},
        "resnet": {"held_out_acc": resnet["test_acc"], "params": resnet["params"],
                   "config": resnet["config"], "trial": resnet["trial_index"],
                   "epochs_run": epochs_run(args.out, f"resnet-{stamp}"),
                   "seconds": round(resnet_s)},
        "small": {"knee_held_out_acc": small["test_acc"], "knee_params": small["params"],
                  "front": [{k: p.get(k) for k in ("trial_index", "params", "test_acc")}
                            for p in small["pareto_front"]],
                  "smallest_at_or_above_lab": smallest and {
                      "trial": smallest["trial_index"], "params": smallest["params"],
                      "held_out_acc": smallest["test_acc"],
                      "fraction_of_lab_params": round(smallest["params"] / LAB_PARAMS, 4)},
                  "epochs_run": epochs_run(args.out, f"small-{stamp}"),
                  "seconds": round(small_s)},
    }  # fmt: skip
    print(json.dumps(figures, indent=1, default=str))
    print(f"\nheld-out accuracy: lab {lab_acc:.4f} ({lab['params']:,} params); resnet_cnn best "
          f"{resnet['test_acc']:.4f} ({resnet['params']:,} params); "
          + (f"smallest Pareto point at or above the lab: {smallest['test_acc']:.4f} with "
             f"{smallest['params']:,} params ({smallest['params'] / LAB_PARAMS:.1%} of the lab's)"
             if smallest else "no Pareto point reached the lab's accuracy"))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
