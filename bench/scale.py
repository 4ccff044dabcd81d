"""The driver's own costs as a search grows ([scale], part 1): real searches of tiny trials.

For each size (default 100, 300 and 1,000 trials) a fresh process runs one real search through
the Python API: digits, a one-block CNN (a few ms an epoch), 2 epochs a trial, TPE + ASHA, the
confirm stage off, concurrency 2 on this machine's 2 cores. It measures:

- the wall clock per trial beyond the trials' own seconds: (the fit's wall time - the trials'
  own wall seconds / concurrency) / trials;
- the driver process's CPU time per trial (all its threads: Tune's loop, callbacks, searcher);
- the time of every Optuna suggestion (TruthfulOptunaSearch.suggest, timed in the driver)
  against the trial's number: its median over the first and the last 50 trials, and its worst,
  in wall time and in the driver thread's CPU time (on 2 cores shared with 2 training workers,
  the difference is time spent waiting for a core);
- each save of the searcher's state by Tune (TruthfulOptunaSearch.__getstate__): its time and
  size, which grew with the study before the fix in tuner/driver/fence/searcher.py;
- the driver process's peak RSS (the trials run in Ray's worker processes), and that of its
  helper process for torch work (tuner/stages/torch_work.py);
- the time to build trials.csv and epochs.csv from the trial directories and their sizes.

    python bench/scale.py --json bench/results/scale.json

Before and after a change, side by side: check the old revision out in a worktree, copy this
script into it, and run both (each measures its own tree's code).
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
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
optimizer = "adam"
[params]
channels_b0 = { choices = [4, 8, 16] }
lr = { float = [0.001, 0.1], log = true }
batch_size = { choices = [64, 128, 256] }
"""
CONCURRENCY = 2


def child(samples: int, out: Path, trial_epochs: int = 2, report_every: float = 60.0) -> None:
    """One search in this process; its figures to `out` (JSON)."""
    import resource

    sys.path.insert(0, str(ROOT))
    from tuner import SearchConfig, search
    from tuner.driver.fence import searcher
    from tuner.experiment import EPOCHS_CSV, TRIALS_CSV, collect_tables
    from tuner.io import atomic_write_csv

    timed: list[float] = []  # wall seconds of each suggestion
    timed_cpu: list[float] = []  # the driver thread's CPU seconds in it (the rest: no core free)
    saves: list[tuple[float, int]] = []  # each save of the searcher's state: seconds, bytes
    original = searcher.TruthfulOptunaSearch.suggest
    original_getstate = searcher.TruthfulOptunaSearch.__getstate__

    def suggest(self, trial_id: str):  # type: ignore[no-untyped-def]
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(self, trial_id)
        finally:
            timed.append(time.perf_counter() - start)
            timed_cpu.append(time.thread_time() - cpu)

    def getstate(self):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        state = original_getstate(self)
        saves.append((time.perf_counter() - start, len(pickle.dumps(state))))
        return state

    # Python's collector, generation 2 (a full pass over the driver's heap): how often and
    # how long, to tell its pauses from the suggestions' own spikes.
    # Those during the fit, where they stall the suggestions and Tune's loop, apart.
    full_collections: list[float] = []
    in_fit: list[float] = []
    collecting: list[float] = []
    fitting = [False]

    def on_gc(phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            collecting[:] = [time.perf_counter()]
        elif collecting:
            full_collections.append(time.perf_counter() - collecting[0])
            if fitting[0]:
                in_fit.append(full_collections[-1])

    gc.callbacks.append(on_gc)

    # The helper process that does the driver's torch work (tuner/stages/torch_work.py; none
    # before it existed): its peak memory, asked just before each helper ends.
    helper_peaks: list[float] = []
    try:
        from tuner.stages import torch_work
    except ImportError:
        torch_work = None  # type: ignore[assignment]
    if torch_work is not None:
        original_close = torch_work.TorchHelper.close

        def close(self):  # type: ignore[no-untyped-def]
            if self._child is not None and self._child.poll() is None:
                helper_peaks.append(self.run(torch_work.peak_rss_mb))
            original_close(self)

        torch_work.TorchHelper.close = close  # type: ignore[method-assign]
    from tuner.driver import run as driver_run

    original_fit = driver_run.fit

    def timed_fit(*args, **kwargs):  # type: ignore[no-untyped-def]
        fitting[0] = True
        try:
            return original_fit(*args, **kwargs)
        finally:
            fitting[0] = False

    driver_run.fit = timed_fit

    # Tune's saves of the whole experiment state (every trial's state as JSON, the searcher,
    # the callbacks) and the copy of it from Ray's staging directory into the experiment:
    # each one's seconds (the save itself; the save with the wait for the copy when forced)
    # and the state file's bytes.
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager
    from ray.tune.execution.tune_controller import TuneController

    from tuner.driver.fence import internals

    if hasattr(internals, "install_fast_state_save"):  # timed under the wrappers below
        internals.install_fast_state_save()

    state_saves: list[tuple[float, int]] = []
    state_syncs: list[tuple[float, bool]] = []
    original_save = TuneController.save_to_dir
    original_sync = _ExperimentCheckpointManager.sync_up_experiment_state

    def save_to_dir(self):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        original_save(self)
        path = Path(self._storage.experiment_driver_staging_path, self.experiment_state_file_name)
        state_saves.append((time.perf_counter() - start, path.stat().st_size))

    def sync_up(self, save_fn, force=False, wait=False):  # type: ignore[no-untyped-def]
        before, forced = len(state_saves), force or self._should_force_sync_up
        start = time.perf_counter()
        original_sync(self, save_fn, force=force, wait=wait)
        if len(state_saves) > before:
            state_syncs.append((time.perf_counter() - start, forced))

    TuneController.save_to_dir = save_to_dir  # type: ignore[method-assign]
    _ExperimentCheckpointManager.sync_up_experiment_state = sync_up  # type: ignore[method-assign]
    searcher.TruthfulOptunaSearch.suggest = suggest  # type: ignore[method-assign]
    searcher.TruthfulOptunaSearch.__getstate__ = getstate  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "space.toml").write_text(SPACE)
        cfg = SearchConfig(space=str(Path(d) / "space.toml"), dataset="digits",
                           samples=samples, epochs=trial_epochs, no_confirm=True,
                           out=str(Path(d) / "out"), name="scale", concurrency=CONCURRENCY,
                           seed=0, report_every=report_every)  # fmt: skip
        start = time.perf_counter()
        cpu_start = resource.getrusage(resource.RUSAGE_SELF)
        result = search(cfg, stream=open("/dev/null", "w"))
        wall = time.perf_counter() - start
        cpu_end = resource.getrusage(resource.RUSAGE_SELF)
        driver_cpu = sum(
            getattr(cpu_end, f) - getattr(cpu_start, f) for f in ("ru_utime", "ru_stime")
        )
        exp = result.experiment_dir
        prov = json.loads((exp / "provenance.json").read_text())
        fit = next((t.get("fit") or t.get("search") for t in prov.get("timings", [])), None)
        trials = result.trials
        own = float(trials["wall_seconds"].fillna(0).sum())
        start = time.perf_counter()
        rebuilt, epochs = collect_tables(exp, cfg.epochs)
        atomic_write_csv(exp / "rebuilt-trials.csv", rebuilt)
        atomic_write_csv(exp / "rebuilt-epochs.csv", epochs)
        tables_s = time.perf_counter() - start
        sizes = {name: (exp / name).stat().st_size for name in (TRIALS_CSV, EPOCHS_CSV)}
    # suggest() is asked for every trial, and again after each refusal (none here)
    first, last = timed[:50], timed[-50:]
    figures = {
        "samples": samples, "epochs": trial_epochs, "wall_s": wall, "fit_s": fit,
        "trials_own_s": own,
        "overhead_per_trial_ms": None if fit is None else
        1000 * (fit - own / CONCURRENCY) / samples,
        # Everything the driver process spent, per trial (its threads, Tune's loop included;
        # the trials train in other processes): what a core of its own would have to give.
        "driver_cpu_per_trial_ms": 1000 * driver_cpu / samples,
        "suggest_ms": {"first_50_median": 1000 * statistics.median(first),
                       "last_50_median": 1000 * statistics.median(last),
                       "max": 1000 * max(timed), "count": len(timed),
                       "max_at": timed.index(max(timed))},
        "suggest_cpu_ms": {"first_50_median": 1000 * statistics.median(timed_cpu[:50]),
                           "last_50_median": 1000 * statistics.median(timed_cpu[-50:]),
                           "max": 1000 * max(timed_cpu),
                           "max_at": timed_cpu.index(max(timed_cpu))},
        "full_gc": {"count": len(full_collections),
                    "total_s": sum(full_collections),
                    "max_ms": 1000 * max(full_collections, default=0.0)},
        "full_gc_in_fit": {"count": len(in_fit), "total_s": sum(in_fit),
                           "max_ms": 1000 * max(in_fit, default=0.0)},
        "searcher_saves": {"count": len(saves), "total_s": sum(t for t, _ in saves),
                           "last_ms": 1000 * saves[-1][0] if saves else None,
                           "last_bytes": saves[-1][1] if saves else None},
        "tune_state_saves": {"count": len(state_saves),
                             "forced": sum(1 for _, f in state_syncs if f),
                             "save_s": sum(t for t, _ in state_saves),
                             "with_sync_s": sum(t for t, _ in state_syncs),
                             "last_ms": 1000 * state_saves[-1][0] if state_saves else None,
                             "last_bytes": state_saves[-1][1] if state_saves else None},
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "helper_peak_rss_mb": max(helper_peaks, default=None),
        "tables_s": tables_s, "trials_csv_bytes": sizes[TRIALS_CSV],
        "epochs_csv_bytes": sizes[EPOCHS_CSV],
    }  # fmt: skip
    out.write_text(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="epochs a trial (two values apart give the cost a result adds)",
    )
    parser.add_argument(
        "--report-every",
        type=float,
        default=60.0,
        help="seconds between the live report's copies (the search's --report-every; 0: none)",
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, Path(args.child_out), args.epochs, args.report_every)
        return
    out: dict = {"cpu": cpu_model(), "date": datetime.now().isoformat(timespec="seconds"),
                 "targets": "1,000 trials: <= 20 ms driver overhead a trial; no suggestion "
                 "over 200 ms at trial 1,000", "runs": []}  # fmt: skip
    for n in args.sizes:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run([sys.executable, __file__, "--child", str(n), "--child-out", f.name,
                            "--epochs", str(args.epochs), "--report-every",
                            str(args.report_every)],
                           check=True, cwd=ROOT)  # fmt: skip
            r = json.loads(Path(f.name).read_text())
        out["runs"].append(r)
        s = r["suggest_ms"]
        overhead = r["overhead_per_trial_ms"]
        print(f"{n:>5} trials: {r['wall_s']:.0f} s; overhead "
              f"{'?' if overhead is None else f'{overhead:.0f}'} ms a trial; suggest median "
              f"{s['first_50_median']:.1f} ms (first 50) -> {s['last_50_median']:.1f} ms (last 50),"
              f" max {s['max']:.0f} ms (at #{s['max_at']}); driver peak "
              f"{r['driver_peak_rss_mb']:.0f} MB (its torch helper "
              f"{r.get('helper_peak_rss_mb') or 0:.0f} MB); tables {r['tables_s']:.2f} s, "
              f"trials.csv "
              f"{r['trials_csv_bytes'] / 1e3:.0f} kB, epochs.csv "
              f"{r['epochs_csv_bytes'] / 1e3:.0f} kB", flush=True)  # fmt: skip
        c, v = r["suggest_cpu_ms"], r["searcher_saves"]
        print(f"       driver CPU {r['driver_cpu_per_trial_ms']:.0f} ms a trial; suggest CPU "
              f"{c['first_50_median']:.1f} -> {c['last_50_median']:.1f} ms, max {c['max']:.0f} ms"
              f" (at #{c['max_at']}); {v['count']} searcher saves, {v['total_s']:.1f} s in all, "
              f"last {v['last_ms'] or 0:.0f} ms / {(v['last_bytes'] or 0) / 1e3:.0f} kB; "
              f"{r['full_gc']['count']} full collections, longest {r['full_gc']['max_ms']:.0f} ms"
              f" ({r['full_gc_in_fit']['count']} in the fit, longest "
              f"{r['full_gc_in_fit']['max_ms']:.0f} ms)",
              flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
