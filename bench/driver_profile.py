"""Where the driver's time goes in a search of many tiny trials ([scale]): a py-spy profile of
bench/scale.py's child process, sorted into the parts a change could remove.

    .venv/bin/pip install py-spy
    .venv/bin/py-spy record -r 50 -f raw -o /tmp/prof300.txt -- \\
        .venv/bin/python bench/scale.py --child 300 --child-out /tmp/s300.json
    .venv/bin/python bench/driver_profile.py /tmp/prof300.txt --trials 300

py-spy samples only the threads on a CPU (waits on a disk or a lock are not in it), at 50 Hz:
each sample of the driver's main thread is 20 ms of its CPU time, put in the first category
whose frame names it holds (an Optuna storage read inside the searcher counts as the read).
The trials themselves run in Ray's worker processes, which the profile leaves out.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from _machine import HelpFormatter  # bench/ is sys.path[0]

# In order: the first that matches a sample's stack takes it.
MAIN = (
    ("Optuna storage reads (SQLAlchemy on SQLite)",
     ("_CachedStorage.get_all_trials", "RDBStorage.get_trial", "_CachedStorage.get_trial")),
    ("Optuna storage writes (one commit each)",
     ("RDBStorage.set_", "RDBStorage._set_", "RDBStorage._create_new_trial")),
    ("Optuna journal writes (a line and an fsync each)",
     ("JournalFileBackend.append_logs", "JournalStorage._write_log")),
    ("Optuna journal reads (new lines replayed, trials copied)",
     ("JournalStorage.get_all_trials", "JournalStorage.get_trial", "_sync_with_backend")),
    ("TPE's own arithmetic", ("TPESampler", "_ParzenEstimator")),
    ("the searcher, the rest", ("TruthfulOptunaSearch", "OptunaSearch.")),
    ("Tune: saving its experiment state", ("save_to_dir", "sync_up_experiment_state")),
    ("Tune: results, decisions, actors",
     ("RayActorManager", "TuneController._on_", "TuneController._process", "_schedule_trial")),
    ("the callbacks (progress, live report, guards, loggers)",
     ("Callback", "SearchProgress", "LiveReport", "Guard", "StateBackup", "Logger")),
    ("Tune's loop, the rest", ("TuneController.step",)),
)  # fmt: skip

WAITS = {"Condition.wait", "_PollLikeSelector.select", "select", "poll", "Queue.get",
         "listen_error_messages", "Event.wait", "Connection._poll"}  # fmt: skip


def categorise(path: Path) -> tuple[collections.Counter, int]:
    """{category: samples} over the whole profile, and the total."""
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        samples = int(n)
        total += samples
        frames = stack.split(";")
        names = [f.split(" (")[0] for f in frames]
        if not frames[0].startswith("<module> (scale.py"):  # a thread of the driver's own
            if any("_upload_to_fs_path" in f or "syncer" in f for f in frames):
                counts["other threads: copying Tune's state into the experiment"] += samples
            elif names[-1] in WAITS:  # py-spy counts some blocked waits as active
                counts["other threads: waiting in a queue, select or poll (no work)"] += samples
            else:
                counts["other threads: the rest (live report, Ray's listeners)"] += samples
            continue
        for category, keys in MAIN:
            if any(name.startswith(k) or k in name for name in names for k in keys):
                counts[f"main thread: {category}"] += samples
                break
        else:
            counts["main thread: start-up, tables, report"] += samples
    return counts, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("profile", type=Path, help="py-spy's raw output (-f raw)")
    parser.add_argument("--trials", type=int, required=True, help="the search's trial count")
    parser.add_argument("--rate", type=int, default=50, help="py-spy's -r; default %(default)s")
    args = parser.parse_args()
    counts, total = categorise(args.profile)
    print(f"{total} samples at {args.rate} Hz ({total / args.rate:.1f} s sampled)")
    print("| part | seconds | ms a trial |\n|---|---|---|")
    for category, samples in counts.most_common():
        seconds = samples / args.rate
        print(f"| {category} | {seconds:.1f} | {1000 * seconds / args.trials:.0f} |")


if __name__ == "__main__":
    main()
