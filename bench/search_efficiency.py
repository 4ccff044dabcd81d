"""ASHA + TPE against a FIFO random sweep: compute used and what each finds, over seeds.

Both get the same number of trials, the same space, the same epoch cap and the same seeds; each
search is a real `tuner search` (Ray, Optuna, training). Per search: total epochs trained (the
compute), the best validation accuracy (of the kept weights) and the held-out accuracy of the
winner (its test split, scored once). Reported as mean and spread (min..max) over the seeds,
and the ratio of compute. Target: ASHA + TPE uses at most 1/3 of the sweep's epochs, with best
validation accuracy within 1 point.

    python bench/search_efficiency.py --dataset digits --json /tmp/eff-digits.json
    python bench/cifar_split.py /tmp/cifar-jpg/train /tmp/cifar-3k --per-class 300 \\
        --hold-out-every 6      # 2,500 train (500 of them validation) / 500 held-out
    python bench/search_efficiency.py --dataset imagefolder --data-dir /tmp/cifar-3k \\
        --samples 27 --epochs 27 --max-macs 1M --json /tmp/eff-cifar.json -- --val-count 500
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

STRATEGIES = {
    "asha+tpe": ["--searcher", "tpe", "--scheduler", "asha"],
    "fifo+random": ["--searcher", "random", "--scheduler", "fifo"],
}


def one_search(args: argparse.Namespace, strategy: str, seed: int) -> dict:
    name = f"{args.dataset}-{strategy.replace('+', '-')}-s{seed}-{time.strftime('%H%M%S')}"
    cmd = [sys.executable, "-m", "tuner.cli", "search", "--dataset", args.dataset,
           "--samples", str(args.samples), "--epochs", str(args.epochs), "--seed", str(seed),
           "--out", str(args.out), "--name", name, *STRATEGIES[strategy]]  # fmt: skip
    if args.data_dir:
        cmd += ["--data-dir", str(args.data_dir)]
    if args.max_macs:
        cmd += ["--max-macs", args.max_macs]
    cmd += args.extra
    if args.reduction_factor and strategy == "asha+tpe":
        cmd += ["--reduction-factor", str(args.reduction_factor)]
    if strategy == "asha+tpe":
        cmd += ["--asha-rule", args.asha_rule]
    start = time.perf_counter()
    proc = subprocess.run(cmd, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    exp = args.out / name
    trials = pd.read_csv(exp / "trials.csv")
    best = json.loads((exp / "best.json").read_text())
    row = {
        "strategy": strategy, "seed": seed, "epochs": int(trials["epochs_run"].sum()),
        "best_val_acc": float(best["val_acc"]), "held_out_acc": float(best["test_acc"]),
        "wall_s": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def spread(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--samples", type=int, default=27)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-macs", default=None, help="keep CIFAR models small on the CPU")
    parser.add_argument("--reduction-factor", type=int, default=None,
                        help="ASHA's; default: tuner search's default")  # fmt: skip
    parser.add_argument("--asha-rule", default="paper", choices=("paper", "ray"))
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=list(STRATEGIES),
        choices=list(STRATEGIES),
        help="run only these (e.g. to compare rules)",
    )
    parser.add_argument("--sweep-from", type=Path, default=None,
                        help="take the FIFO random sweep's runs from an earlier --json of "
                        "the same dataset, trials, epochs and seeds (only ASHA + TPE runs)",
                        )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-efficiency"))
    parser.add_argument("--json", default=None)
    parser.add_argument("extra", nargs="*", help="more `tuner search` options for both, after --")
    args = parser.parse_args()
    reused = []
    if args.sweep_from:  # the sweep does not depend on ASHA's settings: reuse its runs
        earlier = json.loads(args.sweep_from.read_text())
        same = all(earlier[k] == getattr(args, k) for k in ("dataset", "samples", "epochs"))
        if not same or earlier.get("extra", []) != args.extra:
            raise SystemExit(f"{args.sweep_from} ran another dataset, size or options")
        reused = [r for r in earlier["runs"] if r["strategy"] == "fifo+random"
                  and r["seed"] in args.seeds]  # fmt: skip
        args.strategies = ["asha+tpe"]
    rows = reused + [one_search(args, s, seed) for seed in args.seeds for s in args.strategies]
    table = pd.DataFrame(rows)
    summary: dict = {"dataset": args.dataset, "samples": args.samples, "epochs": args.epochs,
                     "extra": args.extra,
                     "seeds": args.seeds, "reduction_factor": args.reduction_factor,
                     "asha_rule": args.asha_rule, "max_macs": args.max_macs,
                     "runs": rows}  # fmt: skip
    if len({r["strategy"] for r in rows}) < len(STRATEGIES):
        print(json.dumps(summary, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
        return
    for strategy, group in table.groupby("strategy"):
        summary[strategy] = {k: spread(group[k].tolist())
                             for k in ("epochs", "best_val_acc", "held_out_acc")}  # fmt: skip
    ours, sweep = summary["asha+tpe"], summary["fifo+random"]
    by_seed = table.pivot(index="seed", columns="strategy", values="epochs")
    ratios = (by_seed["asha+tpe"] / by_seed["fifo+random"]).tolist()
    summary["compute_ratio"] = spread(ratios)
    summary["val_acc_gap_points"] = 100 * (
        ours["best_val_acc"]["mean"] - sweep["best_val_acc"]["mean"]
    )
    print(json.dumps(summary, indent=1))
    print(
        f"\n{args.dataset}: ASHA+TPE used {summary['compute_ratio']['mean']:.2f} of the sweep's "
        f"epochs ({ours['epochs']['mean']:.0f} vs {sweep['epochs']['mean']:.0f}); best val acc "
        f"{ours['best_val_acc']['mean']:.4f} vs {sweep['best_val_acc']['mean']:.4f} "
        f"({summary['val_acc_gap_points']:+.2f} points); held-out "
        f"{ours['held_out_acc']['mean']:.4f} vs {sweep['held_out_acc']['mean']:.4f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
