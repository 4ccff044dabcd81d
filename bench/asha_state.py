"""What keeping ASHA's rungs on disk costs the driver a trial ([scale]), as a search grows.

The scheduler alone (tuner/driver/fence/asha.py PersistentASHA), no Ray cluster: the results a
search of N tiny trials gives it (bench/scale.py's: 2 epochs a trial, grace period 1,
reduction factor 3, TPE-like losses that improve slowly), one trial after another. Every
decision at a rung is on disk before it is returned. Rewriting the whole state file at each
one cost O(trials) a decision: 12 % of the driver's main thread at trial 8,000 of 10,000 tiny
trials (py-spy, BENCHMARKS.md). The log of decisions appends a line instead.

    .venv/bin/python bench/asha_state.py --trials 1000 10000 --json out.json

Per size: the mean milliseconds of the scheduler's calls a trial over the whole run and over
its last 10 % of trials, and the seconds in all. Before and after a change, side by side: run
it in a worktree of the old revision as well (each measures its own tree's code).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _machine import HelpFormatter, cpu_model  # bench/ is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]


class _Trial:  # what the scheduler reads of a trial
    def __init__(self, index: int) -> None:
        self.trial_id = f"{index:05d}_abc"
        self.experiment_tag = f"{index + 1}_lr=0.01"


def run(trials: int, directory: Path) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from tuner.driver.fence.asha import PersistentASHA

    scheduler = PersistentASHA(
        state_path=directory / "asha_state.json", samples=trials, known_points=1,
        time_attr="epoch", metric="val_loss", mode="min", max_t=2, grace_period=1,
        reduction_factor=3,
    )  # fmt: skip
    per_trial = []
    for i in range(trials):
        trial = _Trial(i)
        loss = 2.0 / (1 + i / 200) + ((i * 7919) % 101) / 500  # improving, with noise
        start = time.perf_counter()
        scheduler.on_trial_add(None, trial)
        action = scheduler.on_trial_result(None, trial, {"epoch": 1, "val_loss": loss})
        if action == "CONTINUE":
            scheduler.on_trial_result(None, trial, {"epoch": 2, "val_loss": loss * 0.9})
            scheduler.on_trial_complete(None, trial, {"epoch": 2, "val_loss": loss * 0.9})
        else:
            scheduler.on_trial_complete(None, trial, {"epoch": 1, "val_loss": loss})
        per_trial.append(time.perf_counter() - start)
    tail = per_trial[-max(1, trials // 10) :]
    return {
        "trials": trials,
        "ms_a_trial": round(1000 * sum(per_trial) / trials, 3),
        "ms_a_trial_last_10pct": round(1000 * sum(tail) / len(tail), 3),
        "seconds": round(sum(per_trial), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    rows = []
    for n in args.trials:
        with tempfile.TemporaryDirectory(dir=ROOT) as tmp:  # the experiment's own disk
            rows.append(run(n, Path(tmp)))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
