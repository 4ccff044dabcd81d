"""What the confirm stage adds to the default demo's wall time, side by side.

The default demo is `tuner search` with no options (seed_cnn on digits, 20 trials x 10 epochs,
TPE + ASHA); the confirm stage then trains the top 3 configurations and the lab's baseline over
3 fresh seeds (12 runs of 10 epochs) and scores each on the test split. The two commands run in
turn, A B A B ..., so that a drift in the shared machine's speed hits both alike; the ratio is
taken pair by pair. The stage's own seconds come from provenance.json's timings.

    python bench/confirm_cost.py --pairs 3 --json bench/results/confirm_cost.json
    python bench/confirm_cost.py -- --dataset cifar10 --data-dir ...   # extra search options

Target (issue 14): the default demo, confirm stage included, under 2 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_busy  # bench/ is sys.path[0]


def one(out: Path, name: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "tuner.cli", "search", "--out", str(out), "--name", name, *extra]
    busy = machine_busy()
    start = time.monotonic()
    proc = subprocess.run(cmd, text=True, capture_output=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    record = json.loads((out / name / "provenance.json").read_text())
    phases = record["timings"][-1]
    best = json.loads((out / name / "best.json").read_text())
    return {
        "wall_s": round(wall, 1), "busy_before": round(busy, 2),
        "fit_s": round(phases.get("fit", 0.0), 1),
        "confirm_s": round(phases.get("confirm", 0.0), 1),
        "confirm_scoring_s": round(phases.get("confirm_scoring", 0.0), 1),
        "winner": (best.get("confirm") or {}).get("winner", best.get("trial_index")),
        "search_best": best.get("trial_index"),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("extra", nargs="*", help="options for both searches (after --)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="confirm-cost-"))
    pairs = []
    for i in range(args.pairs):
        with_stage = one(out, f"confirm-{i}", args.extra)
        without = one(out, f"no-confirm-{i}", [*args.extra, "--no-confirm"])
        pairs.append({"with": with_stage, "without": without,
                      "ratio": round(with_stage["wall_s"] / without["wall_s"], 3)})  # fmt: skip
        print(f"pair {i + 1}: with the stage {with_stage['wall_s']} s (stage "
              f"{with_stage['confirm_s']} s + scoring {with_stage['confirm_scoring_s']} s), "
              f"without {without['wall_s']} s, ratio {pairs[-1]['ratio']}", flush=True)  # fmt: skip
    summary = {
        "command": "tuner search " + " ".join(args.extra),
        "median_with_s": statistics.median(p["with"]["wall_s"] for p in pairs),
        "median_without_s": statistics.median(p["without"]["wall_s"] for p in pairs),
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
        "median_stage_s": statistics.median(
            p["with"]["confirm_s"] + p["with"]["confirm_scoring_s"] for p in pairs
        ),
        "winner_changed": sum(p["with"]["winner"] != p["with"]["search_best"] for p in pairs),
        "pairs": pairs,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "pairs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
