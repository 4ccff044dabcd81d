"""Tune's overhead and start-up, measured on real `tuner search` runs on the CPU.

1. Overhead: the wall-clock of an N-trial search divided by the ideal, the sum of the trials'
   own seconds (their training and validation passes: epoch_time_s + val_time_s in
   epochs.csv) / concurrency. The search's wall-clock is `Tuner.fit` (from provenance.json's
   timings), as in Ray's own bookkeeping benchmark; the whole command (Python start, Ray
   start-up, test scoring of the winner, the report) is printed beside it. Trials are sized
   to about --trial-seconds each, all of the same network (bench/overhead_space.py): trials of
   very different sizes would measure how well they pack onto the cores instead. Target: at
   most 1.15.
2. Start-up: from the `tuner search` command to the first epoch starting in a trial (each epoch
   reports the wall-clock time it started), with the dataset already cached. Target: at most
   10 s.

The third figure of the issue, one epoch against a bare PyTorch loop, is bench/epoch_overhead.py.

    python bench/overhead.py --json /tmp/bench-overhead.json
    python bench/overhead.py -- --cpus-per-trial 2    # extra options go to `tuner search`
    git worktree add /tmp/before <older commit>
    python bench/overhead.py --compare /tmp/before   # start-up only, side by side
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from _machine import machine_busy  # bench/ is sys.path[0]


def run(args: argparse.Namespace, name: str, samples: int, epochs: int) -> dict:
    cmd = [sys.executable, "-m", "tuner.cli", "search", "--dataset", args.dataset,
           "--space", args.space,
           "--samples", str(samples), "--epochs", str(epochs), "--scheduler", "fifo",
           "--searcher", "random", "--concurrency", str(args.concurrency),
           "--out", str(args.out), "--name", name, "--seed", "0", *args.extra]  # fmt: skip
    busy = machine_busy()
    start = time.time()
    proc = subprocess.run(cmd, text=True, capture_output=True)
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    exp = args.out / name
    epochs_table = pd.read_csv(exp / "epochs.csv")
    timings = json.loads((exp / "provenance.json").read_text())["timings"][-1]
    trials = trial_results(exp)
    first_epoch = min(r["epoch_started_at"] for rows in trials for r in rows)
    gaps_ms = sorted(epoch_gaps_ms(trials))
    # A trial's own work: its training and validation passes. Everything else (start-up of
    # the trial, checkpoints, reports, scheduling) is what Tune and the trainable add.
    own = epochs_table["epoch_time_s"].sum() + epochs_table["val_time_s"].sum()
    ideal = own / args.concurrency
    per_trial = epochs_table.groupby("trial_index")[["epoch_time_s", "val_time_s"]].sum().sum(1)
    return {
        "samples": samples, "epochs": epochs, "command_wall_s": round(wall, 2),
        "fit_s": timings["fit"], "ideal_s": round(ideal, 2),
        "overhead_fit": round(timings["fit"] / ideal, 3),
        "overhead_command": round(wall / ideal, 3),
        "startup_s": round(first_epoch - start, 2),
        "trial_own_s_mean": round(float(per_trial.mean()), 2),
        "trial_own_s_range": [round(float(per_trial.min()), 2), round(float(per_trial.max()), 2)],
        "epoch_own_s_mean": round(float(own / len(epochs_table)), 3),
        "epoch_gap_ms_median": round(statistics.median(gaps_ms), 2) if gaps_ms else None,
        "epoch_gap_ms_p90": round(gaps_ms[int(0.9 * len(gaps_ms))], 2) if gaps_ms else None,
        "timings": timings, "machine_busy_before": round(busy, 2),
    }  # fmt: skip


def trial_results(exp: Path) -> list[list[dict]]:
    """Each trial's reported results (its result.json), in epoch order."""
    return [
        [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        for f in exp.glob("trial_*/result.json")
    ]


def epoch_gaps_ms(trials: list[list[dict]]) -> list[float]:
    """Per trial, the milliseconds between one epoch's end (its start + training + validation)
    and the next epoch's start: what reporting, checkpointing and Tune's round trip cost."""
    gaps = []
    for rows in trials:
        for a, b in zip(rows, rows[1:], strict=False):
            end = a["epoch_started_at"] + a["epoch_time_s"] + a.get("val_time_s", 0.0)
            gaps.append(1000 * (b["epoch_started_at"] - end))
    return gaps


def startup(args: argparse.Namespace, name: str, checkout: Path) -> float:
    """Seconds from `tuner search` (a 1-trial, 1-epoch search run from `checkout`) to the
    first epoch starting, with the dataset cached."""
    cmd = [sys.executable, "-m", "tuner.cli", "search", "--dataset", args.dataset,
           "--samples", "1", "--epochs", "1", "--out", str(args.out), "--name", name]  # fmt: skip
    start = time.time()
    # PYTHONPATH too, not only the working directory: Ray's worker processes must import the
    # checkout's code as well (the installed package may be another checkout's).
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    proc = subprocess.run(cmd, text=True, capture_output=True, cwd=checkout, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    trials = trial_results(args.out / name)
    return min(r["epoch_started_at"] for rows in trials for r in rows) - start


def compare_startup(args: argparse.Namespace) -> None:
    """Start-up of this checkout against another (--compare DIR), alternating, median."""
    here = Path(__file__).resolve().parent.parent
    checkouts = {"this": here, "other": args.compare.resolve()}
    stamp = time.strftime("%H%M%S")
    startup(args, f"warm-{stamp}", here)  # caches the dataset
    seconds: dict[str, list[float]] = {k: [] for k in checkouts}
    for r in range(args.startup_rounds):
        order = list(checkouts) if r % 2 == 0 else list(reversed(checkouts))
        for key in order:
            seconds[key].append(round(startup(args, f"st-{key}-{r}-{stamp}", checkouts[key]), 2))
            print(key, seconds[key][-1], flush=True)
    summary = {k: {"median_s": statistics.median(v), "runs": v, "checkout": str(checkouts[k])}
               for k, v in seconds.items()}  # fmt: skip
    print(json.dumps(summary, indent=1))
    print(
        f"start-up to the first epoch (median of {args.startup_rounds}): this checkout "
        f"{summary['this']['median_s']:.1f} s, {args.compare} {summary['other']['median_s']:.1f} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--trial-seconds", type=float, default=10.0)
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per trial instead of sizing them with a probe run "
                        "(to compare two checkouts on the very same work)")  # fmt: skip
    uniform = str(Path(__file__).resolve().parent / "overhead_space.py") + ":uniform"
    parser.add_argument("--space", default=uniform,
                        help="default: one fixed CNN, so all trials cost the same")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-overhead"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--compare", type=Path, default=None,
                        help="only measure start-up, alternating this checkout with another "
                        "(e.g. a `git worktree` of an older commit)")  # fmt: skip
    parser.add_argument("--startup-rounds", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more `tuner search` options, after --")
    args = parser.parse_args()
    if args.compare:
        compare_startup(args)
        return
    stamp = time.strftime("%H%M%S")
    # A probe: caches the dataset and times an epoch of the same first trials (same seed, so
    # the same configurations) to size the real trials to about --trial-seconds each.
    probe = run(args, f"probe-{stamp}", min(args.samples, 4), 2)
    per_epoch = probe["epoch_own_s_mean"]
    epochs = args.epochs or max(1, round(args.trial_seconds / per_epoch))
    print(f"probe: {per_epoch:.3f} s per epoch -> {epochs} epochs per trial", flush=True)
    figures = run(args, f"overhead-{stamp}", args.samples, epochs)
    figures["probe_startup_s"] = probe["startup_s"]
    print(json.dumps(figures, indent=1))
    print(
        f"\n{args.samples} trials of ~{figures['trial_own_s_mean']:.1f} s own work, concurrency "
        f"{args.concurrency}: Tuner.fit {figures['fit_s']:.1f} s vs ideal "
        f"{figures['ideal_s']:.1f} s = overhead {figures['overhead_fit']:.2f} (whole command "
        f"{figures['command_wall_s']:.1f} s = {figures['overhead_command']:.2f}); between "
        f"epochs {figures['epoch_gap_ms_median']:.1f} ms (median); start-up to "
        f"the first epoch {figures['startup_s']:.1f} s (dataset cached; probe run: "
        f"{figures['probe_startup_s']:.1f} s)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
