"""What the report that fills in costs the driver (`--report-every`, tuner/driver/live_report.py).

1. The time to write one live copy of report.html from the trial directories (what a running
   search has: no trials.csv yet), for synthetic experiments of 200 and 1,000 trials of 10
   epochs each, median of --rounds, and the page's size.
2. A real 200-trial search of tiny trials (digits, a one-block CNN, 1 epoch, FIFO, random
   search) with --report-every 60 (the default) and 5: the seconds its live copies took (the driver
   records them in provenance.json) against the search's wall time. The copies are written in
   a thread of the driver process, so that share is what they can take from Tune's loop.

    python bench/live_report.py --json bench/results/live_report.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _machine import HelpFormatter, cpu_model  # bench/ is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
SPACE = """
[constants]
n_blocks = 1
fc_layers = 0
[params]
channels_b0 = { choices = [4, 8] }
lr = { float = [0.01, 0.1], log = true }
"""


def synthetic(exp: Path, trials: int, epochs: int = 10) -> None:
    """An experiment directory as a running search leaves it: provenance.json and trial
    directories with params.json and one result.json line per epoch (no trials.csv)."""
    import random

    rng = random.Random(0)
    exp.mkdir(parents=True)
    (exp / "provenance.json").write_text(json.dumps({
        "config": {"name": exp.name, "space": "seed_cnn", "dataset": "digits",
                   "samples": trials, "epochs": epochs, "scheduler": "asha",
                   "searcher": "tpe", "seed": 0},
        "dataset": {"name": "digits", "classes": [str(i) for i in range(10)],
                    "input_shape": [1, 8, 8], "train": 1237, "val": 200, "test": 360},
        "started": "2026-12-01T10:00:00+00:00", "finished": None,
    }))  # fmt: skip
    for index in range(trials):
        trial_id = f"{index:08x}"
        trial = exp / f"trial_{index:04d}_{trial_id}"
        trial.mkdir()
        config = {"lr": rng.uniform(1e-3, 0.1), "channels_b0": rng.choice([16, 32, 64]),
                  "batch_size": rng.choice([32, 64, 128]), "epochs": epochs,
                  "optimizer": rng.choice(["sgd", "adam"])}  # fmt: skip
        (trial / "params.json").write_text(json.dumps(config))
        ran = epochs if rng.random() < 0.3 else rng.choice([1, 3])  # ASHA stops most
        best = (2.3, 0.1, 0)
        lines = []
        for epoch in range(1, ran + 1):
            val_loss = 2.3 * (0.9**epoch) * rng.uniform(0.8, 1.2)
            val_acc = min(0.99, 1 - val_loss / 2.5)
            if val_loss < best[0]:
                best = (val_loss, val_acc, epoch)
            lines.append(json.dumps({
                "epoch": epoch, "training_iteration": epoch, "trial_id": trial_id,
                "train_loss": val_loss * 0.9, "train_acc": val_acc, "val_loss": val_loss,
                "val_acc": val_acc, "best_val_loss": best[0], "best_val_acc": best[1],
                "best_epoch": best[2], "params": 10_000 + index, "macs": 100_000,
                "latency_ms": 0.2, "epoch_time_s": 0.5, "images_per_s": 2000.0, "lr": 0.01,
                "diverged": False, "time_total_s": 0.6 * epoch, "node_id": "n",
            }))  # fmt: skip
        (trial / "result.json").write_text("\n".join(lines) + "\n")


def write_time(trials: int, rounds: int) -> dict:
    from analysis import Running, write_report

    with tempfile.TemporaryDirectory() as d:
        exp = Path(d) / f"synthetic-{trials}"
        synthetic(exp, trials)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            path = write_report(exp, live=Running(trials // 2, trials, datetime.now(), 60))
            times.append(time.perf_counter() - start)
        return {"trials": trials, "seconds": times, "median_s": statistics.median(times),
                "bytes": path.stat().st_size}  # fmt: skip


def real_search(samples: int, every: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "space.toml").write_text(SPACE)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tuner.cli", "search", "--space", "space.toml", "--dataset",
             "digits", "--samples", str(samples), "--epochs", "1", "--scheduler", "fifo",
             "--searcher", "random", "--no-confirm", "--report-every", str(every), "--out", "out",
             "--name", "live"],
            cwd=d, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wall = time.perf_counter() - start
        prov = json.loads((Path(d) / "out" / "live" / "provenance.json").read_text())
        live = prov["live_report"][0]
        final = (Path(d) / "out" / "live" / "report.html").stat().st_size
        return {"samples": samples, "report_every_s": every, "wall_s": wall,
                "search_s": prov.get("seconds"),
                "live_writes": live["writes"], "live_seconds": live["seconds"],
                "share": live["seconds"] / wall, "report_bytes": final}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--search-samples", type=int, default=200, help="0: skip the search")
    parser.add_argument(
        "--report-every",
        type=float,
        nargs="+",
        default=[60, 5],
        help="the search's --report-every, one search each",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    out: dict = {"cpu": cpu_model(), "date": datetime.now().isoformat(timespec="seconds")}
    out["write"] = [write_time(n, args.rounds) for n in args.sizes]
    for w in out["write"]:
        print(f"{w['trials']:>5} trials: a live copy in {w['median_s']:.2f} s (median of "
              f"{args.rounds}), {w['bytes'] / 1e6:.1f} MB; at --report-every 60 that is "
              f"{w['median_s'] / 60:.1%} of the driver's time")  # fmt: skip
    out["search"] = []
    for every in args.report_every if args.search_samples else []:
        s = real_search(args.search_samples, every)
        out["search"].append(s)
        print(f"a real {s['samples']}-trial search, --report-every {every:g}: {s['wall_s']:.0f} "
              f"s, {s['live_writes']} live copies in {s['live_seconds']:.2f} s = "
              f"{s['share']:.2%} of its wall time")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
