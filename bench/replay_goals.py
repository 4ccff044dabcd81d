"""Issue 24's goals, checked on replays: one task's JSON from bench/replay.py and
bench/replay_peers.py (the same seeds, hence the same sweeps), one method of this service
against every other method in them.

    python bench/replay_goals.py \\
        bench/results/start-points/replay-equal-epochs-digits-seed_cnn.json \\
        bench/results/start-points/replay-peers-digits-seed_cnn.json \\
        --ours "ours as shipped (TPE + ASHA, grace 3 at most epochs - 1)"

The goals, as the issue words them, and how each is read here:
- anytime: at every point of the curve of the best validation accuracy so far, against epochs
  trained and against the clock, at or above every peer's within the seeds' 95 % interval:
  at each fraction of the sweep's epochs (seconds) that the replays record, the upper end of
  ours' interval is at or above each peer's mean. Against the clock from the first finished
  epoch on: the 5 % point is left out of that axis when no method has a finished epoch there.
- a tenth: the sweep's best within 1 point with at most 1/10 of its epochs, in 8 of 10 seeds;
- time to target (to within 1 point of the sweep's best) at least 2x faster than stock Ray
  Tune: the medians over seeds, in simulated seconds;
- no seed more than 2 points below the sweep's best at the end.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

STOCK = "stock ray tune: TPE + ASHA (grace 1, rf 4)"


def methods_of(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Every method of the JSON files, by name (the sweep once)."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        out.update(json.loads(path.read_text())["methods"])
    return out


def check(methods: dict[str, dict[str, Any]], ours: str) -> list[str]:
    """The goals' lines, markdown: one row per curve point, then one per goal."""
    me = methods[ours]
    peers = {n: m for n, m in methods.items() if n != ours and not n.startswith("ours")}
    lines = ["| axis, point | ours, mean [95 % CI] | the best peer there | met |",
             "|---|---|---|---|"]  # fmt: skip
    missed = 0
    for axis, key in (("epochs", "best_by_fraction_of_sweep_epochs"),
                      ("clock", "best_by_fraction_of_sweep_seconds")):  # fmt: skip
        for point, (mean, lo, hi) in me[key].items():
            best_name, best = max(((n, m[key][point][0]) for n, m in peers.items()),
                                  key=lambda x: x[1])  # fmt: skip
            if axis == "clock" and best == 0.0 and mean == 0.0:
                continue  # no finished epoch yet anywhere
            ok = hi >= best
            missed += not ok
            lines.append(f"| {axis}, {point} of the sweep's | {mean:.3f} [{lo:.3f}, {hi:.3f}] "
                         f"| {best:.3f} ({best_name}) | {'yes' if ok else '**no**'} |")  # fmt: skip
    tenth = me["seeds_within_1pt_at_tenth_of_sweep_epochs"]
    ours_t = me["median_seconds_to_target"]
    stock_t = methods[STOCK]["median_seconds_to_target"] if STOCK in methods else None
    if stock_t is None:
        speed = "stock Ray Tune not in these replays"
    elif math.isinf(ours_t):
        speed = f"**no**: ours never (median), stock {stock_t:.0f} s"
    elif math.isinf(stock_t):
        speed = f"yes: ours {ours_t:.0f} s, stock never (median)"
    else:
        ratio = stock_t / ours_t
        verdict = "yes" if ratio >= 2 else "**no**"
        speed = f"{verdict}: {ratio:.2f}x ({ours_t:.0f} s / {stock_t:.0f} s)"
    # in points, rounded: a gap of exactly 2 points (10 of 500 images) is "not more than 2"
    worst = round(100 * me["worst_gap_to_sweep"], 6)
    lines += [
        "",
        f"- anytime: {'met' if not missed else f'**missed** at {missed} point(s)'}",
        f"- a tenth of the sweep's epochs, within 1 point: {100 * tenth:.0f} % of seeds "
        f"({'met' if tenth >= 0.8 else '**missed**'}, goal 80 %)",
        f"- time to target, 2x stock Ray Tune: {speed}",
        f"- worst seed against the sweep: {worst:+.1f} points "
        f"({'met' if worst >= -2.0 else '**missed**'}, goal -2.0)",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, nargs="+", help="one task's replay results")
    parser.add_argument("--ours", required=True, help="the method of this service to check")
    args = parser.parse_args(argv)
    methods = methods_of(args.json)
    if args.ours not in methods:
        parser.error(f"--ours {args.ours!r} is not in these replays: {sorted(methods)}")
    print("\n".join(check(methods, args.ours)))


if __name__ == "__main__":
    main()
