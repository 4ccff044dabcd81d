"""BENCHMARKS.md's replay tables, rebuilt from the JSON that bench/replay.py and
bench/replay_peers.py wrote (bench/results/replay-*.json): one markdown row per method.

    python bench/replay_table.py bench/results/replay-digits-resnet_cnn-200-equal-epochs-tpe.json \\
        bench/results/replay-peers-digits-resnet_cnn-200.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

HEADER = (
    "| method | final best, mean [95 % CI] | gap to the sweep | worst seed | "
    "@1/10 | @1/5 | @1/2 | epochs to target (median) | seconds to target (median) |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def _number(value: float, fmt: str) -> str:
    return "never" if value is None or math.isinf(value) else fmt.format(value)


def rows(result: dict[str, Any], skip_sweep: bool = False) -> list[str]:
    out = []
    for name, m in result["methods"].items():
        if skip_sweep and name == "sweep (fifo)":
            continue
        mean, lo, hi = m["final_best"]
        curve = m["best_by_fraction_of_sweep_epochs"]
        out.append(
            f"| {name} | {mean:.4f} [{lo:.4f}, {hi:.4f}] | {100 * m['gap_to_sweep'][0]:+.1f} pts "
            f"| {100 * m['worst_gap_to_sweep']:+.1f} | {curve['0.1'][0]:.3f} | "
            f"{curve['0.2'][0]:.3f} | {curve['0.5'][0]:.3f} | "
            f"{_number(m['median_epochs_to_target'], '{:.0f}')} | "
            f"{_number(m['median_seconds_to_target'], '{:.0f}')} |"
        )
    return out


def compare(results: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """One row per replay (a task at one epoch budget), one column per method: its final best
    [95 % CI], gap to the sweep and worst seed, and its epochs as a fraction of the sweep's."""
    head = "| task, epochs a trial | sweep | " + " | ".join(methods) + " |"
    out = [head, "|" + "---|" * (2 + len(methods))]
    for r in results:
        task = Path(str(r["experiment"])).name
        cells = [f"{task}, {r['epochs']}", f"{r['methods']['sweep (fifo)']['final_best'][0]:.4f}"]
        for name in methods:
            m = r["methods"][name]
            mean, lo, hi = m["final_best"]
            cells.append(
                f"{mean:.4f} [{lo:.4f}, {hi:.4f}], {100 * m['gap_to_sweep'][0]:+.1f} pts, "
                f"worst {100 * m['worst_gap_to_sweep']:+.1f}, "
                f"{m['epochs_fraction_of_sweep']:.2f} of the epochs"
            )
        out.append("| " + " | ".join(cells) + " |")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, nargs="+", help="replay results of one task")
    parser.add_argument(
        "--compare", nargs="+", metavar="METHOD",
        help="one row per JSON (a task), one column per METHOD, instead",
    )  # fmt: skip
    args = parser.parse_args(argv)
    results = [json.loads(p.read_text()) for p in args.json]
    if args.compare:
        print("\n".join(compare(results, args.compare)))
        return
    first = results[0]
    print(f"{first['configurations']} recorded configurations x {first['epochs']} epochs; the "
          f"sweep: {first['samples']} trials; seeds: "
          f"{', '.join(str(r['seeds']) for r in results)}")  # fmt: skip
    print()
    print(HEADER)
    for i, result in enumerate(results):
        for row in rows(result, skip_sweep=i > 0):
            print(row)


if __name__ == "__main__":
    main()
