"""Tune's overhead and start-up, measured on real `tuner search` runs on the CPU.

1. Overhead: the wall-clock of an N-trial search (command start to exit, Ray start-up, final
   test scoring and the report included) divided by the ideal, the sum of the trials' own
   training seconds (train_seconds in trials.csv: time inside train_epoch) / concurrency.
   Trials are sized to about --trial-seconds each. Target: at most 1.15.
2. Start-up: from the `tuner search` command to the first epoch starting in a trial (each epoch
   reports the wall-clock time it started), with the dataset already cached. Target: at most
   10 s.

The third figure of the issue, one epoch against a bare PyTorch loop, is bench/epoch_overhead.py.

    python bench/overhead.py --json /tmp/bench-overhead.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from _machine import machine_busy  # bench/ is sys.path[0]


def run(args: argparse.Namespace, name: str, samples: int, epochs: int) -> dict:
    cmd = [sys.executable, "-m", "tuner.cli", "search", "--dataset", args.dataset,
           "--samples", str(samples), "--epochs", str(epochs), "--scheduler", "fifo",
           "--searcher", "random", "--concurrency", str(args.concurrency),
           "--out", str(args.out), "--name", name, "--seed", "0"]  # fmt: skip
    busy = machine_busy()
    start = time.time()
    proc = subprocess.run(cmd, text=True, capture_output=True)
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    exp = args.out / name
    trials = pd.read_csv(exp / "trials.csv")
    rows = [json.loads(line) for f in exp.glob("trial_*/result.json")
            for line in f.read_text().splitlines() if line.strip()]  # fmt: skip
    first_epoch = min(r["epoch_started_at"] for r in rows)
    ideal = trials["train_seconds"].sum() / args.concurrency
    return {
        "samples": samples, "epochs": epochs, "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2), "overhead": round(wall / ideal, 3),
        "startup_s": round(first_epoch - start, 2),
        "trial_train_s_mean": round(float(trials["train_seconds"].mean()), 2),
        "machine_busy_before": round(busy, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--trial-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-overhead"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    stamp = time.strftime("%H%M%S")
    # A one-trial probe: caches the dataset and measures an epoch, to size the real trials.
    probe = run(args, f"probe-{stamp}", 1, 2)
    per_epoch = probe["trial_train_s_mean"] / 2
    epochs = max(1, round(args.trial_seconds / per_epoch))
    print(f"probe: {per_epoch:.2f} s per epoch -> {epochs} epochs per trial", flush=True)
    figures = run(args, f"overhead-{stamp}", args.samples, epochs)
    figures["probe_startup_s"] = probe["startup_s"]
    print(json.dumps(figures, indent=1))
    print(
        f"\n{args.samples} trials of ~{figures['trial_train_s_mean']:.1f} s, concurrency "
        f"{args.concurrency}: wall {figures['wall_s']:.1f} s vs ideal {figures['ideal_s']:.1f} s"
        f" = overhead {figures['overhead']:.2f}; start-up to the first epoch "
        f"{figures['startup_s']:.1f} s (dataset cached)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
