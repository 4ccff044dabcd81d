"""What Optuna's storage costs the driver a trial ([scale]): the same ask / report / tell
sequence a search's searcher makes (TPE with constant liar, seeded; three parameters; two
epochs reported; two trials running at once), on each storage Optuna offers for one writer.

bench/driver_profile.py found Optuna's SQLite storage (SQLAlchemy) to be the largest part of the
driver's own time at 300 trials (88 ms a trial of its main thread; TPE's arithmetic 5 ms).
This isolates it, in one process, with no Ray:

    .venv/bin/python bench/optuna_storage.py --trials 300

Per storage: the median and the mean milliseconds a trial (ask, 3 suggestions, 2 reports, tell)
over the last 100 trials, and the whole run's seconds. The storages, side by side in
alternating rounds: `sqlite` (the experiment's optuna.db, as the driver opens it: RDBStorage,
which Optuna wraps in its cache), `sqlite-wal` (the same in SQLite's write-ahead-log mode: one
fsync a commit instead of a rollback journal's several), `journal` (JournalStorage on a
JournalFileBackend file: an append-only log, read back into memory), `memory` (InMemoryStorage:
no durability at all, the floor).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import HelpFormatter  # bench/ is sys.path[0]


def storage_for(kind: str, directory: Path) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if kind == "sqlite":
        return optuna.storages.RDBStorage(f"sqlite:///{directory / 'optuna.db'}")
    if kind == "sqlite-wal":  # the same file in write-ahead-log mode (kept by the file)
        import sqlite3

        with sqlite3.connect(directory / "optuna.db") as connection:
            connection.execute("PRAGMA journal_mode=WAL")
        return optuna.storages.RDBStorage(f"sqlite:///{directory / 'optuna.db'}")
    if kind == "journal":
        return optuna.storages.JournalStorage(JournalFileBackend(str(directory / "journal.log")))
    return optuna.storages.InMemoryStorage()


def run(kind: str, trials: int, seed: int) -> dict[str, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        study = optuna.create_study(
            storage=storage_for(kind, Path(d)), study_name="bench", direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        )  # fmt: skip
        started = time.perf_counter()
        times: list[float] = []
        running: list[Any] = []
        for _ in range(trials):
            t0 = time.perf_counter()
            trial = study.ask()
            trial.suggest_categorical("channels", [4, 8, 16])
            x = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
            trial.suggest_categorical("batch_size", [64, 128, 256])
            running.append((trial, x))
            if len(running) == 2:  # two at once, as on this machine's two cores
                done, x_done = running.pop(0)
                for epoch in (1, 2):
                    done.report(x_done * epoch, epoch)
                study.tell(done, x_done * 2)
            times.append(time.perf_counter() - t0)
        for trial, x in running:
            study.tell(trial, x)
        last = [1000 * t for t in times[-100:]]
        return {"median_ms": statistics.median(last), "mean_ms": statistics.fmean(last),
                "total_s": time.perf_counter() - started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    parser.add_argument("--kinds", nargs="+",
                        default=["sqlite", "sqlite-wal", "journal", "memory"])  # fmt: skip
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {k: [] for k in args.kinds}
    for round_ in range(args.rounds):
        for kind in args.kinds:
            results[kind].append(run(kind, args.trials, seed=round_))
    print(f"{args.trials} trials, {args.rounds} alternating rounds; the last 100 trials:")
    print("| storage | median ms a trial | mean ms a trial | run s |\n|---|---|---|---|")
    for kind, rows in results.items():
        med = statistics.median(r["median_ms"] for r in rows)
        mean = statistics.median(r["mean_ms"] for r in rows)
        total = statistics.median(r["total_s"] for r in rows)
        print(f"| {kind} | {med:.1f} | {mean:.1f} | {total:.1f} |")


if __name__ == "__main__":
    main()
