"""Stock Ray Tune's own cost per trial on the same tiny trials as bench/scale.py ([scale]).

The yardstick for bench/scale.py's "driver overhead a trial": the same kind of search done the
way Ray Tune's documentation shows it, with nothing of this project in the driver. A function
trainable trains a one-block CNN on digits (8x8, 1,797 images, Adam, one torch thread) for 2
epochs and reports each epoch with a checkpoint; OptunaSearch (TPE, its default in-memory
study) proposes the same three parameters as bench/scale.py's space (channels 4/8/16, lr
0.001-0.1 log, batch 64/128/256); ASHAScheduler (its defaults, max_t 2) stops trials; 2 trials
at once on 2 CPUs, actors reused (`reuse_actors=True`, Tune's advice for short trials). It
measures, as bench/scale.py does:

- the wall clock per trial beyond the trials' own seconds: (the fit's wall time - the trials'
  own wall seconds / concurrency) / trials;
- the driver process's CPU time per trial;
- the driver's peak RSS.

What stock Tune does not do that this project's driver does, and so does not pay for: a durable
Optuna study (stock keeps it in memory: a crash loses it), the resume bookkeeping, the tables,
the live report, TensorBoard files, ASHA's rungs on disk.

    python bench/scale_stock.py --sizes 1000 --json bench/results/scale-stock.json

Run it alternating with bench/scale.py for a side-by-side figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _machine import HelpFormatter, cpu_model  # bench/ is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 2


def child(samples: int, out: Path, trial_epochs: int) -> None:
    """One stock Tune search in this process; its figures to `out` (JSON)."""
    import numpy as np
    import optuna
    import ray
    import torch
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch
    from sklearn.datasets import load_digits

    sys.path.insert(0, str(ROOT))
    from tuner.driver.ray_runtime import keep_local_ray_on_loopback  # Ray on 127.0.0.1 only

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    data = (x[:1400], y[:1400], x[1400:], y[1400:])

    def trainable(config: dict, data: tuple) -> None:
        start = time.perf_counter()
        torch.set_num_threads(1)
        torch.manual_seed(0)
        xt, yt, xv, yv = (torch.tensor(a) for a in data)  # a copy: Ray's arrays are read-only
        c = int(config["channels_b0"])
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, c, 3, padding=1), torch.nn.BatchNorm2d(c), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(c * 16, 10),
        )  # fmt: skip
        opt = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
        batch = int(config["batch_size"])
        for epoch in range(1, trial_epochs + 1):
            model.train()
            for i in range(0, len(xt), batch):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(
                    model(xt[i : i + batch]), yt[i : i + batch]
                )
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                logits = model(xv)
                val_loss = float(torch.nn.functional.cross_entropy(logits, yv))
                acc = float((logits.argmax(1) == yv).float().mean())
            with tempfile.TemporaryDirectory() as d:
                torch.save(model.state_dict(), Path(d) / "model.pt")
                tune.report(
                    {"val_acc": acc, "val_loss": val_loss, "epoch": epoch,
                     "own_s": time.perf_counter() - start},
                    checkpoint=tune.Checkpoint.from_directory(d),
                )  # fmt: skip

    keep_local_ray_on_loopback()
    with tempfile.TemporaryDirectory() as d:
        ray.init(num_cpus=CONCURRENCY, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False, _temp_dir=str(Path(d) / "ray"))  # fmt: skip
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(trainable, data=data), {"cpu": 1}),
            param_space={
                "channels_b0": tune.choice([4, 8, 16]),
                "lr": tune.loguniform(0.001, 0.1),
                "batch_size": tune.choice([64, 128, 256]),
            },
            tune_config=tune.TuneConfig(
                search_alg=OptunaSearch(metric="val_acc", mode="max", seed=0),
                scheduler=ASHAScheduler(metric="val_acc", mode="max", max_t=trial_epochs),
                num_samples=samples, max_concurrent_trials=CONCURRENCY,
                # Tune's own advice for many short trials (its default starts a new worker
                # process, and imports torch, for each trial here: ~2 s a trial on 2 cores).
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(storage_path=str(Path(d) / "out"), name="stock",
                                      verbose=0),
        )  # fmt: skip
        cpu_start = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        grid = tuner.fit()
        fit = time.perf_counter() - start
        cpu_end = resource.getrusage(resource.RUSAGE_SELF)
        own = sum(float(r.metrics.get("own_s", 0.0)) for r in grid if r.metrics)
        errors = sum(1 for r in grid if r.error is not None)
        ray.shutdown()
    driver_cpu = sum(getattr(cpu_end, f) - getattr(cpu_start, f) for f in ("ru_utime", "ru_stime"))
    out.write_text(json.dumps({
        "samples": samples, "epochs": trial_epochs, "fit_s": fit, "trials_own_s": own,
        "errors": errors,
        "overhead_per_trial_ms": 1000 * (fit - own / CONCURRENCY) / samples,
        "driver_cpu_per_trial_ms": 1000 * driver_cpu / samples,
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--epochs", type=int, default=2, help="epochs a trial")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, Path(args.child_out), args.epochs)
        return
    out: dict = {"cpu": cpu_model(), "date": datetime.now().isoformat(timespec="seconds"),
                 "what": "stock Ray Tune (OptunaSearch in memory + ASHAScheduler)",
                 "runs": []}  # fmt: skip
    for n in args.sizes:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run([sys.executable, __file__, "--child", str(n), "--child-out", f.name,
                            "--epochs", str(args.epochs)], check=True, cwd=ROOT)  # fmt: skip
            r = json.loads(Path(f.name).read_text())
        out["runs"].append(r)
        print(f"{n:>5} trials, stock Ray Tune: fit {r['fit_s']:.0f} s; overhead "
              f"{r['overhead_per_trial_ms']:.0f} ms a trial; driver CPU "
              f"{r['driver_cpu_per_trial_ms']:.0f} ms a trial; driver peak "
              f"{r['driver_peak_rss_mb']:.0f} MB; {r['errors']} errored trials",
              flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
